"""Shared by the HTTP benchmarks: a prepared database, the real server (`portal serve`) as a child process,
and throwaway PostgreSQL databases. Benchmarks only talk to loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parent.parent
# The repository first: bench/labels.py must not shadow the labels package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

from portal.db import make_engine, migrate, normalise_url  # noqa: E402
from portal.demo import load_demo  # noqa: E402
from portal.models import Order, OrderLine  # noqa: E402
from portal.returns import policy, service  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register_demo_return(url: str, nonce: str = "bench-nonce-0123456789") -> str:
    """Demo data plus one registered return on SE-1001; its status page path `/r/<RMA>/<token>`."""
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            load_demo(s)
            order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
            line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id)).first()
            ret = service.register_return(s, service.ReturnRequest(
                order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
                language="sv", form_nonce=nonce), date.today())
            s.commit()
            return f"/r/{ret.rma}/{ret.status_token}"
    finally:
        engine.dispose()


def prepare(url: str) -> str:
    """Migrate `url`, load the demo data and register one return; the status page path."""
    migrate(url)
    return register_demo_return(url)


def database_url_with_name(url: str, name: str) -> str:
    return sa.engine.make_url(normalise_url(url)).set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_database(admin_url: str, name: str | None = None, keep: bool = False) -> Iterator[str]:
    """A new, empty database on the server of `admin_url` (dropped afterwards unless `keep`); its URL."""
    name = name or f"portal_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield database_url_with_name(admin_url, name)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class PortalProcess:
    """`portal <args>` as a child process in its own process group, output to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path):
        self.args, self.env, self.log_path = args, env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "PortalProcess":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "portal.cli", *self.args], env=self.env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        """This process and its children (uvicorn's worker processes)."""
        found = [self.pid]
        for pid in found:
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            found.extend(int(c) for c in children)
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time of this process tree so far (Linux /proc)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL, no chance to clean up (the crash case)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def portal_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=database_url, BASE_URL=f"http://127.0.0.1:{port}", EMBEDDED_WORKER="0",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def wait_until_up(base_url: str, process: PortalProcess, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.proc and process.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {process.proc.returncode}:\n{process.log_tail()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout_s:.0f} s:\n{process.log_tail()}")


@contextmanager
def portal_server(database_url: str, log_dir: Path, workers: int = 1, access_log: bool = False,
                  **env: str) -> Iterator[tuple[str, PortalProcess]]:
    """`portal serve` on a free loopback port; yields (base URL, process). Stopped on exit."""
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if not access_log:
        args.append("--no-access-log")
    server = PortalProcess(args, portal_env(database_url, port, **env), log_dir / f"serve-{port}.log").start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base_url, server)
        yield base_url, server
    finally:
        server.stop()

"""Fault injection against the real processes, with counts.

(a) worker-crash: thousands of queued e-mails (and some SMS) to a real SMTP server (aiosmtpd) and a 46elks-style
    SMS provider on loopback; `portal worker` is killed with SIGKILL mid-dispatch twice: once while an e-mail has
    been accepted but the SMTP server's reply is held back, once while an SMS request is open at the provider;
    then a worker drains the outbox. Counts: every e-mail's Message-ID delivered (the copy re-sent after the
    first crash carries the same Message-ID, so the receiver keeps one), no SMS sent twice, and the SMS whose
    outcome is unknown is a dead letter, as portal/outbox/dispatcher.py documents.
(b) database-outage: a private, throwaway PostgreSQL instance (initdb in a temporary folder, run as the postgres
    user on a free port; the shared cluster is never touched) serves `portal serve` while clients register returns
    through the consumer pages; the instance is stopped for 10 s (pg_ctl stop -m fast) and started again.
    Counts: answers while it is down (503 with Retry-After and the portal's own page, never a stack trace), time
    to recover by itself, and that every registration acknowledged with a redirect exists in the database.

Usage: .venv/bin/python bench/faults.py [worker-crash|database-outage|all]
                                        [--emails 3000] [--sms 150] [--outage 10] [--database-url …]
The worker-crash case uses a throwaway database on --database-url (default TEST_DATABASE_URL or the local server).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

import httpx
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from _server import (PortalProcess, database_url_with_name, free_port, portal_env, portal_server,  # noqa: E402
                     postgres_database)

from portal.db import make_engine, migrate, session_scope  # noqa: E402
from portal.demo import load_demo  # noqa: E402
from portal.outbox.dispatcher import UNKNOWN_OUTCOME  # noqa: E402
from portal.outbox.service import enqueue  # noqa: E402
from tests.integration.outbox_helpers import MailSink  # noqa: E402
from tests.integration.sms_helpers import ELKS_PASSWORD, ELKS_USER, running_sms_provider  # noqa: E402

DEFAULT_PG = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# --- (a) the worker killed mid-dispatch -----------------------------------------------------


def message_id_of(raw: bytes) -> str:
    return BytesHeaderParser().parsebytes(raw).get("Message-ID", "").strip()


def enqueue_messages(engine, emails: int, sms: int) -> None:
    """E-mails with an SMS after every (emails // sms)-th one, all due now."""
    every = max(emails // max(sms, 1), 1)
    with session_scope(engine) as session:
        sent_sms = 0
        for i in range(emails):
            enqueue(session, key=f"bench-email-{i}", channel="email", destination=f"customer{i}@example.se",
                    event_type="bench.email", payload={"subject": f"Your return {i}", "text": f"Message {i}."})
            if sent_sms < sms and i % every == every - 1:
                enqueue(session, key=f"bench-sms-{sent_sms}", channel="sms", destination=f"+4670{sent_sms:07d}",
                        event_type="bench.sms", payload={"text": f"Your return {sent_sms} has arrived."})
                sent_sms += 1


def outbox_states(engine) -> Counter:
    with engine.connect() as conn:
        return Counter(dict(conn.execute(sa.text(
            "SELECT channel || ':' || state, count(*) FROM outbox_message GROUP BY channel, state")).all()))


class HoldingMailSink(MailSink):
    """The SMTP server; from the `hold_at`-th message on, it keeps the next one (as delivered) and holds back its
    "250" reply until released: the worker dies not knowing the mail went (the classic lost-reply duplicate)."""

    def __init__(self):
        super().__init__()
        self.hold_at: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        if self.hold_at is not None and len(self.received) >= self.hold_at and not self.holding.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return reply


def worker_crash(admin_url: str, emails: int, sms: int, log_dir: Path) -> bool:
    print(f"== (a) worker killed twice mid-dispatch (SIGKILL): {emails} e-mails and {sms} SMS queued")
    sink = HoldingMailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    sms_holding, sms_release = threading.Event(), threading.Event()
    sms_hold_after = 2 * emails // 3  # e-mails delivered before an SMS request is held open
    try:
        with running_sms_provider() as provider, postgres_database(admin_url) as url:
            def observe(request) -> None:  # runs in the provider's handler thread, before it answers
                if not sms_holding.is_set() and len(sink.received) >= sms_hold_after:
                    sms_holding.set()
                    sms_release.wait(30)
            provider.observer = observe
            migrate(url)
            engine = make_engine(url)
            with session_scope(engine) as session:
                load_demo(session)
            enqueue_messages(engine, emails, sms)
            env = portal_env(url, 8000, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}", SMS_PROVIDER="46elks",
                             SMS_API_URL=provider.url, SMS_USERNAME=ELKS_USER, SMS_PASSWORD=ELKS_PASSWORD,
                             SMS_SENDER="Butiken", NOTIFY_QUIET_HOURS="00:00-00:00")
            sink.hold_at = emails // 3
            crashes = [("an e-mail was accepted by the SMTP server but its reply not yet read", sink.holding,
                        sink.release),
                       ("an SMS request was open at the provider", sms_holding, sms_release)]
            killed_at = time.monotonic()
            for number, (moment, holding, release) in enumerate(crashes, 1):
                worker = PortalProcess(["worker", "--interval", "1"], env, log_dir / f"worker-{number}.log").start()
                try:
                    wait_for(holding.is_set, 400, moment)
                    worker.kill()
                    killed_at = time.monotonic()
                finally:
                    release.set()
                    worker.kill()
                states = outbox_states(engine)
                print(f"crash {number}: killed while {moment}, after {len(sink.received)} e-mails had arrived; "
                      "outbox then: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
            worker = PortalProcess(["worker", "--interval", "1"], env, log_dir / "worker-3.log").start()
            try:
                def drained():
                    left = {k: v for k, v in outbox_states(engine).items()
                            if k.split(":")[1] in ("pending", "sending", "failed")}
                    return not left
                wait_for(drained, 400, "the restarted worker to drain the outbox", poll_s=1)
                print(f"restarted worker drained the outbox {time.monotonic() - killed_at:.0f} s after the last kill "
                      "(claimed rows wait for their 60 s lease)")
            finally:
                worker.stop()
            return report_crash(engine, sink, provider, emails, sms)
    finally:
        smtp.stop()


def report_crash(engine, sink: MailSink, provider, emails: int, sms: int) -> bool:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, channel, state, idempotency_key, last_error FROM outbox_message")).all()
    email_ids = {f"outbox-{r.id}" for r in rows if r.channel == "email"}
    received = Counter(message_id_of(raw) for raw in sink.received)
    unique = {mid for mid in received if mid.strip("<>").split("@")[0] in email_ids}
    copies = sum(n - 1 for n in received.values() if n > 1)
    sms_keys = Counter(r.headers.get("idempotency-key", "") for r in provider.accepted)
    dead = [r for r in rows if r.state == "dead"]
    unknown = [r for r in dead if r.last_error == UNKNOWN_OUTCOME]
    unknown_received = sum(1 for r in unknown if sms_keys.get(r.idempotency_key))
    states = Counter(f"{r.channel}:{r.state}" for r in rows)
    print("outbox at the end: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    print(f"e-mail: {emails} queued, {len(unique)} distinct Message-IDs delivered, {emails - len(unique)} missing, "
          f"{copies} resent copies (same Message-ID: the receiver keeps one), "
          f"{sum(1 for r in dead if r.channel == 'email')} dead letters")
    print(f"SMS: {sms} queued, {len(sms_keys)} accepted by the provider, "
          f"{sum(n - 1 for n in sms_keys.values() if n > 1)} sent twice, "
          f"{len(unknown)} dead letters 'outcome unknown' (the provider had received {unknown_received} of them), "
          f"{len(dead) - len(unknown) - sum(1 for r in dead if r.channel == 'email')} other dead letters")
    exactly_once = len(unique) == emails and all(n == 1 for n in sms_keys.values()) \
        and len(sms_keys) + len(unknown) - unknown_received == sms and len(dead) == len(unknown)
    print(f"every message delivered exactly once per Message-ID / idempotency key, outcome-unknown SMS aside -> "
          f"{'OK' if exactly_once else 'FAILED'}")
    return exactly_once


# --- (b) PostgreSQL stopped under load ------------------------------------------------------


class PrivatePostgres:
    """A throwaway cluster in a temporary folder, run as the postgres user (root may not run it)."""

    def __init__(self, port: int):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not versions:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = Path(versions[-1])
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="portal-pg-"))
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.dir)

    def init(self) -> "PrivatePostgres":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options,
                  "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


BENCH_ORDERS_SQL = """
INSERT INTO orders (number, customer_id, email, postcode, country, currency, placed_at, delivered_at,
    shipping_paid_minor, standard_shipping_minor, order_discount_minor, created_at, updated_at)
SELECT 'LOAD-' || g, :customer_id, 'load' || g || '@example.se', '11455', 'SE', 'SEK', now() - interval '6 days',
    now() - interval '3 days', 4900, 4900, 0, now(), now()
FROM generate_series(1, CAST(:n AS integer)) g;
INSERT INTO order_line (order_id, line_no, sku, name, category, quantity, unit_price_minor, discount_minor, vat_rate,
    returnable)
SELECT o.id, 1, 'TS-100', 'Organic cotton T-shirt', 'clothing', 1, 29900, 0, 0.25, true
FROM orders o WHERE o.number LIKE 'LOAD-%%';
"""
CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
NONCE_RE = re.compile(r'name="form_nonce" value="([^"]+)"')
LINE_RE = re.compile(r'name="qty_(\d+)"')
LEAK_MARKERS = ("Traceback", "OperationalError", "psycopg", "sqlalchemy", 'File "')


class Outcome:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked: list[tuple[float, str]] = []  # (time, status link path)
        self.answers: Counter = Counter()  # "503 friendly", "503 leaky", "500", …
        self.down_answers: list[float] = []

    def add(self, what: str) -> None:
        with self.lock:
            self.answers[what] += 1


def classify(response: httpx.Response) -> str:
    if response.status_code == 503:
        page = "text/html" in response.headers.get("content-type", "") and "/static/portal.css" in response.text
        leaky = any(marker in response.text for marker in LEAK_MARKERS)
        retry = response.headers.get("retry-after", "").isdigit()
        return "503 portal page with Retry-After" if page and retry and not leaky else "503 WITHOUT the portal page"
    return str(response.status_code)


def register_one(client: httpx.Client, number: str, email: str, nonce_box: dict, outcome: Outcome) -> bool:
    """The consumer flow for one order; True once the registration is acknowledged (redirect to its status)."""
    page = client.get("/")
    if page.status_code != 200:
        outcome.add(classify(page))
        return False
    found = client.post("/", data={"_csrf_token": CSRF_RE.search(page.text).group(1), "order_number": number,
                                   "credential": email})
    if found.status_code != 302:
        outcome.add(classify(found))
        return False
    choose = client.get(found.headers["location"])
    if choose.status_code != 200:
        outcome.add(classify(choose))
        return False
    line = LINE_RE.search(choose.text).group(1)
    nonce = nonce_box.setdefault(number, NONCE_RE.search(choose.text).group(1))  # a retry re-sends the same nonce
    done = client.post(f"/orders/{number}", data={
        "_csrf_token": CSRF_RE.search(choose.text).group(1), "form_nonce": nonce, "resolution": "refund",
        f"qty_{line}": "1", f"reason_{line}": "too_small"})
    if done.status_code in (302, 303) and "/r/" in done.headers.get("location", ""):
        with outcome.lock:
            outcome.acked.append((time.monotonic(), done.headers["location"].split("?")[0]))
        outcome.add(f"{done.status_code} registered")
        return True
    outcome.add(classify(done))
    return False


def client_loop(base_url: str, numbers: list[int], stop: threading.Event, outcome: Outcome) -> None:
    nonces: dict = {}
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as client:
        for g in numbers:
            while not stop.is_set():
                try:
                    if register_one(client, f"LOAD-{g}", f"load{g}@example.se", nonces, outcome):
                        break
                except httpx.TransportError as exc:
                    outcome.add(f"transport error {type(exc).__name__}")
                time.sleep(0.2)
            if stop.is_set():
                return


def database_outage(outage_s: float, clients: int, log_dir: Path) -> bool:
    print(f"== (b) PostgreSQL stopped for {outage_s:g} s while {clients} clients register returns")
    pg = PrivatePostgres(free_port()).init()
    try:
        pg.start()
        url = database_url_with_name(pg.url, "portal")
        admin = sa.create_engine(pg.url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE portal"))
        admin.dispose()
        migrate(url)
        engine = make_engine(url)
        with session_scope(engine) as session:
            load_demo(session)
        with engine.begin() as conn:
            customer_id = conn.execute(sa.text("SELECT min(id) FROM customer")).scalar_one()
            for statement in BENCH_ORDERS_SQL.split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement.replace("%%", "%")), {"customer_id": customer_id, "n": 5000})
        engine.dispose()
        with portal_server(url, log_dir, LOOKUP_RATE_LIMIT="1000000") as (base_url, _server):
            outcome = Outcome()
            stop = threading.Event()
            threads = [threading.Thread(target=client_loop, args=(base_url, list(range(i + 1, 5001, clients)), stop,
                                                                   outcome), daemon=True) for i in range(clients)]
            for t in threads:
                t.start()
            time.sleep(6)
            acked_before = len(outcome.acked)
            answers_before = Counter(outcome.answers)
            stopped_at = time.monotonic()
            pg.stop("fast")
            print(f"PostgreSQL stopped after {acked_before} registrations "
                  f"(pg_ctl stop -m fast took {time.monotonic() - stopped_at:.1f} s)")
            probe = httpx.get(base_url + outcome.acked[0][1], timeout=10)  # a status page needs the database
            time.sleep(max(0.0, outage_s - (time.monotonic() - stopped_at)))
            answers_down = outcome.answers - answers_before
            acked_down = len(outcome.acked) - acked_before
            restart_at = time.monotonic()
            pg.start()
            print(f"PostgreSQL started again after {restart_at - stopped_at:.1f} s down")
            wait_for(lambda: any(t > restart_at for t, _ in outcome.acked), 60, "a registration after the restart")
            first_after = min(t for t, _ in outcome.acked if t > restart_at) - restart_at
            time.sleep(8)
            stop.set()
            for t in threads:
                t.join(30)
        acked = [path.split("/")[2] for _, path in outcome.acked]
        engine = make_engine(url)
        with engine.connect() as conn:
            stored = set(conn.execute(sa.text('SELECT rma FROM "return"')).scalars())
            on_load_orders = conn.execute(sa.text(
                "SELECT count(*) FROM \"return\" r JOIN orders o ON o.id = r.order_id WHERE o.number LIKE 'LOAD-%'"
            )).scalar_one()
        engine.dispose()
        missing = [rma for rma in acked if rma not in stored]
        leak = any(marker in probe.text for marker in LEAK_MARKERS)
        print(f"while down: a status page answered {probe.status_code}, "
              f"Retry-After {probe.headers.get('retry-after')!r}, "
              f"portal page {'yes' if '/static/portal.css' in probe.text else 'NO'}, "
              f"stack trace or exception names {'FOUND' if leak else 'none'}")
        print("answers while down: " + (", ".join(f"{k} x{v}" for k, v in sorted(answers_down.items())) or "none")
              + f"; registrations acknowledged while down: {acked_down}")
        print("all answers: " + ", ".join(f"{k} x{v}" for k, v in sorted(outcome.answers.items())))
        print(f"recovered by itself: first registration {first_after:.1f} s after PostgreSQL was back")
        print(f"registrations acknowledged: {len(acked)} ({acked_before} before the outage, "
              f"{len(acked) - acked_before} during and after); in the database: {len(acked) - len(missing)}, "
              f"missing: {len(missing)}; returns on the load orders in the database: {on_load_orders} "
              f"({on_load_orders - len(acked)} written but not acknowledged)")
        bad = sum(v for k, v in outcome.answers.items() if k.startswith("5") and "portal page" not in k)
        ok = not missing and not leak and probe.status_code == 503 and bad == 0
        print("friendly 503 while down, self-recovery, no acknowledged registration lost -> "
              + ("OK" if ok else "FAILED"))
        return ok
    finally:
        pg.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", nargs="?", default="all", choices=["worker-crash", "database-outage", "all"])
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--sms", type=int, default=150)
    parser.add_argument("--outage", type=float, default=10)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--database-url", default=DEFAULT_PG, help="server for the worker-crash case's database")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="portal-faults-"))
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; process logs in {log_dir}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    results = []
    if args.case in ("worker-crash", "all"):
        results.append(worker_crash(args.database_url, args.emails, args.sms, log_dir))
    if args.case in ("database-outage", "all"):
        results.append(database_outage(args.outage, args.clients, log_dir))
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

"""Cached label download vs the /hello baseline, on one real uvicorn server, in one run.

Usage: .venv/bin/python bench/labels_http.py [--requests 300]
Prints median and p95 latencies; the target is a cached download under 10 ms at the median.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx
from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.db import make_engine, migrate  # noqa: E402
from portal.demo import load_demo  # noqa: E402
from portal.models import Order, OrderLine  # noqa: E402
from portal.returns import policy, service  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(url: str) -> str:
    migrate(url)
    engine = make_engine(url)
    with Session(engine) as s:
        load_demo(s)
        order = s.exec(select(Order).where(Order.number == "SE-1001")).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce="bench-nonce-0123456789"), date.today())
        s.commit()
        return f"/r/{ret.rma}/{ret.status_token}"


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return out


def describe(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(len(samples) * 0.95) - 1]
    return f"{name:<34} median {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    url = f"sqlite:///{tmp}/bench.db"
    status_path = prepare(url)
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, BASE_URL=f"http://127.0.0.1:{port}")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "portal.app:create_app", "--factory", "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=ROOT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(100):
                try:
                    client.get("/hello")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            label = status_path + "/label.pdf?layout=thermal"
            first = timed(client, label, 1)[0]
            timed(client, "/hello", 20)
            hello = timed(client, "/hello", args.requests)
            cached = timed(client, label, args.requests)
            status = timed(client, status_path, args.requests)
        print(f"first (rendering) thermal label download: {first:.1f} ms")
        print(describe("baseline GET /hello", hello))
        print(describe("cached label download", cached))
        print(describe("status page", status))
        verdict = "OK" if statistics.median(cached) < 10 else "MISSED"
        print(f"target: cached download median < 10 ms -> {verdict}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

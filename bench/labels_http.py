"""Cached label download vs the /hello baseline, on one real uvicorn server, in one run.

Usage: .venv/bin/python bench/labels_http.py [--requests 300]
Prints median and p95 latencies; the target is a cached download under 10 ms at the median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from _server import portal_server, prepare  # noqa: E402 (puts the repository first on sys.path)


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
    with portal_server(url, Path(tmp)) as (base_url, _server), httpx.Client(base_url=base_url, timeout=30) as client:
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


if __name__ == "__main__":
    main()

"""The consumer status page under load vs the /hello baseline: one real server (`portal serve`), one run.

Usage: .venv/bin/python bench/status_load.py [--seconds 10] [--rounds 3] [--connections 64] [--workers 1]
                                             [--database-url postgresql://postgres@127.0.0.1:5432/test]
SQLite by default; with --database-url a throwaway database is created on that server and dropped after.
Targets: status page at >= 50 % of the /hello rate, status p99 < 50 ms, zero errors.
The generator runs on the same machine, so both share its cores: its own CPU time is printed. The two
endpoints take turns (--rounds of --seconds each) so that drift in the machine's speed hits both alike.
Requests carry the cookie a browser holds after its first visit (the CSRF cookie): consumers come back to
their status page; a first visit additionally pays for creating that cookie (--first-visit to measure it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

import httpx

from _load import LoadResult, run_load  # noqa: E402
from _server import portal_server, postgres_database, prepare  # noqa: E402

RATE_TARGET = 0.5
P99_TARGET_MS = 50.0


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def report(hello: LoadResult, status: LoadResult) -> None:
    print(hello.line("GET /hello"))
    print(status.line("GET status page"))
    ratio = status.rate / hello.rate if hello.rate else 0.0
    print(f"status rate / hello rate: {ratio:.0%} (target >= {RATE_TARGET:.0%}) -> {verdict(ratio >= RATE_TARGET)}")
    cpu_ratio = hello.server_cpu_ms_per_request / status.server_cpu_ms_per_request
    print(f"  the same from server CPU per request (less sensitive to other load on the machine): {cpu_ratio:.0%}")
    print(f"status p99: {status.percentile(99):.1f} ms (target < {P99_TARGET_MS:.0f} ms) -> "
          f"{verdict(status.percentile(99) < P99_TARGET_MS)}")
    print(f"hello p99: {hello.percentile(99):.1f} ms (target < {P99_TARGET_MS:.0f} ms) -> "
          f"{verdict(hello.percentile(99) < P99_TARGET_MS)}")
    errors = hello.errors + status.errors
    print(f"errors: {errors} (hello {dict(hello.statuses)} + {hello.transport_errors} transport, "
          f"status {dict(status.statuses)} + {status.transport_errors} transport) -> {verdict(errors == 0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-visit", action="store_true", help="send no cookies (every request a first visit)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="`portal serve --workers`")
    parser.add_argument("--database-url", default="", help="PostgreSQL server to create a throwaway database on")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    with contextlib.ExitStack() as stack:
        if args.database_url:
            url = stack.enter_context(postgres_database(args.database_url))
        else:
            url = f"sqlite:///{tmp}/bench.db"
        status_path = prepare(url)
        base_url, server = stack.enter_context(portal_server(url, tmp, workers=args.workers))
        page = httpx.get(base_url + status_path, timeout=10)
        assert page.status_code == 200 and status_path.split("/")[2] in page.text, page.status_code
        backend = "PostgreSQL" if args.database_url else "SQLite"
        print(f"portal serve --workers {args.workers} on {backend}; {args.connections} connections, "
              f"{args.seconds:g} s per endpoint; status page {len(page.content)} bytes; load average before "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        headers = {} if args.first_visit else {"Cookie": "; ".join(f"{k}={v}" for k, v in page.cookies.items())}
        print(f"cookies sent: {headers.get('Cookie', 'none').split('=')[0]}")
        for path in ("/hello", status_path):  # warm-up: imports, template compilation, connection pool
            run_load(base_url + path, args.connections, 1.5, headers=headers)
        rounds = {"/hello": [], status_path: []}
        for _ in range(args.rounds):
            for path, results in rounds.items():
                results.append(run_load(base_url + path, args.connections, args.seconds, headers=headers,
                                        server_cpu=server.cpu_seconds))
        hello, status = (LoadResult.combined(results) for results in rounds.values())
        report(hello, status)


if __name__ == "__main__":
    main()

"""The status page with 1,000 and with 1,000,000 returns in PostgreSQL: does its latency grow with the data?

Usage: .venv/bin/python bench/status_scale.py [--database-url postgresql://postgres@127.0.0.1:5432/test]
                                              [--returns 1000 1000000] [--seconds 8] [--connections 16] [--keep]
Creates the database portal_bench_scale on that server (dropped at the end unless --keep), migrates it, loads the
demo data and one measured return, then bulk-inserts orders, order lines, returns, return lines, events and refunds
with generate_series. At each size it loads the status page as served (from memory, or from the render-once cache:
one query) and rendered afresh (?lang=sv bypasses the cache: the full set of queries), and prints p50/p99. The
served page reads no table while nothing is committed (portal/commit_counter.py), so it should not grow at all.
Target: p99 grows by less than 50 % from the smallest to the largest size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from _load import LoadResult, run_load  # noqa: E402
from _server import portal_server, postgres_database, prepare  # noqa: E402

from portal.db import make_engine  # noqa: E402

GROWTH_TARGET = 0.5
BATCH = 250_000

# One bench order per g, with one line, one return (status cycling through the lifecycle), one return line,
# two timeline events, and an issued refund for every fifth return.
GROW_SQL = [
    """INSERT INTO orders (number, customer_id, email, postcode, country, currency, placed_at, delivered_at,
           shipping_paid_minor, standard_shipping_minor, order_discount_minor, created_at, updated_at)
       SELECT 'BENCH-' || g, :customer_id, 'bench' || g || '@example.se', '11455', 'SE', 'SEK',
              now() - interval '12 days', now() - interval '9 days', 4900, 4900, 0, now(), now()
       FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g""",
    """INSERT INTO order_line (order_id, line_no, sku, name, category, quantity, unit_price_minor, discount_minor,
           vat_rate, returnable)
       SELECT o.id, 1, 'SKU-' || (g % 500), 'Bench item ' || (g % 500), 'clothing', 1, 29900, 0, 0.25, true
       FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g
       JOIN orders o ON o.number = 'BENCH-' || g""",
    """INSERT INTO "return" (rma, order_id, status, status_reason, method, resolution, language, status_token,
           idempotency_key, is_norway, version, created_at, updated_at)
       SELECT 'B' || lpad(g::text, 9, '0'), o.id,
              (ARRAY['label_issued', 'in_transit', 'arrived', 'resolved', 'closed'])[1 + g % 5], '', 'drop_off',
              'refund', 'sv', md5('bench-token-' || g), 'bench-' || g, false, 1, now(), now()
       FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g
       JOIN orders o ON o.number = 'BENCH-' || g""",
    """INSERT INTO return_line (return_id, order_line_id, quantity, reason, comment, resolution, received_quantity,
           acceptance, rejection_reason)
       SELECT r.id, ol.id, 1, 'too_small', '', 'refund', 0, 'pending', ''
       FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g
       JOIN "return" r ON r.rma = 'B' || lpad(g::text, 9, '0')
       JOIN order_line ol ON ol.order_id = r.order_id""",
    """INSERT INTO return_event (return_id, type, at, actor, data)
       SELECT r.id, t.type, now(), 'bench', '{}'
       FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g
       JOIN "return" r ON r.rma = 'B' || lpad(g::text, 9, '0')
       CROSS JOIN (VALUES ('return.registered'), ('label.issued')) t(type)""",
    """INSERT INTO refund (return_id, amount_minor, currency, method, state, due_date, issued_at, breakdown,
           created_at, failure_reason, attempts)
       SELECT r.id, 29900, 'SEK', 'original_payment', 'issued', current_date, now(), '{}', now(), '', 1
       FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g
       JOIN "return" r ON r.rma = 'B' || lpad(g::text, 9, '0')
       WHERE g % 5 = 3""",
]


def bench_customer(engine) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.text(
            "INSERT INTO customer (email, first_name, last_name, language, street, postcode, city, country, "
            "created_at) "
            "VALUES ('bench@example.se', 'Bench', 'Customer', 'sv', 'Bänkgatan 1', '11455', 'Stockholm', 'SE', now()) "
            "RETURNING id")).scalar_one()


def count_returns(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text('SELECT count(*) FROM "return"')).scalar_one()


def grow(engine, customer_id: int, first: int, last: int) -> None:
    """Bench rows number first..last (inclusive), in batches, then VACUUM ANALYZE (as a settled database is:
    otherwise autovacuum starts on the new rows in the middle of the measurement)."""
    started = time.monotonic()
    for low in range(first, last + 1, BATCH):
        high = min(low + BATCH - 1, last)
        with engine.begin() as conn:
            for statement in GROW_SQL:
                conn.execute(sa.text(statement), {"customer_id": customer_id, "first": low, "last": high})
        if last - first > BATCH:
            print(f"  … {high:,} bench returns inserted ({time.monotonic() - started:.0f} s)", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def measure(base_url: str, path: str, connections: int, seconds: float, server_cpu) -> tuple[LoadResult, LoadResult]:
    run_load(base_url + path, connections, 1.5)  # warm-up (and the cached page is (re)built)
    run_load(base_url + path + "?lang=sv", connections, 1.5)
    cached = run_load(base_url + path, connections, seconds, server_cpu=server_cpu)
    rendered = run_load(base_url + path + "?lang=sv", connections, seconds, server_cpu=server_cpu)
    return cached, rendered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--returns", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the portal_bench_scale database")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    results: list[tuple[int, LoadResult, LoadResult]] = []
    with postgres_database(args.database_url, "portal_bench_scale", keep=args.keep) as url:
        status_path = prepare(url)
        engine = make_engine(url)
        customer_id = bench_customer(engine)
        with portal_server(url, tmp) as (base_url, server):
            assert httpx.get(base_url + status_path, timeout=10).status_code == 200
            for target in sorted(args.returns):
                have = count_returns(engine)
                if target > have:
                    print(f"growing to {target:,} returns …", flush=True)
                    done = have - 1  # bench rows are numbered from 1; the demo return is not one of them
                    grow(engine, customer_id, done + 1, target - 1)
                total = count_returns(engine)
                cached, rendered = measure(base_url, status_path, args.connections, args.seconds, server.cpu_seconds)
                print(f"{total:>9,} returns  " + cached.line("cached page"), flush=True)
                print(f"{'':>9}          " + rendered.line("rendered (?lang=sv)"), flush=True)
                results.append((total, cached, rendered))
        engine.dispose()
    if len(results) >= 2:
        (small, c0, r0), (large, c1, r1) = results[0], results[-1]
        for name, before, after in (("cached page", c0, c1), ("rendered page", r0, r1)):
            growth = after.percentile(99) / before.percentile(99) - 1
            print(f"{name}: p99 {before.percentile(99):.1f} ms at {small:,} -> {after.percentile(99):.1f} ms at "
                  f"{large:,} returns: {growth:+.0%} (target < +{GROWTH_TARGET:.0%}) -> "
                  f"{'OK' if growth < GROWTH_TARGET else 'MISSED'}")
    print("database " + ("kept: portal_bench_scale" if args.keep else "portal_bench_scale dropped"))


if __name__ == "__main__":
    main()

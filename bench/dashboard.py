"""Benchmark: the merchant dashboard's queries over 100,000 orders.

Run by hand:  .venv/bin/python bench/dashboard.py [--orders 100000] [--runs 10]
                                                  [--database-url postgresql://.../empty_db]

Fills a temporary SQLite database (or the given EMPTY database, which it migrates) by bulk insert:
orders over the last 400 days with 2-3 lines each, a return for one order in four, a paid refund
for most returns, some unpaid and overdue, and Norwegian returns waiting at consolidation. Then
times each figure of portal.dashboard.metrics (and the whole page's worth, build_dashboard) for
the default 90 days and for a full year, next to `SELECT sum(quantity) FROM order_line` (one
pass over the biggest table, which the return rates cannot avoid: orders.placed_at has no index)
in the same run. Medians of --runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal.dashboard import metrics  # noqa: E402
from portal.dashboard.filters import DashboardFilter  # noqa: E402
from portal.db import make_engine, migrate  # noqa: E402
from portal.models import Customer, Order, OrderLine, Refund, Return, ReturnEvent, ReturnLine  # noqa: E402

TZ = "Europe/Stockholm"
COUNTRIES = [("SE", "SEK"), ("NO", "NOK"), ("DK", "DKK"), ("FI", "EUR")]
SKUS = [(f"SKU-{i:03d}", ("shirts", "shoes", "jackets", "socks", "")[i % 5]) for i in range(200)]
REASONS = ["too_small", "too_large", "not_as_described", "damaged", "wrong_item", "changed_mind", "other"]


def fill(engine: sa.Engine, count: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    rows: dict[sa.Table, list[dict]] = {t: [] for t in (Customer.__table__, Order.__table__, OrderLine.__table__,
                                                        Return.__table__, ReturnLine.__table__, Refund.__table__,
                                                        ReturnEvent.__table__)}
    line_id = return_id = 0
    for i in range(1, count + 1):
        country, currency = COUNTRIES[(i // 4 + i) % 4]
        placed = now - timedelta(days=rng.randint(1, 400), minutes=i)
        rows[Customer.__table__].append(dict(id=i, email=f"c{i}@example.com", first_name="C", last_name=str(i),
                                             language="sv", street="Gatan 1", postcode="11455", city="Stad",
                                             country=country, created_at=placed))
        rows[Order.__table__].append(dict(id=i, number=f"D-{i:07d}", customer_id=i, email=f"c{i}@example.com",
                                          postcode="11455", country=country, currency=currency, placed_at=placed,
                                          delivered_at=placed + timedelta(days=2), shipping_paid_minor=0,
                                          standard_shipping_minor=0, order_discount_minor=0, created_at=placed,
                                          updated_at=placed))
        lines = []
        for no in range(1, rng.randint(2, 3) + 1):
            line_id += 1
            sku, category = rng.choice(SKUS)
            lines.append((line_id, rng.randint(1, 3)))
            rows[OrderLine.__table__].append(dict(id=line_id, order_id=i, line_no=no, sku=sku, name=f"Product {sku}",
                                                  category=category, quantity=lines[-1][1], unit_price_minor=29900,
                                                  discount_minor=0, vat_rate=0.25, returnable=True))
        if i % 4:
            continue
        return_id += 1
        created = placed + timedelta(days=rng.randint(3, 20))
        waiting = country == "NO" and rng.random() < 0.02
        status = "at_consolidation" if waiting else rng.choice(["resolved"] * 8 + ["cancelled", "in_transit"])
        rows[Return.__table__].append(dict(
            id=return_id, rma=f"B{return_id:07d}", order_id=i, status=status, status_reason="", method="drop_off",
            resolution="refund", language="sv", status_token=f"tok{return_id:020d}",
            idempotency_key=f"key{return_id:020d}", is_norway=country == "NO", version=1, created_at=created,
            updated_at=created))
        for ol_id, quantity in lines[:rng.randint(1, len(lines))]:
            rows[ReturnLine.__table__].append(dict(return_id=return_id, order_line_id=ol_id, quantity=quantity,
                                                   reason=rng.choice(REASONS), comment="", resolution="refund",
                                                   received_quantity=quantity, acceptance="accepted", rejection_reason=""))
        if waiting:
            rows[ReturnEvent.__table__].append(dict(return_id=return_id, type="parcel.at_consolidation",
                                                    at=now - timedelta(days=rng.randint(0, 12)), actor="carrier",
                                                    data={"from": "in_transit", "to": "at_consolidation"}))
        elif status == "resolved":
            paid = rng.random() < 0.9
            issued = min(created + timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 23)), now)
            rows[Refund.__table__].append(dict(
                return_id=return_id, amount_minor=rng.randint(1, 3) * 29900, currency=currency, method="original_payment",
                state="issued" if paid else rng.choice(["requested", "failed"]), due_date=(created + timedelta(days=14)).date(),
                issued_at=issued if paid else None, breakdown={}, created_at=created, idempotency_key=f"{return_id}:1",
                failure_reason="", attempts=1))
    started = time.perf_counter()
    with engine.begin() as conn:
        for table, found in rows.items():
            for start in range(0, len(found), 10_000):
                conn.execute(table.insert(), found[start:start + 10_000])
        if engine.dialect.name == "postgresql":
            for table in rows:
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                                     f"(SELECT max(id) FROM \"{table.name}\"))"))
            conn.execute(sa.text("ANALYZE"))
        else:
            conn.execute(sa.text("ANALYZE"))
    print(f"filled {count:,} orders, {line_id:,} lines, {return_id:,} returns, {len(rows[Refund.__table__]):,} refunds "
          f"in {time.perf_counter() - started:.1f} s")


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        migrate(url)
        engine = make_engine(url)
        fill(engine, args.orders)
        now = datetime.now(timezone.utc)
        today = now.date()
        with Session(engine) as db:
            baseline = median_ms(lambda: db.exec(sa.text("SELECT sum(quantity) FROM order_line")).one(), args.runs)
            print(f"{engine.dialect.name}: SELECT sum(quantity) FROM order_line  {baseline:8.1f} ms (baseline)")
            for days in (90, 365):
                f = DashboardFilter(today - timedelta(days=days - 1), today, None, 5, TZ)
                print(f"-- last {days} days, all countries")
                for name, fn in (
                    ("return rates (SKU, category, total)", lambda: metrics.return_rates(db, f)),
                    ("reasons", lambda: metrics.reasons(db, f)),
                    ("refunds by week", lambda: metrics.refunds_by_week(db, f)),
                    ("days to refund", lambda: metrics.days_to_refund(db, f)),
                    ("overdue refunds", lambda: metrics.overdue_refunds(db, f, now)),
                    ("Norway storage", lambda: metrics.norway_storage(db, f, now)),
                    ("whole dashboard", lambda: metrics.build_dashboard(db, f, now)),
                ):
                    ms = median_ms(fn, args.runs)
                    print(f"   {name:<36} {ms:8.1f} ms  ({ms / baseline:4.1f} x baseline)")
            dash = metrics.build_dashboard(db, DashboardFilter(today - timedelta(days=89), today, None, 5, TZ), now)
            print(f"sanity: overall return rate {dash.rates.percent} %, {dash.days.count} refunds paid, median "
                  f"{metrics.days_text(dash.days.median)} days, {dash.overdue.count} overdue, "
                  f"{len(dash.norway.returns)} waiting in Norway")
        engine.dispose()


if __name__ == "__main__":
    main()

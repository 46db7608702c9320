"""Benchmark: back-office search over 100,000 returns.

Run by hand:  .venv/bin/python bench/search.py [--returns 100000] [--runs 30] [--proposed-indexes]
                                               [--database-url postgresql://.../empty_db]

Fills a temporary SQLite database (or the given EMPTY database, which it migrates) with
customers, orders and one return each, by bulk insert; then times every search kind through
`portal.staff.search.search_returns` (the whole service: id look-ups plus the result rows)
and prints the median next to a `SELECT 1` round trip in the same run, with the query plan
of each statement (SQLite) so a full table scan shows. `--proposed-indexes` first creates
the expression indexes portal/staff/search.py wants (lower(email), lower(first_name), lower(last_name)).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal.db import make_engine, migrate  # noqa: E402
from portal.models import Customer, Order, Return  # noqa: E402
from portal.returns.identifiers import new_rma  # noqa: E402
from portal.staff.search import search_returns  # noqa: E402

TARGET_SECONDS = 1.0
FIRST = ["Anna", "Erik", "Maja", "Ola", "Kari", "Nils", "Freja", "Mads", "Aino", "Eero", "Oskar", "Ingrid", "Sofia",
         "Lars", "Elin", "Johan", "Sara", "Mikko", "Liisa", "Søren", "Åsa", "Öjvind", "Ebba", "Hugo", "Alva", "Leo"]
LAST = ["Svensson", "Lindqvist", "Berg", "Nordmann", "Hansen", "Johansen", "Nielsen", "Jensen", "Virtanen", "Korhonen",
        "Nyström", "Andersson", "Karlsson", "Nilsson", "Eriksson", "Larsen", "Pedersen", "Mäkinen", "Östberg", "Åkesson",
        "Lundgren", "Holm", "Dahl", "Strand", "Lehtonen", "Bakke", "Olsen", "Sørensen", "Ekström", "Wallin"]
# country, currency, E.164 prefix of a mobile number, the same prefix in national form
COUNTRIES = [("SE", "SEK", "+4670", "070"), ("NO", "NOK", "+479", "9"), ("DK", "DKK", "+452", "2"), ("FI", "EUR", "+35840", "040")]
PROPOSED = [
    "CREATE INDEX IF NOT EXISTS ix_customer_email_lower ON customer (lower(email))",
    "CREATE INDEX IF NOT EXISTS ix_customer_first_name_lower ON customer (lower(first_name){ops})",
    "CREATE INDEX IF NOT EXISTS ix_customer_last_name_lower ON customer (lower(last_name){ops})",
]


def fill(engine: sa.Engine, count: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    customers, orders, returns = [], [], []
    rmas: set[str] = set()
    for i in range(1, count + 1):
        country, currency, code, local = COUNTRIES[i % len(COUNTRIES)]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        placed = now - timedelta(days=rng.randint(1, 400), minutes=i)
        customers.append(dict(id=i, email=f"{first}.{last}.{i}@example.com".lower(), phone=f"{code}{i:07d}",
                              first_name=first, last_name=last, language="sv", street="Gatan 1", postcode="11455",
                              city="Stockholm", country=country, created_at=placed))
        orders.append(dict(id=i, number=f"B-{i:07d}", customer_id=i, email=customers[-1]["email"], postcode="11455",
                           country=country, currency=currency, placed_at=placed, delivered_at=placed + timedelta(days=2),
                           shipping_paid_minor=4900, standard_shipping_minor=4900, order_discount_minor=0,
                           created_at=placed, updated_at=placed))
        rma = new_rma()
        while rma in rmas:
            rma = new_rma()
        rmas.add(rma)
        created = placed + timedelta(days=5)
        returns.append(dict(id=i, rma=rma, order_id=i, status=rng.choice(["label_issued", "in_transit", "arrived", "resolved"]),
                            status_reason="", method="drop_off", resolution="refund", language="sv",
                            status_token=f"tok{i:020d}", idempotency_key=f"key{i:020d}",
                            tracking_number=f"00370{i:013d}" if i % 2 else None, is_norway=country == "NO", version=1,
                            created_at=created, updated_at=created))
    started = time.perf_counter()
    with engine.begin() as conn:
        for table, rows in ((Customer.__table__, customers), (Order.__table__, orders), (Return.__table__, returns)):
            for start in range(0, len(rows), 10_000):
                conn.execute(table.insert(), rows[start:start + 10_000])
        if engine.dialect.name == "postgresql":
            for table in ("customer", "orders", "return"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), {count})"))
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    print(f"inserted {count:,} customers, orders and returns in {time.perf_counter() - started:.1f} s")
    target = count // 2 + 1  # odd: has a tracking number
    c, o, r = customers[target - 1], orders[target - 1], returns[target - 1]
    country = COUNTRIES[target % len(COUNTRIES)]
    national = country[3] + c["phone"][len(country[2]):]
    return {
        "recent (empty query)": "",
        "RMA (lower case, dashed)": f"{r['rma'][:4]}-{r['rma'][4:]}".lower(),
        "order number": o["number"].lower(),
        "e-mail (upper case)": c["email"].upper(),
        "phone (E.164)": c["phone"],
        "phone (national, spaced)": " ".join(national[k:k + 3] for k in range(0, len(national), 3)),
        "tracking number": r["tracking_number"],
        "name prefix (last name)": c["last_name"][:4].lower(),
        "full name": f"{c['first_name']} {c['last_name']}",
        "unknown": "nobody-at-all@example.org",
    }


def median_ms(fn, runs: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def plans(engine: sa.Engine, session: Session, query: str) -> list[str]:
    """SQLite query plans of every statement one search runs (SCAN without an index = full table scan)."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        search_returns(session, query)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    lines = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in seen:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            steps = [row[-1] for row in cursor.fetchall()]
            lines.append(" | ".join(s for s in steps if s.startswith(("SCAN", "SEARCH"))))
    finally:
        raw.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--returns", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--proposed-indexes", action="store_true", help="create the expression indexes first")
    parser.add_argument("--database-url", help="an EMPTY database to migrate and fill (default: a temporary SQLite file)")
    parser.add_argument("--plans", action="store_true", help="print the SQLite query plan of each statement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        engine = make_engine(url)
        queries = fill(engine, args.returns)
        if args.proposed_indexes:
            ops = " text_pattern_ops" if engine.dialect.name == "postgresql" else ""
            with engine.begin() as conn:
                for ddl in PROPOSED:
                    conn.execute(sa.text(ddl.format(ops=ops)))
                conn.execute(sa.text("ANALYZE"))
        print(f"database: {engine.dialect.name}; proposed indexes: {'yes' if args.proposed_indexes else 'no'}; "
              f"median of {args.runs} runs")
        with Session(engine) as session:
            baseline = median_ms(lambda: session.exec(sa.text("SELECT 1")).one(), args.runs)
            print(f"{'SELECT 1 round trip (baseline)':34} {baseline:8.2f} ms")
            worst = 0.0
            for label, query in queries.items():
                found = len(search_returns(session, query).rows)
                took = median_ms(lambda: search_returns(session, query), args.runs)
                worst = max(worst, took)
                print(f"{label:34} {took:8.2f} ms  ({took / baseline:,.0f}x baseline)  {found:>3} rows  q={query!r}")
                if args.plans and engine.dialect.name == "sqlite":
                    for plan in plans(engine, session, query):
                        print(f"{'':36}{plan}")
        engine.dispose()
    verdict = "OK" if worst / 1000 < TARGET_SECONDS else "TOO SLOW"
    print(f"slowest search {worst:.1f} ms; target under {TARGET_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    main()

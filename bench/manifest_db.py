"""Benchmark: the manifest data of a collection with 10,000 return lines, from the database.

Run by hand:  .venv/bin/python bench/manifest_db.py [--lines 10000] [--runs 3] [--database-url URL]

Fills a freshly migrated database (a temporary SQLite file unless --database-url names an
EMPTY database) with Norwegian orders, export declarations and returns matched to them, all
in one collection. Then, in the same run and on the same rows, it times:

  read rows       the bare SELECTs the manifest needs (return + order, return lines x order
                  lines x customs match, export declarations and lines), rows fetched, nothing else
  build manifest  portal.norway.manifests.build_for_returns: the same reads through the ORM,
                  the stored matches turned back into assessments, manifest lines per goods
                  item, currency conversion and totals per CN code (customs.build_manifest)
  freeze          build manifest + the JSON document stored on the collection

Target: build manifest under 2 s for 10,000 lines.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from customs.documents import manifest_to_json  # noqa: E402
from customs.mrn import make_mrn  # noqa: E402
from customs.rates import RateTable  # noqa: E402
from portal.db import make_engine, migrate  # noqa: E402
from portal.models import (  # noqa: E402
    Collection,
    CollectionItem,
    Customer,
    ExportDeclaration,
    ExportLine,
    MerchantPolicy,
    Order,
    OrderLine,
    Return,
    ReturnLine,
    ReturnLineCustoms,
)
from portal.norway import collections, manifests  # noqa: E402

TARGET_SECONDS = 2.0
LINES_PER_RETURN = 4
CN_CODES = ("61091000", "61102010", "62019300", "61159500", "64035900", "62034231")
CURRENCIES = ("NOK", "NOK", "NOK", "SEK", "EUR", "DKK")
RATES = RateTable(date=date(2026, 11, 23), source="ECB",
                  rates={"SEK": Decimal("11.1340"), "NOK": Decimal("11.7250"), "DKK": Decimal("7.4590")})
RESULTS = [
    {"ok": True, "code": "declaration", "reason": "Export declaration found."},
    {"ok": True, "code": "mrn", "reason": "MRN is valid."},
    {"ok": True, "code": "export_line", "reason": "Order line is on the export declaration."},
    {"ok": True, "code": "quantity", "reason": "Within the exported quantity."},
    {"ok": True, "code": "time_limit", "reason": "Within 3 years of export."},
]


def fill(engine, line_count: int, seed: int = 7) -> str:
    """Insert the rows with bulk INSERTs; returns the collection reference."""
    rng = random.Random(seed)
    returns = max(1, line_count // LINES_PER_RETURN)
    now = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    placed = now - timedelta(days=20)
    customers, orders, order_lines, declarations, export_lines = [], [], [], [], []
    rets, return_lines, customs, items = [], [], [], []
    for n in range(1, returns + 1):
        currency = rng.choice(CURRENCIES)
        customers.append(dict(id=n, email=f"c{n}@example.no", first_name="Kari", last_name=f"Nordmann {n}",
                              language="nb", street="Storgata 1", postcode="0159", city="Oslo", country="NO",
                              created_at=placed))
        orders.append(dict(id=n, number=f"NO-{n:07d}", customer_id=n, email=f"c{n}@example.no", postcode="0159",
                           country="NO", currency=currency, placed_at=placed, delivered_at=placed + timedelta(days=3),
                           created_at=placed, updated_at=placed))
        mrn = make_mrn(26, "SE", f"{n:012d}", "B")
        declarations.append(dict(id=n, order_id=n, mrn=mrn, export_date=placed.date(), exporter_eori="SE5566778899",
                                 invoice_number=f"INV-{n}", invoice_date=placed.date(), currency=currency,
                                 entry_route="voec", voec_number="VOEC2034567"))
        rets.append(dict(id=n, rma=f"R{n:07d}", order_id=n, status="at_consolidation", status_reason="", method="drop_off",
                         resolution="refund", language="nb", status_token=f"token-{n:012d}", idempotency_key=f"key-{n}",
                         is_norway=True, version=1, created_at=placed, updated_at=placed))
        items.append(dict(id=n, collection_id=1, return_id=n, added_at=now, added_by="bench"))
        for k in range(1, LINES_PER_RETURN + 1):
            line_id = (n - 1) * LINES_PER_RETURN + k
            quantity = rng.randint(1, 3)
            price = rng.randint(9_900, 299_900)
            cn = rng.choice(CN_CODES)
            order_lines.append(dict(id=line_id, order_id=n, line_no=k, sku=f"SKU-{k}", name=f"Article {k}", category="clothing",
                                    quantity=quantity, unit_price_minor=price, discount_minor=0, vat_rate=Decimal("0.25"),
                                    returnable=True, hs_code=cn, origin_country="PT", net_weight_grams=300))
            export_lines.append(dict(id=line_id, declaration_id=n, goods_item_number=k, order_line_id=line_id, cn_code=cn,
                                     description=f"Article {k}", quantity=quantity, unit_value_minor=price,
                                     origin_country="PT", net_weight_grams=300 * quantity, agricultural=False))
            return_lines.append(dict(id=line_id, return_id=n, order_line_id=line_id, quantity=quantity, reason="too_small",
                                     comment="", resolution="refund", received_quantity=0, acceptance="pending",
                                     rejection_reason=""))
            customs.append(dict(id=line_id, return_line_id=line_id, declaration_id=n, mrn=mrn,
                                allocations=[{"goods_item_number": k, "quantity": quantity}], relief="F01",
                                procedure="6110", needs_attention=False, results=RESULTS, assessed_at=now))
    reference = "NO-2026-11-24-A"
    with Session(engine) as s:
        s.add(MerchantPolicy(exporter_eori="SE5566778899"))
        s.add(Collection(id=1, reference=reference, planned_for=now, state="planned", created_at=now, created_by="bench"))
        s.flush()
        for model, rows in ((Customer, customers), (Order, orders), (OrderLine, order_lines),
                            (ExportDeclaration, declarations), (ExportLine, export_lines), (Return, rets),
                            (ReturnLine, return_lines), (ReturnLineCustoms, customs), (CollectionItem, items)):
            for start in range(0, len(rows), 5_000):
                s.execute(sa.insert(model), rows[start:start + 5_000])
        s.commit()
    return reference


def read_rows(engine, reference: str) -> int:
    """The rows the manifest is made of, as plain tuples: the floor any manifest build stands on."""
    with engine.connect() as conn:
        collection_id = conn.execute(select(Collection.id).where(Collection.reference == reference)).scalar_one()
        ids = [r[0] for r in conn.execute(select(CollectionItem.return_id).where(
            CollectionItem.collection_id == collection_id, CollectionItem.removed_at.is_(None)))]
        heads = conn.execute(select(Return.id, Return.rma, Order.number, Order.currency)
                             .join(Order, Order.id == Return.order_id).where(Return.id.in_(ids))).all()
        lines = conn.execute(
            select(ReturnLine.__table__, OrderLine.__table__, ReturnLineCustoms.__table__)
            .select_from(ReturnLine.__table__.join(OrderLine.__table__, OrderLine.id == ReturnLine.order_line_id)
                         .outerjoin(ReturnLineCustoms.__table__, ReturnLineCustoms.return_line_id == ReturnLine.id))
            .where(ReturnLine.return_id.in_(ids))
        ).all()
        declaration_ids = {row.declaration_id for row in lines if row.declaration_id}
        decls = conn.execute(select(ExportDeclaration.__table__).where(ExportDeclaration.id.in_(declaration_ids))).all()
        exports = conn.execute(select(ExportLine.__table__).where(ExportLine.declaration_id.in_(declaration_ids))).all()
    return len(heads) + len(lines) + len(decls) + len(exports)


def build(engine, reference: str, now: datetime):
    with Session(engine) as s:
        collection = collections.collection_by_reference(s, reference)
        return manifests.build_for_returns(s, reference, collections.active_return_ids(s, collection), now, table=RATES)


def timed(function, runs: int) -> tuple[list[float], list[float], object]:
    """Wall-clock and CPU seconds per run (CPU time is steadier on a busy machine)."""
    walls, cpus, result = [], [], None
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus, result


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="", help="an EMPTY database; default: a temporary SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        engine = make_engine(url)
        started = time.perf_counter()
        reference = fill(engine, args.lines)
        print(f"database: {engine.url.render_as_string(hide_password=True)} ({engine.dialect.name})")
        print(f"filled {args.lines} return lines in {args.lines // LINES_PER_RETURN} returns "
              f"in {time.perf_counter() - started:.1f} s")

        now = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
        read_wall, read_cpu, row_count = timed(lambda: read_rows(engine, reference), args.runs)
        build_wall, build_cpu, manifest = timed(lambda: build(engine, reference, now), args.runs)
        freeze_wall, freeze_cpu, document = timed(lambda: manifest_to_json(build(engine, reference, now)), args.runs)
        engine.dispose()

    assert len(manifest.lines) == args.lines // LINES_PER_RETURN * LINES_PER_RETURN
    assert manifest.grand_total.declared_value_minor == sum(line.declared_value_minor for line in manifest.lines)
    assert sum(t.declared_value_minor for t in manifest.totals_by_cn_code.values()) == manifest.grand_total.declared_value_minor
    median = statistics.median(build_wall)
    print(f"runs: {args.runs}, medians          wall        cpu")
    print(f"read rows       {_ms(read_wall)} {_ms(read_cpu)}  {row_count} rows")
    print(f"build manifest  {_ms(build_wall)} {_ms(build_cpu)}  {len(manifest.lines)} lines, "
          f"{len(manifest.totals_by_cn_code)} CN codes")
    print(f"freeze (+JSON)  {_ms(freeze_wall)} {_ms(freeze_cpu)}  {len(document) // 1024} KiB stored")
    print(f"build / read    {median / statistics.median(read_wall):8.1f} x")
    print(f"target < {TARGET_SECONDS:.0f} s (wall): {'PASS' if median < TARGET_SECONDS else 'FAIL'}")


if __name__ == "__main__":
    main()

"""Benchmark: `portal import-orders` on a generated 10,000-row CSV against bare inserts of the same rows.

Run by hand:  .venv/bin/python bench/import_orders.py [--rows 10000] [--lines-per-order 4]

Writes a CSV (Swedish orders, and every fifth order Norwegian with an export declaration) into a
temporary folder, migrates two temporary SQLite databases, and in the same run times:

  import CLI     `portal import-orders FILE` in-process (click, rich progress on stderr): CSV parsing,
                 the API's msgspec validation, upsert_order per order in its own savepoint, commit
  re-run         the same command again on the now-filled database (everything unchanged)
  bare inserts   csv.DictReader + SQLAlchemy Core executemany INSERTs of the same customers, orders,
                 order lines, export declarations and export lines in one transaction, no checks

and prints rows per second for each and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from customs.mrn import make_mrn  # noqa: E402
from portal.api.csv_import import EXPORT_HEADER  # noqa: E402
from portal.db import make_engine, migrate  # noqa: E402
from portal.models import Customer, ExportDeclaration, ExportLine, Order, OrderLine  # noqa: E402


def generate(path: Path, rows: int, per_order: int) -> int:
    start = datetime(2026, 10, 1, 9, 0, tzinfo=timezone.utc)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=EXPORT_HEADER, lineterminator="\n")
        writer.writeheader()
        n = 0
        while written < rows:
            n += 1
            norway = n % 5 == 0
            placed = start + timedelta(minutes=7 * n)
            head = dict(order_number=f"{'NO' if norway else 'SE'}-B{n:06d}", placed_at=placed.isoformat().replace("+00:00", "Z"),
                        delivered_at=(placed + timedelta(days=2)).isoformat().replace("+00:00", "Z"),
                        currency="NOK" if norway else "SEK", country="NO" if norway else "SE",
                        email=f"customer{n}@example.{'no' if norway else 'se'}", phone=f"+467{n:08d}", first_name="Kim",
                        last_name=f"Bench{n}", street=f"Gatan {n % 90 + 1}", postcode="0159" if norway else "113 50",
                        city="Oslo" if norway else "Stockholm", language="nb" if norway else "sv",
                        shipping_paid_minor=4900, standard_shipping_minor=4900, order_discount_minor=0)
            if norway:
                head.update(mrn=make_mrn(26, "SE", n, "B"), export_date=placed.date().isoformat(),
                            exporter_eori="SE5561234567", invoice_number=f"INV-{n}", invoice_date=placed.date().isoformat(),
                            entry_route="voec", voec_number="VOEC2034567", export_currency="NOK")
            for line_no in range(1, min(per_order, rows - written) + 1):
                row = dict(head, line_no=line_no, sku=f"SKU-{line_no:03d}", name=f"Article {line_no}", category="clothing",
                           quantity=1 + line_no % 3, unit_price_minor=19900 + 1000 * line_no, discount_minor=0,
                           vat_rate="0.25", returnable="true", hs_code="61091000", origin_country="PT", net_weight_grams=200)
                if norway:
                    row.update(goods_item_number=line_no, cn_code="61091000")
                writer.writerow(row)
                written += 1
    return written


def run_cli(path: Path, url: str) -> tuple[float, str]:
    from click.testing import CliRunner

    from portal.cli import main
    from portal.config import get_settings

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["import-orders", str(path)])
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"import-orders failed:\n{result.output}")
    return elapsed, result.output.strip().splitlines()[-1]


def run_cli_visible(path: Path, url: str) -> float:
    """The first run goes through the real command line so the progress bar is seen."""
    import subprocess

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "portal.cli", "import-orders", str(path)], check=True,
                   env=dict(os.environ, DATABASE_URL=url))
    return time.perf_counter() - started


def bare_inserts(path: Path, url: str) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_order: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_order[row["order_number"]].append(row)
    ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None  # noqa: E731
    with engine.begin() as conn:
        numbers = list(by_order)
        conn.execute(Customer.__table__.insert(), [
            dict(id=i, email=r[0]["email"], phone=r[0]["phone"], first_name=r[0]["first_name"], last_name=r[0]["last_name"],
                 language=r[0]["language"], street=r[0]["street"], postcode=r[0]["postcode"], city=r[0]["city"],
                 country=r[0]["country"], created_at=datetime.now(timezone.utc))
            for i, r in enumerate(by_order.values(), start=1)])
        now = datetime.now(timezone.utc)
        conn.execute(Order.__table__.insert(), [
            dict(id=i, number=n, customer_id=i, email=r[0]["email"], postcode=r[0]["postcode"], country=r[0]["country"],
                 currency=r[0]["currency"], placed_at=ts(r[0]["placed_at"]), delivered_at=ts(r[0]["delivered_at"]),
                 shipping_paid_minor=int(r[0]["shipping_paid_minor"]), standard_shipping_minor=int(r[0]["standard_shipping_minor"]),
                 order_discount_minor=int(r[0]["order_discount_minor"]), created_at=now, updated_at=now)
            for i, (n, r) in enumerate(by_order.items(), start=1)])
        order_id = {n: i for i, n in enumerate(numbers, start=1)}
        line_rows, line_id = [], {}
        for i, r in enumerate(rows, start=1):
            line_id[(r["order_number"], r["line_no"])] = i
            line_rows.append(dict(id=i, order_id=order_id[r["order_number"]], line_no=int(r["line_no"]), sku=r["sku"],
                                  name=r["name"], category=r["category"], quantity=int(r["quantity"]),
                                  unit_price_minor=int(r["unit_price_minor"]), discount_minor=int(r["discount_minor"]),
                                  vat_rate=Decimal(r["vat_rate"]), returnable=r["returnable"] == "true", hs_code=r["hs_code"],
                                  origin_country=r["origin_country"], net_weight_grams=int(r["net_weight_grams"])))
        conn.execute(OrderLine.__table__.insert(), line_rows)
        decls, items = [], []
        for n, group in by_order.items():
            if not group[0]["mrn"]:
                continue
            g = group[0]
            decls.append(dict(id=len(decls) + 1, order_id=order_id[n], mrn=g["mrn"], export_date=date.fromisoformat(g["export_date"]),
                              exporter_eori=g["exporter_eori"], invoice_number=g["invoice_number"],
                              invoice_date=date.fromisoformat(g["invoice_date"]), currency=g["export_currency"],
                              entry_route=g["entry_route"], voec_number=g["voec_number"]))
            for r in group:
                items.append(dict(declaration_id=len(decls), goods_item_number=int(r["goods_item_number"]),
                                  order_line_id=line_id[(n, r["line_no"])], cn_code=r["cn_code"], description=r["name"],
                                  quantity=int(r["quantity"]), unit_value_minor=int(r["unit_price_minor"]),
                                  origin_country=r["origin_country"], net_weight_grams=int(r["net_weight_grams"]),
                                  agricultural=False))
        if decls:
            conn.execute(ExportDeclaration.__table__.insert(), decls)
            conn.execute(ExportLine.__table__.insert(), items)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--lines-per-order", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "orders.csv"
        rows = generate(path, args.rows, args.lines_per_order)
        cli_url, bare_url = f"sqlite:///{folder / 'cli.db'}", f"sqlite:///{folder / 'bare.db'}"
        migrate(cli_url)
        migrate(bare_url)
        print(f"{rows} rows in {path.stat().st_size / 1e6:.1f} MB CSV; SQLite {folder}")
        cli_s = run_cli_visible(path, cli_url)
        rerun_s, rerun_summary = run_cli(path, cli_url)
        bare_s = bare_inserts(path, bare_url)
        print()
        print(f"import CLI (new orders)   {cli_s:7.2f} s  {rows / cli_s:9,.0f} rows/s  (process start included)")
        print(f"import CLI (re-run)       {rerun_s:7.2f} s  {rows / rerun_s:9,.0f} rows/s  -> {rerun_summary}")
        print(f"bare Core inserts         {bare_s:7.2f} s  {rows / bare_s:9,.0f} rows/s")
        print(f"import is {cli_s / bare_s:.1f}x the time of bare inserts of the same rows")


if __name__ == "__main__":
    main()

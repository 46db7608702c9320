"""`portal import-orders` / `export-orders`: CSV rows → orders through the same upsert as the JSON API."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, func, select

from portal.api.csv_import import CsvFormatError, export_orders, import_text
from portal.cli import main
from portal.models import Customer, ExportDeclaration, ExportLine, Order, OrderLine

EXAMPLE = Path(__file__).resolve().parents[2] / "portal" / "api" / "example_orders.csv"
HEADER = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]


def _counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__name__: s.exec(select(func.count()).select_from(m)).one()
                for m in (Order, Customer, OrderLine, ExportDeclaration, ExportLine)}


def _dump(engine) -> list:
    """Every order-related row, including updated_at, to prove that a re-run writes nothing."""
    with Session(engine) as s:
        out = []
        for model in (Order, Customer, OrderLine, ExportDeclaration, ExportLine):
            out += [sorted((k, str(v)) for k, v in row.model_dump().items())
                    for row in s.exec(select(model).order_by(model.id)).all()]
        return out


def _cli(database_url, monkeypatch, *args):
    monkeypatch.setenv("DATABASE_URL", database_url)
    from portal.config import get_settings
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args))
    finally:
        get_settings.cache_clear()


def _row(**cells) -> str:
    """A CSV line in the example's column order, built from a valid Swedish line."""
    base = dict(order_number="SE-T-1", placed_at="2026-11-02T10:00:00Z", currency="SEK", country="SE",
                email="t@example.se", first_name="Tove", last_name="Test", street="Gatan 1", postcode="111 22",
                city="Stockholm", language="sv", line_no="1", sku="SKU-1", name="Shirt", quantity="1",
                unit_price_minor="19900", vat_rate="0.25")
    base.update(cells)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([base.get(c, "") for c in HEADER.split(",")])
    return buf.getvalue()


def test_cli_imports_example_then_rerun_changes_nothing(engine, database_url, monkeypatch):
    first = _cli(database_url, monkeypatch, "import-orders", str(EXAMPLE))
    assert first.exit_code == 0, first.output
    assert "6 rows, 4 orders" in first.output and "4 were created" in first.output
    assert _counts(engine) == {"Order": 4, "Customer": 4, "OrderLine": 6, "ExportDeclaration": 1, "ExportLine": 2}
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == "NO-CSV-2001")).one()
        decl = s.exec(select(ExportDeclaration).where(ExportDeclaration.order_id == order.id)).one()
        items = s.exec(select(ExportLine).where(ExportLine.declaration_id == decl.id).order_by(ExportLine.goods_item_number)).all()
        line = s.exec(select(OrderLine).where(OrderLine.sku == "JN-300-32")).one()
    assert decl.mrn == "26SEEXAMPLE00001B1" and decl.currency == "NOK"
    assert [(i.cn_code, i.quantity, i.unit_value_minor, i.origin_country) for i in items] == [
        ("61102010", 1, 69900, "PT"), ("61091000", 2, 29900, "PT")]
    assert (line.discount_minor, line.name) == (10000, "Slim jeans")
    before = _dump(engine)
    again = _cli(database_url, monkeypatch, "import-orders", str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert "0 were created, 0 updated, 4 unchanged" in again.output
    assert _dump(engine) == before


def test_invalid_rows_are_listed_with_line_numbers_and_valid_orders_land(engine):
    text = "\n".join([
        HEADER,
        _row(order_number="SE-OK-1", line_no="1"),                                    # line 2
        _row(order_number="SE-OK-1", line_no="2", sku="SKU-2"),                       # line 3
        _row(order_number="SE-BAD-1", line_no="1"),                                   # line 4 (fine)
        _row(order_number="SE-BAD-1", line_no="2", quantity="two"),                   # line 5
        _row(order_number="SE-BAD-2", discount_minor="50000"),                        # line 6
        _row(order_number="", sku="ORPHAN"),                                          # line 7
        _row(order_number="SE-BAD-3", email="not-an-email"),                          # line 8
        _row(order_number="NO-BAD-1", country="NO", currency="NOK", mrn="26SEEXAMPLE00001B2", export_date="2026-11-02",
             exporter_eori="SE5561234567", invoice_number="INV-1", invoice_date="2026-11-01", goods_item_number="1",
             cn_code="61091000", origin_country="PT", net_weight_grams="100"),       # line 9: wrong check character
        _row(order_number="SE-BAD-4", currency="SEK"),                                # line 10
        _row(order_number="SE-BAD-4", line_no="2", currency="EUR"),                   # line 11: differs within the order
    ]) + "\n"
    with Session(engine) as s:
        report = import_text(s, text)
        s.commit()
    messages = [str(e) for e in report.errors]
    assert messages[0].startswith("line 5: quantity: ") and "int" in messages[0]
    assert messages[1] == "line 6: discount_minor: The discount exceeds the line's price."
    assert messages[2] == "line 7: order_number: Every row needs its order number."
    assert messages[3].startswith("line 8: email: ")
    assert messages[4].startswith("line 9: mrn: Check character")
    assert messages[5].startswith("line 11: currency: Differs from line 10")
    assert len(messages) == 6
    assert (report.rows, report.orders, report.created, report.rejected) == (10, 6, 1, 5)
    with Session(engine) as s:
        numbers = s.exec(select(Order.number)).all()
        assert numbers == ["SE-OK-1"]
        assert len(s.exec(select(OrderLine)).all()) == 2
    assert _counts(engine)["Customer"] == 1  # no stray customer rows from the rejected orders


def test_cli_reports_errors_and_exits_non_zero(engine, database_url, monkeypatch, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("\n".join([HEADER, _row(order_number="SE-A"), _row(order_number="SE-B", vat_rate="25%")]) + "\n",
                    encoding="utf-8")
    result = _cli(database_url, monkeypatch, "import-orders", str(path))
    assert result.exit_code == 1
    assert "line 3: vat_rate: " in result.output
    assert "1 were created" in result.output and "1 orders (1 rows) rejected" in result.output
    with Session(engine) as s:
        assert s.exec(select(Order.number)).all() == ["SE-A"]


def test_an_order_with_one_bad_line_keeps_its_previous_version(engine):
    with Session(engine) as s:
        assert import_text(s, EXAMPLE.read_text(encoding="utf-8")).created == 4
        s.commit()
    before = _dump(engine)
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    changed = [l.replace("Hoodie", "Hoodie v2") if l.startswith("NO-CSV-2001") and ",1,HD-200-L," in l else l for l in lines]
    changed = [l.replace(",2,61091000", ",2,6109") if l.startswith("NO-CSV-2001") else l for l in changed]  # bad CN code
    assert changed != lines
    with Session(engine) as s:
        report = import_text(s, "\n".join(changed) + "\n")
        s.commit()
    assert [str(e).split(": ")[:2] for e in report.errors] == [["line 6", "cn_code"]]
    assert (report.unchanged, report.rejected) == (3, 1)
    assert _dump(engine) == before  # the good first line of the bad order was not written either
    # a conflict found only after the order's lines were written: the savepoint takes them back
    decl = "26SEEXAMPLE00001B1,2026-11-02,SE5561234567,INV-X,2026-11-01,voec,VOEC2034567,1,61171000"
    conflicting = [l.replace("Wool scarf", "Wool scarf v2").replace(",,,,,,,,,", "," + decl) if l.startswith("NO-CSV-2002")
                   else l for l in lines]
    with Session(engine) as s:
        report = import_text(s, "\n".join(conflicting) + "\n")
        s.commit()
    assert [str(e) for e in report.errors] == ["line 7: mrn: This MRN belongs to another order."]
    assert _dump(engine) == before


def test_export_import_round_trip(demo_engine, database_url, monkeypatch, tmp_path):
    out = tmp_path / "orders.csv"
    result = _cli(database_url, monkeypatch, "export-orders", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    declared = [(r["goods_item_number"], r["cn_code"]) for r in exported if r["order_number"] == "NO-2001"]
    assert declared and all(g and len(c) == 8 for g, c in declared)
    assert all(r["mrn"] == "" for r in exported if r["order_number"].startswith("SE-"))
    counts = _counts(demo_engine)
    assert f"{counts['OrderLine']} order lines" in result.output
    before = _dump(demo_engine)
    with Session(demo_engine) as s:
        report = import_text(s, text)
        s.commit()
    assert report.errors == [] and report.unchanged == counts["Order"] and report.created == report.updated == 0
    assert _dump(demo_engine) == before
    with Session(demo_engine) as s:
        buf = io.StringIO()
        export_orders(s, buf)
    assert buf.getvalue() == text  # export → import → export is stable
    # one edited cell changes exactly that order
    rows = list(csv.DictReader(io.StringIO(text)))
    target = next(r for r in rows if r["order_number"] == "NO-2001" and r["goods_item_number"] == "1")
    target["export_unit_value_minor"] = "100"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with Session(demo_engine) as s:
        report = import_text(s, buf.getvalue())
        s.commit()
        assert (report.updated, report.unchanged) == (1, counts["Order"] - 1)
        order = s.exec(select(Order).where(Order.number == "NO-2001")).one()
        decl = s.exec(select(ExportDeclaration).where(ExportDeclaration.order_id == order.id)).one()
        item = s.exec(select(ExportLine).where(ExportLine.declaration_id == decl.id, ExportLine.goods_item_number == 1)).one()
        assert item.unit_value_minor == 100


def test_bad_header_imports_nothing(engine):
    with Session(engine) as s, pytest.raises(CsvFormatError) as caught:
        import_text(s, HEADER.replace("quantity", "qty") + ",colour\n" + _row() + ",red\n")
    fields = {(e.line, e.field, e.message) for e in caught.value.errors}
    assert (1, "colour", "Unknown column.") in fields and (1, "quantity", "Required column is missing.") in fields
    assert _counts(engine)["Order"] == 0


def test_dry_run_keeps_nothing(engine, database_url, monkeypatch):
    result = _cli(database_url, monkeypatch, "import-orders", "--dry-run", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert "4 would be created" in result.output and "nothing was saved" in result.output
    assert _counts(engine)["Order"] == 0

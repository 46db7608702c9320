"""Import and export orders as CSV: one row per order line (`portal import-orders` / `portal export-orders`).

The file is UTF-8 CSV with a header row; columns may come in any order. Rows that share an
`order_number` form one order (they need not be adjacent). Each order is turned into the body that
PUT /api/v1/orders/{number} accepts and stored with `portal.api.orders.upsert_order`, so the CSV
import and the JSON API validate and store orders in exactly one way. Every order runs in its own
savepoint: valid orders land, an order with any bad row is left out entirely (nothing half-written),
and importing the same file again changes nothing.

Order columns (repeat the same value on every row of the order):
    order_number (required), placed_at (required, ISO 8601, e.g. 2026-11-02T10:15:00Z), delivered_at,
    currency (required, e.g. SEK), country (shipping country, defaults to the customer's), email,
    phone, first_name, last_name, street, postcode, city (all required except phone), language
    (sv|nb|da|fi|en, default sv), shipping_paid_minor, standard_shipping_minor, order_discount_minor.

Line columns (one order line per row):
    line_no, sku, name, quantity, unit_price_minor, vat_rate (decimal string, e.g. 0.25) are required;
    category, discount_minor (default 0), returnable (true/false, default true), hs_code,
    origin_country, net_weight_grams are optional.

Export declaration columns (Norwegian orders only; leave empty otherwise):
    mrn, export_date, exporter_eori, invoice_number, invoice_date, entry_route (voec|simplified|ordinary,
    default voec), voec_number, export_currency (defaults to the order currency) — repeat on the
    declared rows; goods_item_number and cn_code on each declared line, with optional export_quantity
    (default: the line's quantity), export_unit_value_minor (default: unit_price_minor),
    export_origin (default: origin_country), export_net_weight_grams (default: net_weight_grams),
    export_description (default: the line's name) and agricultural (true/false, default false).

Amounts are integers in minor units (öre, cent). Errors are reported as "line N: column: message"
with the file's line numbers (the header is line 1). See portal/api/CSV_FORMAT.md and
portal/api/example_orders.csv.

Pure service: no click, rich or web imports.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timezone
from decimal import Decimal
from typing import TextIO

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.api.orders import OrderInputError, _path_of, upsert_order
from portal.api.schemas import OrderIn
from portal.models import Customer, ExportDeclaration, ExportLine, Order, OrderLine

ORDER_COLUMNS = ("order_number", "placed_at", "delivered_at", "currency", "country", "email", "phone", "first_name",
                 "last_name", "street", "postcode", "city", "language", "shipping_paid_minor", "standard_shipping_minor",
                 "order_discount_minor")
LINE_COLUMNS = ("line_no", "sku", "name", "category", "quantity", "unit_price_minor", "discount_minor", "vat_rate",
                "returnable", "hs_code", "origin_country", "net_weight_grams")
DECLARATION_COLUMNS = ("mrn", "export_date", "exporter_eori", "invoice_number", "invoice_date", "entry_route",
                       "voec_number", "export_currency")
EXPORT_LINE_COLUMNS = ("goods_item_number", "cn_code", "export_quantity", "export_unit_value_minor", "export_origin",
                       "export_net_weight_grams", "export_description", "agricultural")
REQUIRED_COLUMNS = ("order_number", "placed_at", "currency", "email", "first_name", "last_name", "street", "postcode",
                    "city", "line_no", "sku", "name", "quantity", "unit_price_minor", "vat_rate")
ALL_COLUMNS = ORDER_COLUMNS + LINE_COLUMNS + DECLARATION_COLUMNS + EXPORT_LINE_COLUMNS

_INT_COLUMNS = {"shipping_paid_minor", "standard_shipping_minor", "order_discount_minor", "line_no", "quantity",
                "unit_price_minor", "discount_minor", "net_weight_grams", "goods_item_number", "export_quantity",
                "export_unit_value_minor", "export_net_weight_grams"}
_BOOL_COLUMNS = {"returnable", "agricultural"}
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}
# payload key -> CSV column, for mapping validation errors back to the file
_CUSTOMER = {"email": "email", "phone": "phone", "first_name": "first_name", "last_name": "last_name",
             "street": "street", "postcode": "postcode", "city": "city", "country": "country", "language": "language"}
_DECLARATION = {"mrn": "mrn", "export_date": "export_date", "exporter_eori": "exporter_eori",
                "invoice_number": "invoice_number", "invoice_date": "invoice_date", "entry_route": "entry_route",
                "voec_number": "voec_number", "currency": "export_currency"}
_EXPORT_LINE = {"goods_item_number": "goods_item_number", "line_no": "line_no", "cn_code": "cn_code",
                "quantity": "export_quantity", "unit_value_minor": "export_unit_value_minor", "origin": "export_origin",
                "net_weight_grams": "export_net_weight_grams", "description": "export_description",
                "agricultural": "agricultural"}
_INDEXED = re.compile(r"^(export_declaration\.)?lines\[(\d+)\](?:\.(\w+))?$")


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    orders: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0  # orders left out because of errors
    rejected_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    @property
    def imported_rows(self) -> int:
        return self.rows - self.rejected_rows


@dataclass
class _Row:
    line: int
    cells: dict[str, str]


@dataclass
class _Group:
    number: str
    rows: list[_Row] = field(default_factory=list)


class CsvFormatError(ValueError):
    """The file as a whole cannot be read (no header, unknown or missing columns)."""

    def __init__(self, errors: list[RowError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def read_rows(stream: TextIO) -> list[_Row]:
    """Rows with their starting line number in the file; raises CsvFormatError on a bad header."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvFormatError([RowError(1, "header", "The file is empty; expected a header row.")]) from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    problems = [RowError(1, name, "Unknown column.") for name in header if name not in ALL_COLUMNS]
    problems += [RowError(1, name, "Required column is missing.") for name in REQUIRED_COLUMNS if name not in header]
    problems += [RowError(1, name, "Column appears twice.") for name in sorted({h for h in header if header.count(h) > 1})]
    if problems:
        raise CsvFormatError(problems)
    rows: list[_Row] = []
    next_line = reader.line_num + 1
    for values in reader:
        start, next_line = next_line, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            rows.append(_Row(start, {"__width__": f"The row has {len(values)} cells; the header has {len(header)}."}))
            continue
        rows.append(_Row(start, {name: value.strip() for name, value in zip(header, values)}))
    return rows


def _group(rows: list[_Row]) -> tuple[list[_Group], list[RowError]]:
    groups: dict[str, _Group] = {}
    errors: list[RowError] = []
    for row in rows:
        if "__width__" in row.cells:
            errors.append(RowError(row.line, "row", row.cells["__width__"]))
            continue
        number = row.cells.get("order_number", "")
        if not number:
            errors.append(RowError(row.line, "order_number", "Every row needs its order number."))
            continue
        groups.setdefault(number, _Group(number)).rows.append(row)
    return list(groups.values()), errors


def _cell(value: str, column: str):
    if column in _INT_COLUMNS:
        try:
            return int(value)
        except ValueError:
            return value  # msgspec reports "Expected `int`, got `str`"
    if column in _BOOL_COLUMNS:
        low = value.lower()
        return True if low in _TRUE else False if low in _FALSE else value
    return value


def _pick(row: _Row, columns: Iterable[str], *, keep_empty: Iterable[str] = ()) -> dict:
    out = {}
    for column in columns:
        value = row.cells.get(column, "")
        if value == "" and column not in keep_empty:
            continue
        out[column] = _cell(value, column)
    return out


def _consistent(group: _Group, rows: list[_Row], columns: Iterable[str]) -> list[RowError]:
    first = rows[0]
    return [RowError(row.line, c, f"Differs from line {first.line} of the same order ({first.cells.get(c, '')!r}).")
            for row in rows[1:] for c in columns if row.cells.get(c, "") != first.cells.get(c, "")]


def build_payload(group: _Group) -> tuple[dict, list[_Row], list[RowError]]:
    """The PUT /api/v1/orders body for one order, the rows behind its export lines, and structural errors."""
    rows = group.rows
    errors = _consistent(group, rows, [c for c in ORDER_COLUMNS if c != "order_number"])
    head = rows[0].cells
    required = {"email", "first_name", "last_name", "street", "postcode", "city"}
    customer = _pick(rows[0], ["email", "phone", "first_name", "last_name", "street", "postcode", "city", "language"],
                     keep_empty=required)
    customer["country"] = head.get("country", "")
    payload: dict = {"customer": customer}
    payload.update(_pick(rows[0], ["currency", "placed_at"], keep_empty=["currency", "placed_at"]))
    payload.update(_pick(rows[0], ["delivered_at", "shipping_paid_minor", "standard_shipping_minor", "order_discount_minor"]))
    line_required = {"sku", "name"}
    payload["lines"] = [_pick(r, LINE_COLUMNS, keep_empty=line_required) for r in rows]
    declared = [r for r in rows if r.cells.get("mrn")]
    items = [r for r in rows if r.cells.get("goods_item_number") or r.cells.get("cn_code")]
    if declared or items:
        if not declared:
            errors.append(RowError(items[0].line, "mrn", "Export lines need the declaration's mrn on their rows."))
        else:
            errors += _consistent(group, declared, DECLARATION_COLUMNS)
            errors += [RowError(r.line, "mrn", "Every declared line repeats the declaration's mrn.")
                       for r in items if not r.cells.get("mrn")]
            decl = _pick(declared[0], ["mrn", "export_date", "exporter_eori", "invoice_number", "invoice_date",
                                       "entry_route", "voec_number"], keep_empty=["exporter_eori", "invoice_number"])
            decl["currency"] = declared[0].cells.get("export_currency") or head.get("currency", "")
            decl["lines"] = [_export_line(r) for r in items]
            payload["export_declaration"] = decl
    return payload, items, errors


def _export_line(row: _Row) -> dict:
    c = row.cells
    item = {"goods_item_number": _cell(c.get("goods_item_number", ""), "goods_item_number"),
            "line_no": _cell(c.get("line_no", ""), "line_no"), "cn_code": c.get("cn_code", ""),
            "quantity": _cell(c.get("export_quantity") or c.get("quantity", ""), "quantity"),
            "unit_value_minor": _cell(c.get("export_unit_value_minor") or c.get("unit_price_minor", ""), "unit_price_minor"),
            "origin": c.get("export_origin") or c.get("origin_country", ""),
            "net_weight_grams": _cell(c.get("export_net_weight_grams") or c.get("net_weight_grams", ""), "net_weight_grams")}
    if c.get("export_description"):
        item["description"] = c["export_description"]
    if c.get("agricultural"):
        item["agricultural"] = _cell(c["agricultural"], "agricultural")
    return item


def _locate(path: str, rows: list[_Row], items: list[_Row]) -> tuple[int, str]:
    """Map a payload field path (as upsert_order / msgspec name it) to a CSV line and column."""
    match = _INDEXED.match(path)
    if match:
        exported, index, name = match.group(1), int(match.group(2)), match.group(3)
        source = items if exported else rows
        line = source[index].line if index < len(source) else rows[0].line
        if exported:
            return line, _EXPORT_LINE.get(name, name or "goods_item_number")
        return line, name or "line_no"
    head = rows[0].line
    if path.startswith("customer."):
        return head, _CUSTOMER.get(path.split(".", 1)[1], path)
    if path.startswith("export_declaration.") or path == "export_declaration":
        decl_line = next((r.line for r in rows if r.cells.get("mrn")), head)
        key = path.split(".", 1)[1] if "." in path else "mrn"
        return decl_line, _DECLARATION.get(key, key)
    if path == "number":
        return head, "order_number"
    if path == "lines":
        return head, "line_no"
    return head, path or "row"


def _missing(message: str, path: str) -> tuple[str, str]:
    """msgspec's "Object missing required field `x` - at `$.customer`" names the field in the message."""
    match = re.search(r"missing required field `(\w+)`", message)
    if match:
        return (f"{path}.{match.group(1)}" if path not in ("body", "") else match.group(1)), "This column is required."
    return path, re.sub(r" - at `\$[^`]*`$", "", message)


def import_orders(session: Session, stream: TextIO, *, dry_run: bool = False,
                  progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import every valid order of the CSV; the caller commits (or, with dry_run, nothing is kept).

    `progress(n)` is called with the number of rows handled since the last call.
    Raises CsvFormatError when the header is unusable (nothing is imported then).
    """
    rows = read_rows(stream)
    report = ImportReport(rows=len(rows), dry_run=dry_run)
    groups, report.errors = _group(rows)
    report.rejected_rows = len(report.errors)
    if progress and report.errors:
        progress(len(report.errors))
    for group in groups:
        report.orders += 1
        errors = _import_one(session, group, report, dry_run)
        if errors:
            report.rejected += 1
            report.rejected_rows += len(group.rows)
            report.errors += errors
        if progress:
            progress(len(group.rows))
    report.errors.sort(key=lambda e: e.line)
    return report


def _import_one(session: Session, group: _Group, report: ImportReport, dry_run: bool) -> list[RowError]:
    payload, items, errors = build_payload(group)
    if errors:
        return errors
    try:
        data = msgspec.convert(payload, OrderIn, strict=False)
    except msgspec.ValidationError as exc:
        path, message = _missing(str(exc), _path_of(str(exc)))
        line, column = _locate(path, group.rows, items)
        return [RowError(line, column, message)]
    savepoint = session.begin_nested()
    try:
        outcome = upsert_order(session, group.number, data)
        session.flush()
    except OrderInputError as exc:
        savepoint.rollback()
        return [RowError(*_locate(e["field"], group.rows, items), e["message"]) for e in exc.errors]
    except IntegrityError:
        savepoint.rollback()
        return [RowError(group.rows[0].line, "order_number", "A concurrent change touched this order; import it again.")]
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    session.expunge_all()  # keep the identity map small: upsert_order expires everything it holds
    if outcome.created:
        report.created += 1
    elif outcome.changed:
        report.updated += 1
    else:
        report.unchanged += 1
    return []


# --- export ------------------------------------------------------------------------------------

EXPORT_HEADER = ORDER_COLUMNS + LINE_COLUMNS + DECLARATION_COLUMNS + EXPORT_LINE_COLUMNS


def _iso(value) -> str:
    if value is None:
        return ""
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.isoformat().replace("+00:00", "Z")


def _rate(value: Decimal) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text if text != "0.0" else "0"


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_orders(session: Session, stream: TextIO, numbers: Iterable[str] | None = None) -> int:
    """Write orders (all, or those numbered) as CSV in the import format; returns the number of rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(EXPORT_HEADER)
    query = select(Order).order_by(Order.number)
    if numbers is not None:
        query = query.where(Order.number.in_(list(numbers)))
    count = 0
    for order in session.exec(query).all():
        customer = session.get(Customer, order.customer_id)
        lines = session.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)).all()
        decl = session.exec(select(ExportDeclaration).where(ExportDeclaration.order_id == order.id)).first()
        items = {}
        if decl is not None:
            items = {e.order_line_id: e for e in session.exec(select(ExportLine).where(ExportLine.declaration_id == decl.id))}
        head = {"order_number": order.number, "placed_at": _iso(order.placed_at), "delivered_at": _iso(order.delivered_at),
                "currency": order.currency, "country": order.country, "email": customer.email, "phone": customer.phone,
                "first_name": customer.first_name, "last_name": customer.last_name, "street": customer.street,
                "postcode": customer.postcode, "city": customer.city, "language": customer.language,
                "shipping_paid_minor": order.shipping_paid_minor, "standard_shipping_minor": order.standard_shipping_minor,
                "order_discount_minor": order.order_discount_minor}
        for line in lines:
            row = dict(head, line_no=line.line_no, sku=line.sku, name=line.name, category=line.category,
                       quantity=line.quantity, unit_price_minor=line.unit_price_minor, discount_minor=line.discount_minor,
                       vat_rate=_rate(line.vat_rate), returnable=line.returnable, hs_code=line.hs_code,
                       origin_country=line.origin_country, net_weight_grams=line.net_weight_grams)
            item = items.get(line.id)
            if decl is not None and item is not None:
                row.update(mrn=decl.mrn, export_date=decl.export_date.isoformat(), exporter_eori=decl.exporter_eori,
                           invoice_number=decl.invoice_number, invoice_date=decl.invoice_date.isoformat(),
                           entry_route=decl.entry_route, voec_number=decl.voec_number, export_currency=decl.currency,
                           goods_item_number=item.goods_item_number, cn_code=item.cn_code, export_quantity=item.quantity,
                           export_unit_value_minor=item.unit_value_minor, export_origin=item.origin_country,
                           export_net_weight_grams=item.net_weight_grams, export_description=item.description,
                           agricultural=item.agricultural)
            writer.writerow([_text(row.get(c)) for c in EXPORT_HEADER])
            count += 1
    return count


def import_text(session: Session, text: str, **kwargs) -> ImportReport:
    """Convenience for tests and callers holding the CSV in memory."""
    return import_orders(session, io.StringIO(text), **kwargs)

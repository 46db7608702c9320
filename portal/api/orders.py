"""Create or update orders (idempotent on the order number), with Norwegian export declarations.

Pure service: takes the validated msgspec structs, writes rows, raises OrderInputError with a
field-level list. No web imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from decimal import Decimal, InvalidOperation

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from customs.mrn import normalise_mrn, validate_mrn
from portal.api.schemas import ExportDeclarationIn, OrderIn
from portal.models import Customer, ExportDeclaration, ExportLine, Order, OrderLine, ReturnLine, utcnow


class OrderInputError(ValueError):
    def __init__(self, errors: list[dict], status: int = 400):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors
        self.status = status


@dataclass(frozen=True)
class UpsertResult:
    order: Order
    created: bool
    changed: bool
    lines: int
    mrn: str | None
    personal_data_withheld: bool = False  # the customer was anonymised (GDPR retention): not taken back


NUMBER_PATTERN_TEXT = "1 to 40 characters: letters, digits, '-', '_' or '.'"


def valid_number(number: str) -> bool:
    return 0 < len(number) <= 40 and all(c.isalnum() or c in "-_." for c in number) and number.isascii()


def _utc(value):
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def check(number: str, data: OrderIn) -> list[dict]:
    """Rules beyond the types: unique line numbers, discounts within price, export lines on order lines."""
    errors: list[dict] = []
    if not valid_number(number):
        errors.append({"field": "number", "message": f"The order number must be {NUMBER_PATTERN_TEXT}."})
    seen: set[int] = set()
    for i, line in enumerate(data.lines):
        where = f"lines[{i}]"
        if line.line_no in seen:
            errors.append({"field": f"{where}.line_no", "message": f"line_no {line.line_no} appears twice."})
        seen.add(line.line_no)
        if line.discount_minor > line.unit_price_minor * line.quantity:
            errors.append({"field": f"{where}.discount_minor", "message": "The discount exceeds the line's price."})
        try:
            rate = Decimal(line.vat_rate)
            if not Decimal(0) <= rate < Decimal(1):
                raise InvalidOperation
        except InvalidOperation:
            errors.append({"field": f"{where}.vat_rate", "message": 'vat_rate is a decimal string from "0" to below "1", e.g. "0.25".'})
    if data.delivered_at and _utc(data.delivered_at) < _utc(data.placed_at):
        errors.append({"field": "delivered_at", "message": "delivered_at is before placed_at."})
    country = data.country or data.customer.country
    if data.export_declaration is not None:
        errors += _check_export(data.export_declaration, country, {l.line_no: l for l in data.lines})
    return errors


def _check_export(decl: ExportDeclarationIn, country: str, lines: dict) -> list[dict]:
    errors: list[dict] = []
    if country != "NO":
        return [{"field": "export_declaration", "message": "Only orders shipped to Norway (country NO) carry an export declaration."}]
    for problem in validate_mrn(decl.mrn, expect_export=True):
        errors.append({"field": "export_declaration.mrn", "message": problem})
    items: set[int] = set()
    for i, item in enumerate(decl.lines):
        where = f"export_declaration.lines[{i}]"
        if item.goods_item_number in items:
            errors.append({"field": f"{where}.goods_item_number", "message": f"Goods item {item.goods_item_number} appears twice."})
        items.add(item.goods_item_number)
        line = lines.get(item.line_no)
        if line is None:
            errors.append({"field": f"{where}.line_no", "message": f"The order has no line {item.line_no}."})
        elif item.quantity > line.quantity:
            errors.append({"field": f"{where}.quantity", "message": "More units declared than the order line has."})
    return errors


def _snapshot(session: Session, order: Order) -> tuple:
    lines = session.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)).all()
    customer = session.get(Customer, order.customer_id)
    decl = session.exec(select(ExportDeclaration).where(ExportDeclaration.order_id == order.id)).first()
    export_lines = (session.exec(select(ExportLine).where(ExportLine.declaration_id == decl.id)
                                 .order_by(ExportLine.goods_item_number)).all() if decl else [])
    dump = lambda row, skip=("id", "created_at", "updated_at"): {k: str(v) for k, v in row.model_dump().items() if k not in skip}  # noqa: E731
    return (dump(order), dump(customer) if customer else None, [dump(l) for l in lines],
            dump(decl) if decl else None, [dump(e, ("id", "declaration_id")) for e in export_lines])


def upsert_order(session: Session, number: str, data: OrderIn) -> UpsertResult:
    """Create or update one order; raises OrderInputError (nothing written by this call then)."""
    errors = check(number, data)
    if errors:
        raise OrderInputError(errors)
    order = session.exec(select(Order).where(Order.number == number)).first()
    created = order is None
    before = None if created else _snapshot(session, order)
    c = data.customer
    customer_fields = dict(email=c.email, phone=c.phone, first_name=c.first_name, last_name=c.last_name, language=c.language,
                           street=c.street, postcode=c.postcode, city=c.city, country=c.country)
    if created:
        customer = Customer(**customer_fields)
        session.add(customer)
        session.flush()
        order = Order(number=number, customer_id=customer.id, email=c.email, postcode=c.postcode,
                      country=data.country or c.country, currency=data.currency, placed_at=_utc(data.placed_at))
    else:
        customer = session.get(Customer, order.customer_id)
    withheld = customer.anonymised_at is not None  # the retention job erased them: a re-sent order keeps them erased
    if not created and not withheld:
        for k, v in customer_fields.items():
            setattr(customer, k, v)
        session.add(customer)
    if not withheld:
        order.email, order.postcode = c.email, c.postcode
    order.country, order.currency = data.country or c.country, data.currency
    order.placed_at, order.delivered_at = _utc(data.placed_at), _utc(data.delivered_at)
    order.shipping_paid_minor = data.shipping_paid_minor
    order.standard_shipping_minor = data.standard_shipping_minor
    order.order_discount_minor = data.order_discount_minor
    session.add(order)
    session.flush()
    by_no = _sync_lines(session, order, data)
    mrn = _sync_export(session, order, data.export_declaration, by_no) if data.export_declaration else None
    session.flush()
    session.expire_all()  # compare what the database holds (Decimal scale, time zones), not what was assigned
    changed = created or _snapshot(session, order) != before
    if changed and not created:
        order.updated_at = utcnow()
        session.add(order)
    return UpsertResult(order, created, changed, len(data.lines), mrn, withheld)


def _sync_lines(session: Session, order: Order, data: OrderIn) -> dict[int, OrderLine]:
    existing = {l.line_no: l for l in session.exec(select(OrderLine).where(OrderLine.order_id == order.id))}
    wanted = {l.line_no for l in data.lines}
    for line_no, row in existing.items():
        if line_no in wanted:
            continue
        if session.exec(select(ReturnLine.id).where(ReturnLine.order_line_id == row.id)).first() is not None:
            raise OrderInputError([{"field": "lines", "message": f"Line {line_no} has been returned and cannot be removed."}], 409)
        for export_line in session.exec(select(ExportLine).where(ExportLine.order_line_id == row.id)):
            session.delete(export_line)
        session.flush()
        session.delete(row)
    by_no: dict[int, OrderLine] = {}
    for line in data.lines:
        row = existing.get(line.line_no) or OrderLine(order_id=order.id, line_no=line.line_no, sku="", name="", quantity=0, unit_price_minor=0)
        row.sku, row.name, row.category = line.sku, line.name, line.category
        row.quantity, row.unit_price_minor, row.discount_minor = line.quantity, line.unit_price_minor, line.discount_minor
        row.vat_rate, row.returnable = Decimal(line.vat_rate), line.returnable
        row.hs_code, row.origin_country, row.net_weight_grams = line.hs_code, line.origin_country, line.net_weight_grams
        session.add(row)
        by_no[line.line_no] = row
    session.flush()
    return by_no


def _sync_export(session: Session, order: Order, decl_in: ExportDeclarationIn, lines: dict[int, OrderLine]) -> str:
    mrn = normalise_mrn(decl_in.mrn)
    other = session.exec(select(ExportDeclaration).where(ExportDeclaration.mrn == mrn, ExportDeclaration.order_id != order.id)).first()
    if other is not None:
        raise OrderInputError([{"field": "export_declaration.mrn", "message": "This MRN belongs to another order."}], 409)
    decl = session.exec(select(ExportDeclaration).where(ExportDeclaration.order_id == order.id)).first()
    if decl is None:
        decl = ExportDeclaration(order_id=order.id, mrn=mrn, export_date=decl_in.export_date, exporter_eori="",
                                 invoice_number="", invoice_date=decl_in.invoice_date, currency=decl_in.currency)
    decl.mrn, decl.export_date, decl.exporter_eori = mrn, decl_in.export_date, decl_in.exporter_eori
    decl.invoice_number, decl.invoice_date, decl.currency = decl_in.invoice_number, decl_in.invoice_date, decl_in.currency
    decl.entry_route, decl.voec_number = decl_in.entry_route, decl_in.voec_number
    session.add(decl)
    session.flush()
    existing = {e.goods_item_number: e for e in session.exec(select(ExportLine).where(ExportLine.declaration_id == decl.id))}
    wanted = {i.goods_item_number for i in decl_in.lines}
    for item_no, row in existing.items():
        if item_no not in wanted:
            session.delete(row)
    for item in decl_in.lines:
        line = lines[item.line_no]
        row = existing.get(item.goods_item_number) or ExportLine(
            declaration_id=decl.id, goods_item_number=item.goods_item_number, order_line_id=line.id, cn_code="",
            description="", quantity=0, unit_value_minor=0, origin_country="", net_weight_grams=0)
        row.order_line_id, row.cn_code = line.id, item.cn_code
        row.description = (item.description or line.name)[:200]
        row.quantity, row.unit_value_minor = item.quantity, item.unit_value_minor
        row.origin_country, row.net_weight_grams, row.agricultural = item.origin, item.net_weight_grams, item.agricultural
        session.add(row)
    return mrn


def bulk_upsert(session: Session, items: list[dict]) -> list[dict]:
    """Each item in its own savepoint: valid items land, invalid ones are reported with their errors."""
    results = []
    for index, raw in enumerate(items):
        number = raw.get("number") if isinstance(raw, dict) else None
        number = number if isinstance(number, str) else None
        result = {"index": index, "number": number, "status": 400, "created": False, "changed": False, "errors": []}
        results.append(result)
        if number is None:
            result["errors"] = [{"field": "number", "message": "Each item needs its order number as a string."}]
            continue
        try:
            data = msgspec.convert({k: v for k, v in raw.items() if k != "number"}, OrderIn)
        except msgspec.ValidationError as exc:
            result["errors"] = [{"field": _path_of(str(exc)), "message": str(exc)}]
            continue
        savepoint = session.begin_nested()
        try:
            outcome = upsert_order(session, number, data)
            savepoint.commit()
        except OrderInputError as exc:
            savepoint.rollback()
            result["status"], result["errors"] = exc.status, exc.errors
            continue
        except IntegrityError:
            savepoint.rollback()
            result["status"] = 409
            result["errors"] = [{"field": "number", "message": "A concurrent request changed this order; send it again."}]
            continue
        result.update(status=201 if outcome.created else 200, created=outcome.created, changed=outcome.changed,
                      personal_data_withheld=outcome.personal_data_withheld)
    return results


def _path_of(message: str) -> str:
    """msgspec says '... - at `$.lines[0].quantity`'; the field is the part after '$.'."""
    marker = "at `$"
    if marker in message:
        return message.split(marker, 1)[1].rstrip("`").lstrip(".") or "body"
    return "body"

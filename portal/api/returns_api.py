"""Returns for the API: filtered listing with cursor pagination, one return in full, create for a customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, select

from portal.api.schemas import (
    EventOut, RefundOut, ReturnDetail, ReturnIn, ReturnLineOut, ReturnPage, ReturnSummary,
)
from portal.models import Order, OrderLine, Refund, Return
from portal.returns import policy, service
from portal.returns.identifiers import normalise_rma
from portal.numbers import is_digits

MAX_LIMIT = 200


@dataclass(frozen=True)
class ReturnFilters:
    status: str | None = None
    order_number: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class ApiReturnError(ValueError):
    def __init__(self, errors: list[dict], status: int = 400):
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors
        self.status = status


def summary(ret: Return, order_number: str) -> ReturnSummary:
    return ReturnSummary(
        id=ret.id, rma=ret.rma, order_number=order_number, status=ret.status, resolution=ret.resolution, method=ret.method,
        tracking_number=ret.tracking_number, is_norway=ret.is_norway, created_at=ret.created_at, updated_at=ret.updated_at,
        proof_of_sending_at=ret.proof_of_sending_at, arrived_at=ret.arrived_at,
    )


def list_returns(session: Session, filters: ReturnFilters, cursor: int | None, limit: int) -> ReturnPage:
    query = select(Return, Order.number).join(Order, Order.id == Return.order_id)
    if filters.status:
        query = query.where(Return.status == filters.status)
    if filters.order_number:
        query = query.where(Order.number == filters.order_number)
    if filters.created_after:
        query = query.where(Return.created_at >= filters.created_after)
    if filters.created_before:
        query = query.where(Return.created_at < filters.created_before)
    if cursor is not None:
        query = query.where(Return.id > cursor)
    rows = session.exec(query.order_by(Return.id).limit(limit + 1)).all()
    items = [summary(ret, number) for ret, number in rows[:limit]]
    return ReturnPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


def detail(session: Session, rma: str) -> ReturnDetail | None:
    row = session.exec(select(Return, Order.number).join(Order, Order.id == Return.order_id)
                       .where(Return.rma == normalise_rma(rma))).first()
    if row is None:
        return None
    ret, number = row
    lines = [
        ReturnLineOut(line_no=ol.line_no, sku=ol.sku, name=ol.name, quantity=rl.quantity, reason=rl.reason, comment=rl.comment,
                      received_quantity=rl.received_quantity, condition=rl.condition, acceptance=rl.acceptance,
                      disposition=rl.disposition)
        for rl, ol in service.return_lines_with_order_lines(session, ret.id)
    ]
    events = [EventOut(type=e.type, at=e.at, actor=e.actor, data=e.data or {}) for e in service.events_of(session, ret.id)]
    refunds = [RefundOut(id=r.id, amount_minor=r.amount_minor, currency=r.currency, method=r.method, state=r.state,
                         due_date=r.due_date, issued_at=r.issued_at)
               for r in session.exec(select(Refund).where(Refund.return_id == ret.id).order_by(Refund.id))]
    return ReturnDetail(summary=summary(ret, number), lines=lines, events=events, refunds=refunds)


def create_return(session: Session, data: ReturnIn, actor: str, today: date) -> tuple[Return, bool]:
    """Register a return as support does; (return, created). The same idempotency_key gives the same return."""
    order = session.exec(select(Order).where(Order.number == data.order_number)).first()
    if order is None:
        raise ApiReturnError([{"field": "order_number", "message": f"No order {data.order_number!r}."}], 404)
    by_no = {l.line_no: l for l in session.exec(select(OrderLine).where(OrderLine.order_id == order.id))}
    errors, requested, seen = [], [], set()
    for i, line in enumerate(data.lines):
        row = by_no.get(line.line_no)
        if row is None:
            errors.append({"field": f"lines[{i}].line_no", "message": f"The order has no line {line.line_no}."})
        elif line.line_no in seen:
            errors.append({"field": f"lines[{i}].line_no", "message": f"Line {line.line_no} appears twice."})
        else:
            seen.add(line.line_no)
            requested.append(policy.RequestedLine(row.id, str(line.quantity), line.reason, line.comment))
    if errors:
        raise ApiReturnError(errors)
    existing_key = service.idempotency_key(order.id, "api:" + data.idempotency_key)
    existed = session.exec(select(Return.id).where(Return.idempotency_key == existing_key)).first() is not None
    try:
        ret = service.register_return(session, service.ReturnRequest(
            order_id=order.id, lines=requested, resolution=data.resolution, language=data.language,
            form_nonce="api:" + data.idempotency_key, actor=actor), today)
    except service.ReturnError as exc:
        line_of = {row.id: no for no, row in by_no.items()}
        fields = [{"field": _field(name, line_of), "message": code.replace("_", " ")} for name, code in exc.fields.items()]
        raise ApiReturnError(fields or [{"field": "body", "message": exc.code.replace("_", " ")}]) from None
    return ret, not existed


def _field(name: str, line_of: dict[int, int]) -> str:
    """Form field names (qty_17, reason_17) back to API names (lines.line_no=2.quantity)."""
    for prefix, attr in (("qty_", "quantity"), ("reason_", "reason"), ("comment_", "comment")):
        if name.startswith(prefix) and is_digits(name[len(prefix):]):
            return f"lines[line_no={line_of.get(int(name[len(prefix):]), '?')}].{attr}"
    return name

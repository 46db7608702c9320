"""Everything the portal holds about one customer, as JSON (GDPR right of access, for support).

No web imports: the controller checks the role, calls `customer_export`, audits and sends the file.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from portal.models import (
    CarrierEvent,
    Consent,
    Customer,
    DeliveryEvent,
    Exchange,
    Order,
    OrderLine,
    OutboxMessage,
    Refund,
    Return,
    ReturnEvent,
    ReturnLine,
    utcnow,
)
from portal.privacy.scrub import phone_spellings

FORMAT_VERSION = 1
NOTIFY_CHANNELS = ("email", "sms")


def _row(row: SQLModel) -> dict[str, Any]:
    return row.model_dump()


def _plain(value: Any) -> Any:
    """json.dumps fallback: ISO dates, exact decimals as strings, bytes as base64."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot export {type(value).__name__}")


def customer_export(session: Session, customer: Customer) -> dict[str, Any]:
    """Customer, orders with lines, returns with lines, timeline, refunds and exchanges, consents,
    the notifications sent (with their text) and what happened to each (delivery events, carrier scans)."""
    orders = list(session.exec(select(Order).where(Order.customer_id == customer.id).order_by(Order.placed_at, Order.id)))
    order_ids = [o.id for o in orders] or [0]
    lines = list(session.exec(select(OrderLine).where(OrderLine.order_id.in_(order_ids))
                              .order_by(OrderLine.order_id, OrderLine.line_no)))
    returns = list(session.exec(select(Return).where(Return.order_id.in_(order_ids)).order_by(Return.created_at, Return.id)))
    return_ids = [r.id for r in returns] or [0]

    def of_returns(model, *order_by):
        return list(session.exec(select(model).where(model.return_id.in_(return_ids)).order_by(*order_by)))

    addresses = {a.lower() for a in [customer.email, *(o.email for o in orders),
                                     *phone_spellings(customer.phone, customer.country)] if a}
    messages = list(session.exec(select(OutboxMessage).where(sa.or_(
        sa.and_(OutboxMessage.return_id.in_(return_ids), OutboxMessage.channel.in_(NOTIFY_CHANNELS)),
        sa.and_(OutboxMessage.channel.in_(NOTIFY_CHANNELS),
                sa.func.lower(OutboxMessage.destination).in_(list(addresses) or [""])),
    )).order_by(OutboxMessage.created_at, OutboxMessage.id)))
    message_ids = [m.id for m in messages] or [0]
    delivery = list(session.exec(select(DeliveryEvent).where(sa.or_(
        DeliveryEvent.return_id.in_(return_ids), DeliveryEvent.outbox_id.in_(message_ids),
    )).order_by(DeliveryEvent.at, DeliveryEvent.id)))
    return {
        "format_version": FORMAT_VERSION,
        "exported_at": utcnow(),
        "customer": _row(customer),
        "orders": [dict(_row(o), lines=[_row(l) for l in lines if l.order_id == o.id]) for o in orders],
        "returns": [_return_row(r) for r in returns],
        "return_lines": [_row(l) for l in of_returns(ReturnLine, ReturnLine.return_id, ReturnLine.id)],
        "events": [_row(e) for e in of_returns(ReturnEvent, ReturnEvent.at, ReturnEvent.id)],
        "refunds": [_row(r) for r in of_returns(Refund, Refund.created_at, Refund.id)],
        "exchanges": [_row(x) for x in of_returns(Exchange, Exchange.created_at, Exchange.id)],
        "consents": [_row(c) for c in session.exec(select(Consent).where(Consent.customer_id == customer.id)
                                                  .order_by(Consent.at, Consent.id))],
        "notifications": [_row(m) for m in messages],
        "delivery_events": [_row(d) for d in delivery],
        "carrier_events": [_row(c) for c in of_returns(CarrierEvent, CarrierEvent.occurred_at, CarrierEvent.id)],
    }


def _return_row(ret: Return) -> dict[str, Any]:
    data = _row(ret)
    data.pop("idempotency_key", None)  # internal de-duplication key, says nothing about the customer
    return data


def export_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, default=_plain, ensure_ascii=False, indent=2).encode("utf-8")


def export_filename(customer: Customer, at: datetime) -> str:
    return f"customer-{customer.id}-data-{at.strftime('%Y%m%d-%H%M%S')}.json"

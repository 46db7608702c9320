"""Marking an exchange's replacement parcel as shipped, with the carrier's tracking number.

Once per replacement: the return's version is compared and set (a stale or second form gets 409), and the
exchanges move from "requested" to "shipped" with a compare-and-set on their state. The `exchange.shipped`
event goes through service.record_event (via staff_event), so the notification rules fire in the same
transaction, and it carries the tracking number and the items for the status page and the templates.

No web imports: the controller parses the form, calls this, renders.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import Exchange, Order, Return
from portal.outbox.service import enqueue_webhook_event
from portal.returns import exchange_shipment, service
from portal.staff.accounts import StaffPrincipal
from portal.staff.common import bump_version, check_version, staff_event
from portal.staff.return_view import SupportError
from portal.staff.vocabulary import term

TRACKING_MIN, TRACKING_MAX = 6, 40
FIELD = "tracking_number"
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9]")


def parse_tracking_number(text: str) -> str:
    """The carrier's tracking number: 6 to 40 letters (A–Z) and digits; spaces are dropped, letters upper-cased."""
    cleaned = re.sub(r"\s+", "", text or "")
    if not cleaned:
        raise SupportError({FIELD: staff_text("Enter the carrier's tracking number of the replacement parcel.")})
    bad = sorted(set(_NOT_ALLOWED.findall(cleaned)))
    if bad:
        raise SupportError({FIELD: staff_text(
            "A tracking number has only letters (A–Z) and digits; remove %(chars)s.",
            chars=" ".join(f"“{c}”" for c in bad[:5]))})
    if not TRACKING_MIN <= len(cleaned) <= TRACKING_MAX:
        raise SupportError({FIELD: staff_text(
            "A tracking number has %(min)s to %(max)s letters and digits; this one has %(length)s.",
            min=TRACKING_MIN, max=TRACKING_MAX, length=len(cleaned))})
    return cleaned.upper()


def open_exchanges(session: Session, ret: Return) -> list[Exchange]:
    """The decided replacements not shipped yet."""
    return list(session.exec(select(Exchange).where(Exchange.return_id == ret.id, Exchange.state == "requested")
                             .order_by(Exchange.id)))


def can_ship(session: Session, ret: Return) -> bool:
    """What the return page asks before it offers the form."""
    return (ret.resolution == "exchange" and ret.status not in service.INACTIVE_STATUSES
            and bool(open_exchanges(session, ret)))


def _refuse_unless_shippable(session: Session, ret: Return, pending: list[Exchange]) -> None:
    if ret.resolution != "exchange":
        raise SupportError({"ship": staff_text("Return %(rma)s is not an exchange: there is no replacement to ship.",
                                               rma=ret.rma)}, status_code=409)
    if ret.status in service.INACTIVE_STATUSES:
        raise SupportError({"ship": staff_text("Return %(rma)s is %(status)s: nothing is shipped for it.",
                                               rma=ret.rma, status=term("status", ret.status))}, status_code=409)
    if pending:
        return
    shipped = exchange_shipment.latest_shipment(session, ret.id)
    if shipped is not None:
        raise SupportError({"ship": staff_text(
            "The replacement for return %(rma)s was already marked shipped (tracking number %(tracking)s). "
            "Nothing was changed.", rma=ret.rma, tracking=shipped.tracking_number)}, status_code=409)
    raise SupportError({"ship": staff_text(
        "No replacement is recorded for return %(rma)s yet: record the exchange on the refund page first.",
        rma=ret.rma)}, status_code=409)


def mark_exchange_shipped(session: Session, ret: Return, staff: StaffPrincipal, tracking_text: str,
                          version: str | None) -> exchange_shipment.ExchangeShipment:
    """Record that the replacement left, once; SupportError (400 for the tracking number, 409 for the state) or
    VersionConflict (409) otherwise. The caller commits, or rolls back on an error."""
    tracking = parse_tracking_number(tracking_text)
    pending = open_exchanges(session, ret)
    _refuse_unless_shippable(session, ret, pending)
    check_version(ret, version)
    bump_version(session, ret, ret.version)  # compare-and-set: of two concurrent submits one wins
    ids = [e.id for e in pending]
    moved = session.exec(sa.update(Exchange).where(Exchange.id.in_(ids), Exchange.state == "requested")
                         .values(state="shipped", external_ref=tracking))
    if moved.rowcount != len(ids):  # pragma: no cover - the version's compare-and-set already serialises this
        raise SupportError({"ship": staff_text("Someone else changed return %(rma)s at the same time. Reload and "
                                               "try again.", rma=ret.rma)}, status_code=409)
    for exchange in pending:
        session.refresh(exchange)
    items = [{"name": e.replacement_name, "sku": e.replacement_sku, "quantity": e.quantity} for e in pending]
    event = staff_event(session, ret, staff, exchange_shipment.EXCHANGE_SHIPPED,
                        before={"state": "requested"}, after={"state": "shipped", FIELD: tracking},
                        tracking_number=tracking, exchange_ids=ids, items=items)
    enqueue_webhook_event(session, exchange_shipment.EXCHANGE_SHIPPED, {
        "rma": ret.rma, "order_number": _order_number(session, ret), "tracking_number": tracking,
        "exchange_ids": ids, "items": items,
    }, unique=f"return:{ret.id}", return_id=ret.id)  # one shipment per return: a second one is refused above
    session.flush()
    return exchange_shipment.from_event(event)


def _order_number(session: Session, ret: Return) -> str:
    return session.get(Order, ret.order_id).number

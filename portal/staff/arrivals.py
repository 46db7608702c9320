"""Receiving parcels: which return a scanned code belongs to, and recording its arrival exactly once.

A code is tried as an RMA first (scanners and people type it in any case, with dashes or spaces),
then as an order number, then as a carrier tracking number. No web imports here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import Order, Return, utcnow
from portal.outbox.service import enqueue_webhook_event
from portal.returns import service
from portal.returns.identifiers import is_valid_rma, normalise_rma
from portal.staff.accounts import StaffPrincipal
from portal.staff.common import staff_event

MAX_CODE = 100
# A parcel in one of these states can be marked as arrived.
BEFORE_ARRIVAL = frozenset({
    "registered", "label_issued", "dropped_off", "in_transit", "at_consolidation", "collected", "customs_cleared",
    "needs_attention",
})
# These returns must not be received: the warehouse gets a warning instead (%(rma)s: the return's RMA).
NOT_RECEIVABLE = {
    "pending_approval": staff_text("Return %(rma)s is waiting for approval (outside the return period). Do not accept "
                                   "it until it is approved. Do not mark it as received; put the parcel aside and ask support."),
    "cancelled": staff_text("Return %(rma)s was cancelled by the customer. Do not mark it as received; put the parcel "
                            "aside and ask support."),
    "rejected": staff_text("Return %(rma)s was rejected. Do not mark it as received; put the parcel aside and ask support."),
    "expired": staff_text("Return %(rma)s expired: the label was never used. Do not mark it as received; put the parcel "
                          "aside and ask support."),
}


def clean_code(text: str) -> str:
    """What a keyboard-wedge scanner or a person typed, without surrounding blanks and control characters."""
    return "".join(ch for ch in text if ch.isprintable()).strip()[:MAX_CODE]


@dataclass
class Lookup:
    code: str
    ret: Return | None = None
    order: Order | None = None
    choices: list[Return] = field(default_factory=list)  # several returns of one order: the packer picks one
    matched_by: str = ""  # "rma" | "order" | "tracking"


def find_return(db: Session, code: str) -> Lookup:
    """The return a scanned or typed code names; `choices` when an order has several waiting returns."""
    code = clean_code(code)
    found = Lookup(code=code)
    if not code:
        return found
    rma = normalise_rma(code)
    if is_valid_rma(rma):
        found.ret = db.exec(select(Return).where(Return.rma == rma)).first()
        if found.ret is not None:
            found.matched_by = "rma"
            return found
    order = service.find_order_by_number(db, code)
    if order is not None:
        found.order, found.matched_by = order, "order"
        candidates = _order_candidates(db, order)
        if len(candidates) == 1:
            found.ret = candidates[0]
        else:
            found.choices = candidates
        return found
    spellings = {code, code.upper(), code.replace(" ", "").upper()}
    found.ret = db.exec(
        select(Return).where(Return.tracking_number.in_(spellings)).order_by(Return.id.desc())
    ).first()
    if found.ret is not None:
        found.matched_by = "tracking"
    return found


def _order_candidates(db: Session, order: Order) -> list[Return]:
    """The order's returns still on their way; else its active returns; else only its most recent return."""
    active = service.active_returns_of(db, order.id)
    waiting = [r for r in active if r.status in BEFORE_ARRIVAL and r.arrived_at is None]
    if waiting:
        return sorted(waiting, key=lambda r: r.id, reverse=True)
    if active:
        return sorted(active, key=lambda r: r.id, reverse=True)
    latest = db.exec(select(Return).where(Return.order_id == order.id).order_by(Return.id.desc())).first()
    return [latest] if latest else []


@dataclass(frozen=True)
class Arrival:
    outcome: str  # "arrived" (recorded now) | "already" (recorded before) | "refused" (must not be received)
    message: str


def record_arrival(db: Session, ret: Return, staff: StaffPrincipal, code: str = "",
                   now: datetime | None = None) -> Arrival:
    """Mark the return as arrived once: header state, arrived_at (fixes the refund's legal due date), timeline."""
    if ret.status in NOT_RECEIVABLE:
        return Arrival("refused", staff_text(NOT_RECEIVABLE[ret.status], rma=ret.rma))
    if ret.arrived_at is not None or ret.status not in BEFORE_ARRIVAL:
        return Arrival("already", staff_text("Return %(rma)s was already received.", rma=ret.rma))
    now = now or utcnow()
    before = {"status": ret.status, "arrived_at": None}
    # Compare-and-set: two scanners scanning the same parcel at once record one arrival.
    won = db.exec(
        sa.update(Return).where(Return.id == ret.id, Return.arrived_at.is_(None))
        .values(arrived_at=now, version=Return.version + 1)
    ).rowcount == 1
    db.refresh(ret, ["arrived_at", "version", "status"])
    if not won:
        return Arrival("already", staff_text("Return %(rma)s was already received.", rma=ret.rma))
    order = db.get(Order, ret.order_id)
    service.advance(db, ret, "arrived", staff.email, "parcel.arrived", {"scanned": code}, at=now)
    staff_event(db, ret, staff, "arrival.recorded", before=before,
                after={"status": ret.status, "arrived_at": now.isoformat()}, code=code)
    enqueue_webhook_event(db, "return.received", {
        "rma": ret.rma, "order_number": order.number if order else None, "arrived_at": now.isoformat(),
    }, unique=str(ret.id), return_id=ret.id)
    db.flush()
    return Arrival("arrived", staff_text("Return %(rma)s is marked as arrived.", rma=ret.rma))

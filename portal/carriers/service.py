"""apply_carrier_event: store one carrier scan (idempotent) and move the return forward.

- stored once per (carrier, event_id); a repeat returns the stored row (duplicate=True), nothing else happens;
- the return is found by tracking number; its state only moves forward (portal.returns.service.advance
  records a late "in transit" after "arrived" with ignored_state);
- the earliest scan becomes Return.proof_of_sending_at (it can bring the refund's legal due date forward);
- "arrived" sets Return.arrived_at; "at_consolidation" applies to Norwegian returns only (others: in transit);
- "exception" is recorded on the timeline without changing the state.
Notifications fire through portal.notify.hooks for the event types parcel.<state>.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.carriers.adapters import Adapter, adapter_for
from portal.models import CarrierEvent, Return
from portal.returns import service

INACTIVE = ("cancelled", "rejected", "expired")


class UnknownCarrier(LookupError):
    pass


@dataclass(frozen=True)
class Applied:
    event: CarrierEvent
    duplicate: bool
    return_id: int | None
    moved: bool


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def find_return(session: Session, tracking_number: str) -> Return | None:
    """The active return with this tracking number, locked until the scan is applied (PostgreSQL): a return
    that the expiry job or a cancel changes meanwhile is read as they left it, never overwritten."""
    return session.exec(select(Return).where(Return.tracking_number == tracking_number, Return.status.not_in(INACTIVE))
                        .order_by(Return.id.desc()).limit(1).with_for_update()).first()


def apply_carrier_event(session: Session, carrier: str, event_id: str, tracking_number: str, code: str,
                        occurred_at: datetime, raw: dict, adapter: Adapter | None = None) -> Applied:
    adapter = adapter or adapter_for(carrier)
    if adapter is None:
        raise UnknownCarrier(carrier)
    carrier = carrier.lower()
    existing = _stored(session, carrier, event_id)
    if existing is not None:
        return Applied(existing, True, existing.return_id, False)
    occurred_at = _utc(occurred_at)
    mapped = adapter.map(code)
    ret = find_return(session, tracking_number)
    event = CarrierEvent(carrier=carrier, event_id=event_id, tracking_number=tracking_number,
                         return_id=ret.id if ret else None, code=code, mapped_state=mapped, occurred_at=occurred_at, raw=raw)
    savepoint = session.begin_nested()
    try:
        session.add(event)
        session.flush()
        savepoint.commit()
    except IntegrityError:  # the same event, stored by a concurrent request a moment ago
        savepoint.rollback()
        stored = _stored(session, carrier, event_id)
        return Applied(stored, True, stored.return_id if stored else None, False)
    moved = _move(session, ret, carrier, event, mapped) if ret is not None and mapped else False
    return Applied(event, False, ret.id if ret else None, moved)


def _stored(session: Session, carrier: str, event_id: str) -> CarrierEvent | None:
    return session.exec(select(CarrierEvent).where(CarrierEvent.carrier == carrier, CarrierEvent.event_id == event_id)).first()


def _move(session: Session, ret: Return, carrier: str, event: CarrierEvent, mapped: str) -> bool:
    at = event.occurred_at
    data = {"carrier": carrier, "code": event.code, "event_id": event.event_id, "tracking_number": event.tracking_number}
    actor = f"carrier:{carrier}"
    if mapped == "exception":
        service.record_event(session, ret, "parcel.exception", actor, data, at)  # fires the notifications too
        return False
    proof = _utc(ret.proof_of_sending_at) if ret.proof_of_sending_at else None
    if proof is None or at < proof:
        ret.proof_of_sending_at = at
    target = mapped
    if target == "at_consolidation" and not ret.is_norway:
        target = "in_transit"
    if target == "arrived" and ret.arrived_at is None:
        ret.arrived_at = at
    moved = service.advance(session, ret, target, actor, f"parcel.{target}", data, at)  # notifies only if moved
    session.add(ret)
    return moved

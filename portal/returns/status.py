"""What the status page shows: timeline in plain words, lines, refund so far and when it is due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, select

from portal.config import Settings
from portal.models import Order, OrderLine, Refund, Return, ReturnEvent, ReturnLine
from portal.returns import exchange_shipment, service
from portal.returns.refund_estimate import RefundEstimate, estimate_refund

# Event types the consumer sees on the timeline; the rest (audit, internal) stay for staff.
CONSUMER_EVENTS = (
    "return.registered",
    "return.pending_approval",
    "return.approved",
    "return.rejected",
    "label.issued",
    "parcel.dropped_off",
    "parcel.in_transit",
    "parcel.at_consolidation",
    "collection.collected",
    "customs.cleared",
    "parcel.arrived",
    "return.inspected",
    "refund.issued",
    "refund.failed",
    "exchange.shipped",
    "return.cancelled",
    "return.expired",
    "return.closed",
)

# The stepper: the four milestones a consumer cares about.
STEPS = ("registered", "on_its_way", "arrived", "refunded")
_STEP_OF_STATUS = {
    "pending_approval": 0, "registered": 0, "label_issued": 0,
    "dropped_off": 1, "in_transit": 1, "at_consolidation": 1, "collected": 1, "customs_cleared": 1,
    "arrived": 2, "inspected": 2, "needs_attention": 1,
    "resolved": 3, "closed": 3,
}


@dataclass(frozen=True)
class StatusView:
    ret: Return
    order: Order
    lines: list[tuple[ReturnLine, OrderLine]]
    timeline: list[ReturnEvent]
    refunds: list[Refund]
    estimate: RefundEstimate | None
    step: int
    drop_off_deadline: date | None
    exchange_shipment: exchange_shipment.ExchangeShipment | None  # the replacement parcel, once sent


def build_status_view(session: Session, ret: Return, settings: Settings) -> StatusView:
    tz = settings.timezone
    order = session.get(Order, ret.order_id)
    events = [e for e in service.events_of(session, ret.id) if e.type in CONSUMER_EVENTS]
    refunds = list(session.exec(select(Refund).where(Refund.return_id == ret.id).order_by(Refund.id)))
    estimate = estimate_refund(session, ret, order, tz) if ret.status not in service.INACTIVE_STATUSES else None
    return StatusView(
        ret=ret,
        order=order,
        lines=service.return_lines_with_order_lines(session, ret.id),
        timeline=list(reversed(events)),
        refunds=refunds,
        estimate=estimate,
        step=_STEP_OF_STATUS.get(ret.status, 0),
        drop_off_deadline=service.drop_off_deadline(ret, settings),
        exchange_shipment=exchange_shipment.latest_in(events),
    )

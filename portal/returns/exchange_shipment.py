"""The replacement parcel of an exchange, as the return's timeline records it.

Staff mark the exchange shipped once (portal/staff/exchange_shipping.py); the `exchange.shipped` event carries
the carrier's tracking number and the replaced items. The consumer status page and the notification variables
read it from that event: events are append-only and part of the status page's cache stamp, so the page never
shows a stale shipment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from portal.models import ReturnEvent

EXCHANGE_SHIPPED = "exchange.shipped"


@dataclass(frozen=True)
class ExchangeShipment:
    tracking_number: str
    shipped_at: datetime
    items: list[dict] = field(default_factory=list)  # {name, sku, quantity} per replacement


def from_event(event: ReturnEvent) -> ExchangeShipment:
    data = event.data or {}
    return ExchangeShipment(tracking_number=str(data.get("tracking_number") or ""), shipped_at=event.at,
                            items=list(data.get("items") or []))


def latest_shipment(session: Session, return_id: int) -> ExchangeShipment | None:
    event = session.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id,
                                                   ReturnEvent.type == EXCHANGE_SHIPPED)
                         .order_by(ReturnEvent.at.desc(), ReturnEvent.id.desc())).first()
    return from_event(event) if event is not None else None


def latest_in(events: list[ReturnEvent]) -> ExchangeShipment | None:
    """The same from events already loaded (oldest first)."""
    shipped = [e for e in events if e.type == EXCHANGE_SHIPPED]
    return from_event(shipped[-1]) if shipped else None

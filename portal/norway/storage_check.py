"""Daily storage check: warn staff about returns waiting at the consolidation point beyond the free days.

Storage is charged per started day after the free days (customs.schedule.storage_fee). A return
counts from its first move to at_consolidation until it is collected, whether or not it is
already in a planned collection. One internal e-mail (and one storage.overdue webhook) per
return and local day: the outbox key makes a second run on the same day queue nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from customs.schedule import free_storage_ends
from portal.i18n import money
from portal.models import Return
from portal.norway import collections
from portal.outbox.service import enqueue, enqueue_webhook_event


@dataclass(frozen=True)
class OverdueReturn:
    rma: str
    return_id: int
    order_number: str
    arrived_at: datetime
    days_waited: int
    fee_minor: int
    currency: str
    collection: str | None


@dataclass
class StorageCheckResult:
    checked: int = 0
    overdue: list[OverdueReturn] = field(default_factory=list)
    alerts_queued: int = 0


def overdue_returns(session: Session, now: datetime) -> list[OverdueReturn]:
    """Returns at the consolidation point longer than the free storage days, longest first."""
    settings = collections.get_settings(session)
    at_point = list(session.exec(
        select(Return).where(Return.is_norway, Return.status == "at_consolidation").order_by(Return.id)
    ))
    found = []
    for waiting in collections.describe_waiting(session, at_point, settings, now):
        if not waiting.overdue:
            continue
        in_collection = collections.collection_of_return(session, waiting.ret.id)
        found.append(OverdueReturn(
            waiting.ret.rma, waiting.ret.id, waiting.order_number, waiting.arrived_at, waiting.days_waited,
            waiting.fee_minor, settings.fee_currency, in_collection.reference if in_collection else None,
        ))
    return sorted(found, key=lambda o: (o.arrived_at, o.rma))


def run_storage_check(session: Session, now: datetime, base_url: str = "") -> StorageCheckResult:
    """Queue one alert per overdue return per local day (Europe/Oslo by default)."""
    now = now.astimezone(UTC)
    settings = collections.get_settings(session)
    day = now.astimezone(ZoneInfo(settings.timezone)).date().isoformat()
    destination = collections.alert_address(session, settings)
    result = StorageCheckResult()
    result.overdue = overdue_returns(session, now)
    result.checked = len(session.exec(
        select(Return.id).where(Return.is_norway, Return.status == "at_consolidation")
    ).all())
    for item in result.overdue:
        fee = money(item.fee_minor, item.currency, "en")
        free_until = free_storage_ends(item.arrived_at, settings.free_storage_days)
        where = f"It is in collection {item.collection}, not collected yet." if item.collection else "It is in no collection yet."
        text = "\n".join([
            f"Return {item.rma} (order {item.order_number}) has waited {item.days_waited} day(s) at the Norwegian "
            f"consolidation point since {item.arrived_at.astimezone(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M}.",
            f"Free storage ended {free_until.astimezone(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M} "
            f"({settings.free_storage_days} day(s)); the storage fee so far is {fee} and grows by "
            f"{money(settings.fee_per_day_minor, settings.fee_currency, 'en')} per started day.",
            where,
            f"Collections: {base_url}/staff/norway/",
        ])
        queued = enqueue(
            session, key=f"norway:storage.overdue:{item.return_id}:{day}", channel="email", destination=destination,
            event_type="storage.overdue", return_id=item.return_id,
            payload={"subject": f"Storage fee running: return {item.rma}, {item.days_waited} days, {fee}", "text": text},
        )
        enqueue_webhook_event(session, "storage.overdue", {
            "rma": item.rma, "order_number": item.order_number, "arrived_at": item.arrived_at.isoformat(),
            "days_waited": item.days_waited, "fee": {"minor": item.fee_minor, "currency": item.currency},
            "collection": item.collection, "date": day,
        }, unique=f"{item.return_id}:{day}", return_id=item.return_id)
        result.alerts_queued += queued is not None
    return result

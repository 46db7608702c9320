"""Time-based triggers, run by the scheduler (APScheduler job) every few minutes.

Each active time rule picks the returns whose reference date plus/minus N days (rule.offset_days) has
been reached and fires for them. Running the sweep again queues nothing new: the outbox idempotency key
contains the return, the rule, the channel and the offset.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.config import Settings, get_settings
from portal.models import NotificationRule, Order, Refund, Return, ReturnEvent
from portal.notify.rules import TIME_TRIGGERS, fire, local_today
from portal.returns import service


def _label_unused(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    cutoff = now - timedelta(days=rule.offset_days)
    return list(session.exec(select(Return).where(Return.status == "label_issued", Return.created_at <= cutoff)))


def _window_ending(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    today = local_today(now, settings.timezone)
    window = service.get_policy(session).return_window_days
    found = []
    rows = session.exec(select(Return, Order).join(Order, Order.id == Return.order_id)
                        .where(Return.status.in_(("registered", "label_issued")), Order.delivered_at.is_not(None)))
    for ret, order in rows:
        end = local_today(order.delivered_at, settings.timezone) + timedelta(days=window)
        if end - timedelta(days=rule.offset_days) <= today <= end:
            found.append(ret)
    return found


def _refunds_open(session: Session):
    return session.exec(select(Return, Refund).join(Refund, Refund.return_id == Return.id)
                        .where(Refund.state.in_(("pending", "due")), Refund.due_date.is_not(None)))


def _refund_due(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    today = local_today(now, settings.timezone)
    return _unique(ret for ret, refund in _refunds_open(session)
                   if refund.due_date - timedelta(days=rule.offset_days) <= today <= refund.due_date)


def _refund_overdue(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    today = local_today(now, settings.timezone)
    return _unique(ret for ret, refund in _refunds_open(session)
                   if refund.due_date + timedelta(days=rule.offset_days) < today)


def _consolidation_waiting(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    cutoff = now - timedelta(days=rule.offset_days)
    arrived_at = (select(ReturnEvent.return_id, sa.func.max(ReturnEvent.at).label("at"))
                  .where(ReturnEvent.type == "parcel.at_consolidation").group_by(ReturnEvent.return_id).subquery())
    return list(session.exec(select(Return).join(arrived_at, arrived_at.c.return_id == Return.id)
                             .where(Return.status == "at_consolidation", arrived_at.c.at <= cutoff)))


def _unique(returns) -> list[Return]:
    seen: dict[int, Return] = {}
    for ret in returns:
        seen.setdefault(ret.id, ret)
    return list(seen.values())


FINDERS = {
    "time.label_unused": _label_unused,
    "time.window_ending": _window_ending,
    "time.refund_due": _refund_due,
    "time.refund_overdue": _refund_overdue,
    "time.consolidation_waiting": _consolidation_waiting,
}
assert set(FINDERS) == set(TIME_TRIGGERS)


def sweep(engine, now: datetime, settings: Settings | None = None) -> int:
    """Fire every active time-based rule for the returns it applies to; returns how many messages were queued."""
    settings = settings or get_settings()
    queued = 0
    with Session(engine) as session:
        rules = list(session.exec(select(NotificationRule).where(
            NotificationRule.active, NotificationRule.trigger.in_(list(TIME_TRIGGERS))).order_by(NotificationRule.id)))
        for rule in rules:
            for ret in FINDERS[rule.trigger](session, rule, now, settings):
                queued += fire(session, ret, rule.trigger, now, settings=settings, rules=[rule]).queued
            session.commit()
    return queued

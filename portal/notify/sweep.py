"""Time-based triggers, run by the scheduler (APScheduler job) every few minutes.

Each active time rule picks the returns whose reference date plus/minus N days (rule.offset_days) has
been reached and fires for them. Running the sweep again queues nothing new: the outbox idempotency key
contains the return, the rule, the channel and the offset.

The refund reminders (time.refund_due / time.refund_overdue) follow the legal due date of every unpaid refund,
and of every arrived or inspected return that has no refund yet (the date runs from the arrival, not from the
day someone opens the refund page). The key is per return, so a reminder sent before the refund existed is not
sent again for the refund.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.config import Settings, get_settings
from portal.models import NotificationRule, Order, Refund, Return, ReturnEvent, ReturnLine
from portal.notify.rules import TIME_TRIGGERS, fire, local_today
from portal.returns import service
from portal.staff.refunding import due_date_for


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


# Not paid yet: "requested" is what staff issuing a refund creates (the shop pays it later), "failed" waits
# for a retry; both still owe the customer the money by the due date.
UNPAID_REFUND_STATES = ("pending", "due", "requested", "failed")


def _refunds_open(session: Session):
    return session.exec(select(Return, Refund).join(Refund, Refund.return_id == Return.id)
                        .where(Refund.state.in_(UNPAID_REFUND_STATES), Refund.due_date.is_not(None)))


# Goods back (arrival or the first scan fixed the legal due date) but nobody has created the refund yet: the
# date runs all the same. Left out: exchanges (not a withdrawal: no 14-day refund duty) and inspections that
# accepted nothing (nothing is owed).
AWAITING_REFUND_STATUSES = ("arrived", "inspected")


def _awaiting_refund(session: Session, settings: Settings) -> Iterator[tuple[Return, date]]:
    accepted = sa.exists().where(ReturnLine.return_id == Return.id, ReturnLine.acceptance == "accepted")
    rows = session.exec(select(Return).where(
        Return.status.in_(AWAITING_REFUND_STATUSES), Return.resolution != "exchange",
        ~sa.exists().where(Refund.return_id == Return.id),
        sa.or_(Return.status == "arrived", accepted)).order_by(Return.id))
    for ret in rows:
        due, _why = due_date_for(session, ret, settings.timezone, goods_here=True)  # the refund page's date
        if due is not None:
            yield ret, due


def _due_dates(session: Session, settings: Settings) -> Iterator[tuple[Return, date]]:
    """(return, legal due date) for every unpaid refund, and for every return still waiting for its refund."""
    for ret, refund in _refunds_open(session):
        yield ret, refund.due_date
    yield from _awaiting_refund(session, settings)


def _refund_due(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    today = local_today(now, settings.timezone)
    return _unique(ret for ret, due in _due_dates(session, settings)
                   if due - timedelta(days=rule.offset_days) <= today <= due)


def _refund_overdue(session: Session, rule: NotificationRule, now: datetime, settings: Settings) -> list[Return]:
    today = local_today(now, settings.timezone)
    return _unique(ret for ret, due in _due_dates(session, settings)
                   if due + timedelta(days=rule.offset_days) < today)


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

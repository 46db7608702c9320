"""The one entry point from the places where return events happen."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from portal.models import NotificationRule, Return, ReturnLine, utcnow
from portal.notify.rules import EVENT_TRIGGERS, FireResult, fire


def triggers_for(session: Session, ret: Return, event_type: str) -> list[str]:
    if event_type == "return.inspected":
        # Only a finished inspection has an outcome to tell: a saved draft (lines undecided, units still
        # missing) leaves the return "arrived" and must not announce "all accepted".
        if ret.status != "inspected":
            return []
        session.flush()
        acceptances = set(session.exec(select(ReturnLine.acceptance).where(ReturnLine.return_id == ret.id)))
        if not acceptances or "pending" in acceptances:
            return []
        return ["return.inspected.partly_rejected" if "rejected" in acceptances else "return.inspected.accepted"]
    return [event_type] if event_type in EVENT_TRIGGERS else []


def on_return_event(session: Session, ret: Return, event_type: str, at: datetime | None = None) -> FireResult:
    """Queue notifications for an event just recorded, in the same transaction. Cheap when no rule is active."""
    if event_type.startswith("notification."):
        return FireResult()
    triggers = triggers_for(session, ret, event_type)
    if not triggers:
        return FireResult()
    any_active = session.exec(
        select(NotificationRule.id).where(NotificationRule.trigger.in_(triggers), NotificationRule.active)
    ).first()
    if any_active is None:
        return FireResult()
    total = FireResult()
    for trigger in triggers:
        r = fire(session, ret, trigger, at or utcnow())
        total = FireResult(total.queued + r.queued, total.suppressed + r.suppressed, total.invalid + r.invalid,
                           total.failed + r.failed)
    session.info.setdefault("notify_results", []).append(total)  # lets callers (and tests) see what an event did
    return total

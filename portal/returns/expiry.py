"""Returns whose label was never used expire: RETURN_EXPIRY_DAYS after registration.

The label's last drop-off day is service.last_drop_off_day (registration day + RETURN_EXPIRY_DAYS, in the
merchant's time zone; the same date the label, the status page and the templates show). The day after it, a
return that is still registered / label_issued, with no carrier scan at all, moves to `expired` through the
lifecycle; that frees its quantities for a new return (expired is inactive, like cancelled) and records
`return.expired`, so the notification rules for that trigger fire. A daily job runs it (portal/jobs/scheduler.py),
and `portal expire-returns`. Running it again changes nothing: an expired return is terminal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from portal.config import Settings
from portal.models import CarrierEvent, Return
from portal.returns import service
from portal.returns.lifecycle import EXPIRABLE

log = logging.getLogger("portal.returns.expiry")
EVENT = "return.expired"


@dataclass(frozen=True)
class ExpiryReport:
    expired: list[str] = field(default_factory=list)  # RMAs (would be) expired by this run
    dry_run: bool = False

    @property
    def count(self) -> int:
        return len(self.expired)


def _never_scanned():
    return sa.and_(Return.status.in_(sorted(EXPIRABLE)), Return.proof_of_sending_at.is_(None),
                   ~sa.exists().where(CarrierEvent.return_id == Return.id))


def due_for_expiry(session: Session, now: datetime, settings: Settings) -> list[Return]:
    """Unused returns whose last drop-off day is over (merchant's time zone), oldest first."""
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    # A coarse cut in SQL (a day of slack for time zones and DST), the exact date check below.
    cutoff = now - timedelta(days=settings.return_expiry_days - 1)
    rows = session.exec(select(Return).where(_never_scanned(), Return.created_at < cutoff).order_by(Return.id))
    return [ret for ret in rows if service.last_drop_off_day(ret.created_at, settings) < today]


def expire_one(session: Session, ret: Return, now: datetime, settings: Settings) -> bool:
    """Expire this return if it still qualifies; False when something (a scan, a cancel) got there first."""
    # Write the row first and re-check in the same statement: a concurrent scan or cancel either committed
    # before (then this matches nothing) or waits for this transaction (row lock on PostgreSQL, the write lock
    # on SQLite).
    claimed = session.exec(sa.update(Return).where(Return.id == ret.id, _never_scanned()).values(updated_at=now))
    if claimed.rowcount != 1:
        return False
    session.refresh(ret)
    deadline = service.last_drop_off_day(ret.created_at, settings)
    return service.advance(session, ret, "expired", "system", EVENT, {
        "reason": "label not used", "drop_off_deadline": deadline.isoformat(),
        "return_expiry_days": settings.return_expiry_days,
    }, at=now)


def expire_returns(engine: Engine, now: datetime, settings: Settings, *, dry_run: bool = False) -> ExpiryReport:
    """Expire every due return, each in its own transaction (one failure leaves the others done)."""
    with Session(engine) as session:
        due = [(ret.id, ret.rma) for ret in due_for_expiry(session, now, settings)]
    if dry_run:
        return ExpiryReport([rma for _, rma in due], dry_run=True)
    expired = []
    for return_id, rma in due:
        with Session(engine) as session:
            ret = session.get(Return, return_id)
            if ret is not None and expire_one(session, ret, now, settings):
                session.commit()
                expired.append(rma)
            else:
                session.rollback()
    return ExpiryReport(expired)


def run_job(engine: Engine, now: datetime, settings: Settings) -> ExpiryReport:
    """The daily scheduled run."""
    report = expire_returns(engine, now, settings)
    if report.count:
        log.info("return expiry: %d returns expired (label not used within %d days): %s", report.count,
                 settings.return_expiry_days, ", ".join(report.expired))
    return report

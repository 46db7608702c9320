"""Collection schedule arithmetic: cut-offs and storage fees at the consolidation point."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

TUESDAY, FRIDAY = 1, 4
DEFAULT_COLLECTION_WEEKDAYS: frozenset[int] = frozenset({TUESDAY, FRIDAY})
DEFAULT_CUTOFF = time(12, 0)
DEFAULT_TIMEZONE = "Europe/Oslo"
_DAY = timedelta(days=1)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def next_cutoffs(
    after: datetime,
    weekdays: Iterable[int] = DEFAULT_COLLECTION_WEEKDAYS,
    cutoff: time = DEFAULT_CUTOFF,
    tz: str = DEFAULT_TIMEZONE,
) -> Iterator[datetime]:
    """Endless, increasing UTC cut-offs strictly after `after`.

    A cut-off is the local wall-clock `cutoff` on each selected weekday
    (0 = Monday) in `tz`, so it stays at the same local hour across DST
    changes. A wall time that does not exist on a spring-forward day is read
    with the offset in force before the change (zoneinfo fold=0).
    """
    _require_aware(after, "after")
    after = after.astimezone(UTC)
    days = frozenset(weekdays)
    if not days or not days <= set(range(7)):
        raise ValueError(f"weekdays must be a non-empty subset of 0..6 (0 = Monday), got {sorted(days)}")
    zone = ZoneInfo(tz)
    day = after.astimezone(zone).date()
    while True:
        if day.weekday() in days:
            moment = datetime.combine(day, cutoff, tzinfo=zone).astimezone(UTC)
            if moment > after:
                yield moment
        day += _DAY


@dataclass(frozen=True, slots=True)
class StorageCharge:
    days_waited: int
    chargeable_days: int
    fee_minor: int


def days_waited(arrived_at: datetime, until: datetime) -> int:
    """Started 24-hour periods since arrival: 1 second counts as day 1, exactly 24 h is still day 1.

    Counted on elapsed UTC time, so a DST change neither adds nor removes an hour.
    """
    _require_aware(arrived_at, "arrived_at")
    _require_aware(until, "until")
    # Both to UTC first: Python subtracts datetimes sharing one tzinfo as wall-clock times.
    elapsed = until.astimezone(UTC) - arrived_at.astimezone(UTC)
    if elapsed <= timedelta(0):
        return 0
    whole, rest = divmod(elapsed, _DAY)
    return whole + (1 if rest else 0)


def storage_fee(
    arrived_at_consolidation: datetime, until: datetime, free_days: int, fee_per_day_minor: int
) -> StorageCharge:
    """Fee for the started days beyond the free days (a partial day counts as a whole day)."""
    if free_days < 0 or fee_per_day_minor < 0:
        raise ValueError("free_days and fee_per_day_minor cannot be negative")
    waited = days_waited(arrived_at_consolidation, until)
    chargeable = max(0, waited - free_days)
    return StorageCharge(days_waited=waited, chargeable_days=chargeable, fee_minor=chargeable * fee_per_day_minor)


def free_storage_ends(arrived_at_consolidation: datetime, free_days: int) -> datetime:
    """Moment after which storage starts to cost (UTC)."""
    _require_aware(arrived_at_consolidation, "arrived_at_consolidation")
    return arrived_at_consolidation.astimezone(UTC) + free_days * _DAY


def is_overdue_for_storage(arrived_at_consolidation: datetime, at: datetime, free_days: int) -> bool:
    """True once a parcel still waiting at `at` has started costing storage fees."""
    _require_aware(at, "at")
    return at.astimezone(UTC) > free_storage_ends(arrived_at_consolidation, free_days)

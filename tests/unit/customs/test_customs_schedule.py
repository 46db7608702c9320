from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from customs.schedule import (
    DEFAULT_COLLECTION_WEEKDAYS,
    days_waited,
    free_storage_ends,
    is_overdue_for_storage,
    next_cutoffs,
    storage_fee,
)

OSLO = ZoneInfo("Europe/Oslo")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_default_is_tuesday_and_friday():
    assert DEFAULT_COLLECTION_WEEKDAYS == {1, 4}
    # Wednesday 2024-06-05 09:00 UTC
    cutoffs = list(islice(next_cutoffs(utc(2024, 6, 5, 9), cutoff=time(12, 0), tz="Europe/Oslo"), 4))
    assert [c.astimezone(OSLO).strftime("%a %d %H:%M") for c in cutoffs] == [
        "Fri 07 12:00", "Tue 11 12:00", "Fri 14 12:00", "Tue 18 12:00"
    ]
    assert all(c.tzinfo is UTC for c in cutoffs)
    assert cutoffs[0] == utc(2024, 6, 7, 10)  # CEST = UTC+2


def test_cutoffs_across_spring_dst_change():
    # Europe/Oslo moves to CEST on Sunday 2024-03-31
    cutoffs = list(islice(next_cutoffs(utc(2024, 3, 28), {1, 4}, time(12, 0), "Europe/Oslo"), 2))
    assert cutoffs == [utc(2024, 3, 29, 11), utc(2024, 4, 2, 10)]  # same local noon, UTC hour shifts


def test_cutoffs_across_autumn_dst_change():
    cutoffs = list(islice(next_cutoffs(utc(2024, 10, 24), {1, 4}, time(12, 0), "Europe/Oslo"), 2))
    assert cutoffs == [utc(2024, 10, 25, 10), utc(2024, 10, 29, 11)]


def test_cutoff_is_strictly_after():
    exactly = utc(2024, 6, 7, 10)  # Friday 12:00 Oslo
    assert next(next_cutoffs(exactly, {1, 4}, time(12, 0), "Europe/Oslo")) == utc(2024, 6, 11, 10)
    just_before = exactly - timedelta(seconds=1)
    assert next(next_cutoffs(just_before, {1, 4}, time(12, 0), "Europe/Oslo")) == exactly


def test_custom_weekdays_and_timezone():
    # Monday/Wednesday/Friday at 15:30 in Stockholm, starting Saturday evening
    cutoffs = list(islice(next_cutoffs(utc(2024, 6, 8, 20), {0, 2, 4}, time(15, 30), "Europe/Stockholm"), 3))
    assert [c.astimezone(ZoneInfo("Europe/Stockholm")).strftime("%a %H:%M") for c in cutoffs] == [
        "Mon 15:30", "Wed 15:30", "Fri 15:30"
    ]


def test_local_date_decides_the_weekday():
    # 23:30 UTC Monday is already Tuesday 01:30 in Oslo: Tuesday's 12:00 cutoff is next
    assert next(next_cutoffs(utc(2024, 6, 10, 23, 30), {1}, time(12, 0), "Europe/Oslo")) == utc(2024, 6, 11, 10)


def test_wall_time_in_spring_gap_uses_offset_before_change():
    # 02:30 does not exist in Oslo on 2024-03-31; read with CET (+1)
    assert next(next_cutoffs(utc(2024, 3, 30), {6}, time(2, 30), "Europe/Oslo")) == utc(2024, 3, 31, 1, 30)


def test_bad_arguments():
    with pytest.raises(ValueError):
        next(next_cutoffs(datetime(2024, 6, 5, 9), {1}))
    with pytest.raises(ValueError):
        next(next_cutoffs(utc(2024, 6, 5, 9), set()))
    with pytest.raises(ValueError):
        next(next_cutoffs(utc(2024, 6, 5, 9), {7}))


# ---------------------------------------------------------------- storage


ARRIVED = utc(2024, 6, 3, 10, 0)


@pytest.mark.parametrize(
    ("elapsed", "days"),
    [
        (timedelta(0), 0),
        (timedelta(seconds=1), 1),
        (timedelta(hours=24), 1),
        (timedelta(hours=24, seconds=1), 2),
        (timedelta(days=3), 3),
        (timedelta(days=3, microseconds=1), 4),
        (-timedelta(hours=1), 0),
    ],
)
def test_started_days(elapsed, days):
    assert days_waited(ARRIVED, ARRIVED + elapsed) == days


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (timedelta(days=3), (3, 0, 0)),
        (timedelta(days=3, seconds=1), (4, 1, 5000)),
        (timedelta(days=4), (4, 1, 5000)),
        (timedelta(days=5, hours=1), (6, 3, 15000)),
    ],
)
def test_storage_fee_boundaries(elapsed, expected):
    charge = storage_fee(ARRIVED, ARRIVED + elapsed, free_days=3, fee_per_day_minor=5000)
    assert (charge.days_waited, charge.chargeable_days, charge.fee_minor) == expected


def test_storage_fee_without_free_days():
    assert storage_fee(ARRIVED, ARRIVED + timedelta(minutes=5), 0, 2500).fee_minor == 2500


def test_storage_days_ignore_dst():
    # 24 h across the autumn change is 24 h, i.e. one day, though the local clock moved 23 h
    arrived = datetime(2024, 10, 26, 12, 0, tzinfo=OSLO)
    assert days_waited(arrived, arrived.astimezone(UTC) + timedelta(hours=24)) == 1
    assert days_waited(arrived, datetime(2024, 10, 27, 12, 0, tzinfo=OSLO)) == 2  # 25 h elapsed


def test_free_period_in_local_time_across_dst():
    # arrived Saturday noon Oslo before the autumn change: 1 free day = 24 h = Sunday 11:00 local
    arrived = datetime(2024, 10, 26, 12, 0, tzinfo=OSLO)
    assert free_storage_ends(arrived, 1) == utc(2024, 10, 27, 10, 0)
    assert is_overdue_for_storage(arrived, datetime(2024, 10, 27, 11, 30, tzinfo=OSLO), 1)


def test_overdue_boundary():
    assert free_storage_ends(ARRIVED, 3) == utc(2024, 6, 6, 10, 0)
    assert not is_overdue_for_storage(ARRIVED, utc(2024, 6, 6, 10, 0), 3)
    assert is_overdue_for_storage(ARRIVED, utc(2024, 6, 6, 10, 0, 1), 3)


def test_negative_fee_inputs_refused():
    with pytest.raises(ValueError):
        storage_fee(ARRIVED, ARRIVED, -1, 100)
    with pytest.raises(ValueError):
        storage_fee(ARRIVED, datetime(2024, 6, 4), 1, 100)

"""Scheduler ticks: workers started at different moments agree on them; JOB_INTERVAL_<JOB> is parsed strictly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from portal.config import ConfigError, Settings, _job_intervals
from portal.jobs.scheduler import last_tick, schedule_trigger

UTC = timezone.utc


def test_interval_jobs_tick_at_the_same_instants_whenever_a_worker_starts():
    five_minutes = IntervalTrigger(minutes=5, timezone=UTC)
    first = schedule_trigger("norway-cutoffs", five_minutes, Settings())
    second = schedule_trigger("norway-cutoffs", five_minutes, Settings())
    started_a = datetime(2026, 3, 5, 12, 3, 17, tzinfo=UTC)
    started_b = started_a + timedelta(seconds=2.5)
    assert first.get_next_fire_time(None, started_a) == second.get_next_fire_time(None, started_b) \
        == datetime(2026, 3, 5, 12, 5, tzinfo=UTC)


def test_the_tick_is_the_latest_fire_time_not_after_now():
    trigger = schedule_trigger("x", IntervalTrigger(minutes=5, timezone=UTC), Settings())
    assert last_tick(trigger, datetime(2026, 3, 5, 12, 5, 0, 300, tzinfo=UTC)) == datetime(2026, 3, 5, 12, 5, tzinfo=UTC)
    assert last_tick(trigger, datetime(2026, 3, 5, 12, 9, 59, tzinfo=UTC)) == datetime(2026, 3, 5, 12, 5, tzinfo=UTC)
    daily = CronTrigger(hour=16, minute=30, timezone="Europe/Berlin")
    ran_at = datetime(2026, 3, 5, 15, 30, 2, tzinfo=UTC)  # 16:30:02 in Berlin
    assert last_tick(daily, ran_at) == datetime(2026, 3, 5, 15, 30, tzinfo=UTC)
    assert last_tick(daily, ran_at + timedelta(hours=2)) is None  # beyond the misfire grace: no tick to claim


def test_job_interval_overrides_any_schedule():
    settings = Settings(job_intervals={"ecb-rates": 7})
    trigger = schedule_trigger("ecb-rates", CronTrigger(hour=16, minute=30, timezone="Europe/Berlin"), settings)
    assert isinstance(trigger, IntervalTrigger) and trigger.interval == timedelta(seconds=7)
    assert schedule_trigger("norway-storage-check", CronTrigger(hour=7), settings).fields  # others untouched


def test_job_interval_variables():
    assert _job_intervals({"JOB_INTERVAL_NOTIFICATION_SWEEP": "60", "JOB_INTERVAL_NORWAY_CUTOFFS": " ",
                           "OTHER": "1"}) == {"notification-sweep": 60}
    for bad in ("0", "-5", "1.5", "soon"):
        with pytest.raises(ConfigError, match="JOB_INTERVAL_NOTIFICATION_SWEEP"):
            _job_intervals({"JOB_INTERVAL_NOTIFICATION_SWEEP": bad})

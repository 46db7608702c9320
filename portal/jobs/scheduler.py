"""The worker's scheduler (APScheduler 3): the outbox dispatcher every few seconds, and the periodic jobs.

`portal worker` calls `run_worker`; an embedded set-up (the web process) can call `start_scheduler`
and `shutdown(wait=True)` on the result when it stops. Several workers may run at once: the dispatcher
claims rows with `FOR UPDATE SKIP LOCKED`, and the periodic jobs (idempotent anyway) run under a
PostgreSQL advisory lock so only one worker runs each at a time; on SQLite there is one host.

Once per tick: interval triggers are aligned to a fixed epoch, so every worker's ticks fall at the same
instants, and a job's run records its tick in `kv_store` (key `job-run:<job id>`, JSON: tick, worker,
started/finished) under the advisory lock. A worker that gets the lock for a tick already recorded
skips it, so two workers started seconds apart do not both run each tick. The row doubles as the
"last run" of each job, and every run or skip is logged (`job <id>: tick <time> done in … s`).
A failed run records nothing, so the next worker's tick (or the next tick) tries again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from portal.config import Settings
from portal.models import KeyValue
from portal.outbox.dispatcher import DispatchReport, dispatch_due

log = logging.getLogger("portal.worker")

DISPATCH_INTERVAL_S = 3
DISPATCH_BATCH = 50
MAX_BATCHES_PER_RUN = 20  # keep draining a backlog within one run, but not forever


def dispatch_job(engine: Engine, settings: Settings) -> int:
    """One scheduled run: dispatch batches until the outbox has nothing due (or the run has done enough)."""
    handled = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        try:
            report: DispatchReport = dispatch_due(engine, limit=DISPATCH_BATCH, settings=settings)
        except Exception:  # the database may be briefly away; the next run tries again
            log.exception("outbox dispatch failed")
            break
        if report.claimed:
            log.info("outbox: %s", report)
        handled += report.claimed
        if report.claimed < DISPATCH_BATCH:
            break
    return handled


@contextmanager
def job_lock(engine: Engine, name: str) -> Iterator[bool]:
    """True when this process may run job `name` now: a PostgreSQL advisory lock (released at the end, or
    when the connection dies with its worker). SQLite always says True (one host, one scheduler)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"portal-job:{name}".encode()).digest()[:8], "big", signed=True)
    with engine.connect() as conn:
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


TICK_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # interval ticks are counted from here in every worker
TICK_LOOKBACK = timedelta(hours=1)  # = the jobs' misfire grace: a tick older than this is not run late
RUN_KEY = "job-run:{}"


def schedule_trigger(job_id: str, trigger, settings: Settings):
    """The trigger a worker uses: JOB_INTERVAL_<ID> if set, and interval triggers aligned to TICK_EPOCH."""
    seconds = settings.job_intervals.get(job_id)
    if seconds is None and isinstance(trigger, IntervalTrigger):
        seconds = trigger.interval.total_seconds()
    if seconds is None:
        return trigger
    return IntervalTrigger(seconds=seconds, start_date=TICK_EPOCH, timezone=timezone.utc)


def last_tick(trigger, now: datetime) -> datetime | None:
    """The trigger's latest fire time at or before `now` (None without one in the last TICK_LOOKBACK)."""
    lookback = trigger.interval if isinstance(trigger, IntervalTrigger) else TICK_LOOKBACK
    tick = trigger.get_next_fire_time(None, now - lookback)
    if tick is None or tick > now:
        return None
    while (following := trigger.get_next_fire_time(tick, tick + timedelta(microseconds=1))) is not None \
            and following <= now:
        tick = following
    return tick


def last_run(engine: Engine, name: str) -> dict | None:
    """What `job-run:<name>` says about the job's last successful run (tick, worker, started/finished)."""
    table = KeyValue.__table__
    with engine.connect() as conn:
        value = conn.execute(sa.select(table.c.value).where(table.c.key == RUN_KEY.format(name))).scalar()
    return json.loads(bytes(value)) if value is not None else None


def _record_run(engine: Engine, name: str, run: dict) -> None:
    table = KeyValue.__table__
    key = RUN_KEY.format(name)
    with engine.begin() as conn:  # only the advisory lock's holder writes this key: no race between the two
        conn.execute(sa.delete(table).where(table.c.key == key))
        conn.execute(sa.insert(table).values(key=key, value=json.dumps(run).encode(), expires_at=None))


def guarded(name: str, func: Callable[[Engine, datetime], object], engine: Engine, trigger=None) -> bool:
    """Run one periodic job under its lock, once per tick of `trigger` across all workers; False if another
    worker is running it or already ran this tick. Errors are logged."""
    try:
        with job_lock(engine, name) as mine:
            if not mine:
                log.info("job %s: another worker is running it, skipped", name)
                return False
            now = datetime.now(timezone.utc)
            tick = (last_tick(trigger, now) if trigger is not None else None) or now
            previous = last_run(engine, name)
            if trigger is not None and previous and datetime.fromisoformat(previous["tick"]) >= tick:
                log.info("job %s: tick %s already run by %s, skipped", name, tick.isoformat(), previous["worker"])
                return False
            started = time.monotonic()
            func(engine, now)
            _record_run(engine, name, {"tick": tick.isoformat(), "worker": f"{socket.gethostname()}:{os.getpid()}",
                                       "started_at": now.isoformat(),
                                       "finished_at": datetime.now(timezone.utc).isoformat()})
            log.info("job %s: tick %s done in %.2f s", name, tick.isoformat(), time.monotonic() - started)
            return True
    except Exception:
        log.exception("job %s failed; it runs again at its next time", name)
        return False


def periodic_jobs(settings: Settings) -> list[tuple[str, str, Callable, object]]:
    """(id, description, function(engine, now), trigger) for the domain jobs."""
    from portal.norway import jobs as norway
    from portal.carriers.polling import poll_job as carrier_polling
    from portal.notify.sweep import sweep as notification_sweep
    from portal.privacy import retention
    from portal.returns import expiry

    return [
        ("norway-cutoffs", "Norway collection cut-offs", norway.run_collection_cutoffs,
         IntervalTrigger(minutes=5, timezone=timezone.utc)),
        ("norway-storage-check", "Norway storage-fee check", norway.run_storage_check,
         CronTrigger(hour=7, minute=0, timezone=settings.timezone)),
        ("ecb-rates", "ECB exchange rates", norway.run_rate_fetch,
         CronTrigger(hour=16, minute=30, timezone="Europe/Berlin")),  # published around 16:00 CET
        ("notification-sweep", "time-based notification triggers", notification_sweep,
         IntervalTrigger(minutes=5, timezone=timezone.utc)),
        ("carrier-polling", "carrier tracking polling", carrier_polling,
         IntervalTrigger(minutes=15, timezone=timezone.utc)),  # only carriers with CARRIER_TRACKING_URL_<NAME>
        ("gdpr-retention", "GDPR retention: anonymise customers after RETENTION_MONTHS",
         functools.partial(retention.run_job, settings=settings),
         CronTrigger(hour=3, minute=30, timezone=settings.timezone)),
        ("return-expiry", "expire returns whose label was not used within RETURN_EXPIRY_DAYS",
         functools.partial(expiry.run_job, settings=settings),
         CronTrigger(hour=0, minute=15, timezone=settings.timezone)),  # the deadline is a local date
    ]


def start_scheduler(engine: Engine, settings: Settings, interval_s: float = DISPATCH_INTERVAL_S,
                    with_periodic: bool = True) -> BackgroundScheduler:
    """A running BackgroundScheduler: the dispatcher (first run at once) and the periodic jobs."""
    for noisy in ("apscheduler.executors.default", "apscheduler.scheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # "Running job …" every few seconds is noise
    scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(dispatch_job, "interval", seconds=interval_s, args=(engine, settings), id="outbox-dispatch",
                      name="outbox dispatcher", max_instances=1, coalesce=True, misfire_grace_time=max(int(interval_s), 1),
                      next_run_time=datetime.now(timezone.utc), replace_existing=True)
    if with_periodic:
        jobs = periodic_jobs(settings)
        unknown = set(settings.job_intervals) - {job_id for job_id, *_ in jobs}
        if unknown:
            log.warning("JOB_INTERVAL_* names no job: %s", ", ".join(sorted(unknown)))
        for job_id, description, func, trigger in jobs:
            trigger = schedule_trigger(job_id, trigger, settings)
            scheduler.add_job(guarded, trigger, args=(job_id, func, engine), kwargs={"trigger": trigger}, id=job_id,
                              name=description, max_instances=1, coalesce=True,
                              misfire_grace_time=int(TICK_LOOKBACK.total_seconds()), replace_existing=True)
    scheduler.start()
    return scheduler


def run_worker(engine: Engine, settings: Settings, interval_s: float = DISPATCH_INTERVAL_S,
               stop: threading.Event | None = None, install_signal_handlers: bool = True) -> None:
    """Run the jobs until SIGTERM/SIGINT (or `stop` is set); a send in progress finishes before we exit."""
    stop = stop or threading.Event()
    if install_signal_handlers and threading.current_thread() is threading.main_thread():
        def _on_signal(signum, _frame):
            log.info("worker: %s received, stopping after the current run", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    scheduler = start_scheduler(engine, settings, interval_s)
    for job in scheduler.get_jobs():
        log.info("job %s: %s, next run %s", job.id, job.trigger, job.next_run_time)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        log.info("worker: stopped")

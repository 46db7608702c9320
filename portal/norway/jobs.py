"""Plain functions for the scheduler (portal/jobs registers them). Each is idempotent and takes `now`.

    run_collection_cutoffs(engine, now)  every few minutes, or at each cut-off: creates the cut-off's
                                         collection once, freezes its manifest, alerts staff
    run_storage_check(engine, now)       daily: one alert per overdue return per day
    run_rate_fetch(engine, now)          daily after 16:00 CET: stores the ECB table (ECB_RATES_URL)

Each runs in its own transaction; an exception rolls everything back, so a retry starts clean.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine

from portal.db import session_scope
from portal.norway import collections, rates, storage_check

log = logging.getLogger("portal.norway.jobs")


def _base_url() -> str:
    try:
        from portal.config import get_settings

        return get_settings().base_url
    except Exception:  # links in alerts are a convenience; never fail the job over them
        return ""


def run_collection_cutoffs(engine: Engine, now: datetime) -> collections.CutoffOutcome:
    with session_scope(engine) as session:
        outcome = collections.create_collection_at_cutoff(session, now, _base_url())
        reference = outcome.collection.reference if outcome.collection else None
    log.info("cut-off job at %s: %s", now.isoformat(), reference if outcome.created else outcome.reason)
    return outcome


def run_storage_check(engine: Engine, now: datetime) -> storage_check.StorageCheckResult:
    with session_scope(engine) as session:
        result = storage_check.run_storage_check(session, now, _base_url())
    log.info("storage check at %s: %d overdue, %d alerts queued", now.isoformat(), len(result.overdue), result.alerts_queued)
    return result


def run_rate_fetch(engine: Engine, now: datetime) -> rates.FetchResult:
    """Raises customs.rates.RateError (with the reason) when the download or the file is bad."""
    with session_scope(engine) as session:
        result = rates.fetch_and_store(session, now)
    log.info("rates from %s for %s: %d currencies, %d changed", result.url, result.rate_date, result.currencies, result.changed)
    return result

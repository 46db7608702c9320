"""poll_tracking: ask a carrier's tracking API (httpx) about returns that have a tracking number and have not arrived.

The API is expected at ``GET {base_url}/tracking/{tracking_number}`` answering
``{"events": [{"event_id": "...", "code": "...", "occurred_at": "ISO 8601"}, ...]}``.
Each request has a timeout; timeouts, connection errors, 429 and 5xx are retried with exponential
back-off; malformed answers are reported and skipped; a token bucket keeps to the carrier's rate limit.
Every tracking number is applied in its own transaction, so one bad answer never loses the others.

Scheduling (APScheduler, in portal/jobs/): e.g. every 15 minutes
``poll_tracking(engine, utcnow(), httpx.Client(), os.environ["CARRIER_TRACKING_URL_POSTNORD"])``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from portal.carriers import service
from portal.carriers.adapters import adapter_for
from portal.models import Return

log = logging.getLogger("portal.carriers.polling")
OPEN_STATES = ("label_issued", "dropped_off", "in_transit", "at_consolidation")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class TokenBucket:
    """At most `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self.tokens = float(burst)
        self.last = clock()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        with self.lock:
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                self.sleep((1 - self.tokens) / self.rate)


_BUCKETS: dict[str, TokenBucket] = {}


def bucket_for(carrier: str, rate: float) -> TokenBucket:
    """One bucket per carrier, shared by every poll in this process."""
    found = _BUCKETS.get(carrier)
    if found is None or found.rate != rate:
        found = _BUCKETS[carrier] = TokenBucket(rate)
    return found


@dataclass
class PollResult:
    checked: int = 0
    applied: int = 0
    duplicates: int = 0
    moved: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


class TrackingError(RuntimeError):
    pass


def fetch_events(client: httpx.Client, url: str, *, timeout: float, retries: int, backoff_s: float,
                 bucket: TokenBucket, sleep: Callable[[float], None]) -> list[dict]:
    """The events for one tracking number; raises TrackingError after the retries are used up."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        bucket.acquire()
        try:
            response = client.get(url, timeout=timeout, headers={"Accept": "application/json"})
        except httpx.TimeoutException:
            last = "timed out"
            continue
        except httpx.TransportError as exc:
            last = f"connection failed: {exc.__class__.__name__}"
            continue
        if response.status_code in RETRY_STATUSES:
            last = f"HTTP {response.status_code}"
            continue
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise TrackingError(f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise TrackingError("malformed JSON") from None
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            raise TrackingError("the answer has no events list")
        return events
    raise TrackingError(f"gave up after {retries + 1} attempts: {last}")


def _parse(item) -> tuple[str, str, datetime] | None:
    if not isinstance(item, dict):
        return None
    event_id, code, occurred = item.get("event_id"), item.get("code"), item.get("occurred_at")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 120 and isinstance(code, str) and 0 < len(code) <= 40
            and isinstance(occurred, str)):
        return None
    try:
        at = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
    except ValueError:
        return None
    return event_id, code, at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def tracking_numbers_to_poll(engine: Engine, limit: int = 500) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(select(Return.tracking_number).where(Return.tracking_number.is_not(None),
                                                                 Return.status.in_(OPEN_STATES))
                            .order_by(Return.updated_at).limit(limit)).all()
    return list(dict.fromkeys(r for r in rows if r))


def poll_tracking(engine: Engine, now: datetime, client: httpx.Client, base_url: str, *, carrier: str = "postnord",
                  timeout: float = 5.0, retries: int = 3, backoff_s: float = 0.5, rate_per_s: float = 5.0,
                  sleep: Callable[[float], None] = time.sleep, limit: int = 500) -> PollResult:
    """One polling round; safe to run often (events are idempotent on their id)."""
    if adapter_for(carrier) is None:
        raise ValueError(f"no adapter for carrier {carrier!r}")
    bucket = bucket_for(carrier, rate_per_s)
    result = PollResult()
    for tracking in tracking_numbers_to_poll(engine, limit):
        result.checked += 1
        url = f"{base_url.rstrip('/')}/tracking/{quote(tracking, safe='')}"
        try:
            events = fetch_events(client, url, timeout=timeout, retries=retries, backoff_s=backoff_s, bucket=bucket, sleep=sleep)
        except TrackingError as exc:
            log.warning("tracking %s at %s: %s", tracking, carrier, exc)
            result.failures.append((tracking, str(exc)))
            continue
        parsed = []
        for item in events:
            fields = _parse(item)
            if fields is None:
                result.failures.append((tracking, "an event without event_id, code or occurred_at"))
            else:
                parsed.append((fields, item))
        parsed.sort(key=lambda p: p[0][2])  # oldest first, so the state moves in the order things happened
        with Session(engine) as session:
            for (event_id, code, occurred), item in parsed:
                applied = service.apply_carrier_event(session, carrier, event_id, tracking, code, occurred,
                                                      dict(item, polled_at=now.isoformat()))
                result.applied += not applied.duplicate
                result.duplicates += applied.duplicate
                result.moved += applied.moved
            session.commit()
    return result


TRACKING_URL_ENV_PREFIX = "CARRIER_TRACKING_URL_"


def poll_job(engine: Engine, now: datetime) -> dict[str, PollResult]:
    """The scheduled job (signature of portal.jobs.scheduler's periodic jobs): poll every carrier that has
    CARRIER_TRACKING_URL_<CARRIER> set; rate from CARRIER_RATE_PER_S_<CARRIER> (default 5 per second)."""
    import os

    from portal.carriers.adapters import REGISTRY

    results = {}
    for carrier in REGISTRY:
        suffix = carrier.upper().replace("-", "_")
        base_url = os.environ.get(TRACKING_URL_ENV_PREFIX + suffix, "").strip()
        if not base_url:
            continue
        rate = float(os.environ.get(f"CARRIER_RATE_PER_S_{suffix}", "5") or 5)
        with httpx.Client() as client:
            results[carrier] = poll_tracking(engine, now, client, base_url, carrier=carrier, rate_per_s=rate)
        log.info("carrier polling %s: %s", carrier, results[carrier])
    return results

"""Send what the outbox holds: claim due rows, send them outside any transaction, record the outcome.

Claiming is one statement, `UPDATE … SET state='sending' … WHERE id IN (SELECT … LIMIT n) RETURNING`,
with `FOR UPDATE SKIP LOCKED` in the sub-select on PostgreSQL, so several workers never claim one row;
SQLite has a single writer, which gives the same guarantee. A claim is a lease: `next_attempt_at` moves
to now + LEASE_S, and a row whose worker died mid-send is claimed again once the lease has run out.
Claiming counts the attempt (`attempts + 1`), so a message that keeps crashing its worker still ends up
in the dead letter. The attempt number is also the fencing token when the outcome is written: a worker
that lost its lease cannot overwrite the outcome of the worker that took over.

Delivery is at least once: a crash between sending and recording sends again after the lease. Receivers
deduplicate on `X-Portal-Delivery` (webhooks) or the stable `Message-ID` (e-mail).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from portal.config import Settings, get_settings
from portal.models import MerchantPolicy, OutboxMessage, WebhookEndpoint, utcnow
from portal.outbox import channels
from portal.outbox.channels import DeliveryError

log = logging.getLogger("portal.outbox")

LEASE_S = 60
MAX_ATTEMPTS = 8
BASE_BACKOFF_S = 30
MAX_BACKOFF_S = 3600
LEASE_MARGIN_S = 5
SENDABLE_CHANNELS = ("webhook", "email")  # SMS rows wait for an SMS sender; they are not claimed here
CLAIMABLE_STATES = ("pending", "failed", "sending")  # "sending" only once its lease has run out


def backoff_delay(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` failed tries: 30 s · 2^(attempts-1), capped at 1 h,
    with "full-ish" jitter (75–100 % of that) so a burst of failures does not retry in lock-step."""
    base = min(BASE_BACKOFF_S * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)
    return base * (0.75 + 0.25 * rand())


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int  # after this claim; also the fencing token
    channel: str
    destination: str
    event_type: str
    idempotency_key: str
    payload: dict
    endpoint_id: int | None
    endpoint_url: str | None
    endpoint_secret: str | None
    endpoint_active: bool | None


@dataclass
class Outcome:
    message_id: int
    channel: str
    destination: str
    result: str  # sent | retry | dead | released | lost
    error: str = ""
    next_attempt_at: datetime | None = None


@dataclass
class DispatchReport:
    claimed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    @property
    def sent(self) -> int:
        return self.count("sent")

    @property
    def retried(self) -> int:
        return self.count("retry")

    @property
    def dead(self) -> int:
        return self.count("dead")

    @property
    def released(self) -> int:
        return self.count("released")

    def __str__(self) -> str:
        return (f"claimed {self.claimed}: {self.sent} sent, {self.retried} to retry, {self.dead} dead"
                + (f", {self.released} released" if self.released else ""))


# --- Claiming ------------------------------------------------------------------------------


def claim_due(engine: Engine, now: datetime, limit: int = 50, lease_s: int = LEASE_S,
              channel_names: Sequence[str] = SENDABLE_CHANNELS) -> list[Claimed]:
    """Mark up to `limit` due rows as ours ("sending", leased until now + lease_s) and load them."""
    table = OutboxMessage.__table__
    due = (
        sa.select(table.c.id)
        .where(table.c.state.in_(CLAIMABLE_STATES), table.c.next_attempt_at <= now, table.c.channel.in_(channel_names))
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    if engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claim = (
        sa.update(table)
        .where(table.c.id.in_(due), table.c.state.in_(CLAIMABLE_STATES), table.c.next_attempt_at <= now)
        .values(state="sending", attempts=table.c.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
        .returning(table.c.id, table.c.attempts)
    )
    endpoints = WebhookEndpoint.__table__
    with engine.begin() as conn:
        fences = dict(conn.execute(claim).all())
        if not fences:
            return []
        rows = conn.execute(
            sa.select(table, endpoints.c.url.label("ep_url"), endpoints.c.secret.label("ep_secret"),
                      endpoints.c.active.label("ep_active"))
            .select_from(table.outerjoin(endpoints, table.c.endpoint_id == endpoints.c.id))
            .where(table.c.id.in_(list(fences)))
            .order_by(table.c.next_attempt_at, table.c.id)
        ).mappings().all()
    return [
        Claimed(id=r["id"], attempts=fences[r["id"]], channel=r["channel"], destination=r["destination"],
                event_type=r["event_type"], idempotency_key=r["idempotency_key"], payload=r["payload"] or {},
                endpoint_id=r["endpoint_id"], endpoint_url=r["ep_url"], endpoint_secret=r["ep_secret"],
                endpoint_active=r["ep_active"])
        for r in rows
    ]


def _finish(engine: Engine, claimed: Claimed, **values) -> bool:
    """Write the outcome if the row is still ours (same state and attempt number); False if the lease was lost."""
    table = OutboxMessage.__table__
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(table)
            .where(table.c.id == claimed.id, table.c.state == "sending", table.c.attempts == claimed.attempts)
            .values(**values)
        )
    return result.rowcount == 1


# --- Sending -------------------------------------------------------------------------------


class _Senders:
    """What one dispatch run needs to send: one HTTP client (connection reuse), the SMTP target or mail folder."""

    def __init__(self, engine: Engine, settings: Settings, webhook_timeout_s: float, smtp_timeout_s: float):
        self.engine = engine
        self.settings = settings
        self.webhook_timeout_s = webhook_timeout_s
        self.smtp_timeout_s = smtp_timeout_s
        self.mail_host = urlsplit(settings.base_url).hostname or "localhost"
        self._http: httpx.Client | None = None
        self._sender: str | None = None

    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.webhook_timeout_s, follow_redirects=False,
                                      headers={"User-Agent": channels.USER_AGENT})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def budget_s(self, claimed: Claimed) -> float:
        return (self.webhook_timeout_s if claimed.channel == "webhook" else self.smtp_timeout_s) + LEASE_MARGIN_S

    def default_sender(self) -> str:
        if self._sender is None:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(MerchantPolicy.__table__.c.merchant_name,
                                             MerchantPolicy.__table__.c.support_email)
                                   .order_by(MerchantPolicy.__table__.c.id).limit(1)).first()
            name, address = row if row else ("Returns", f"no-reply@{self.mail_host}")
            self._sender = channels.default_sender(name, address)
        return self._sender

    def send(self, claimed: Claimed) -> str:
        """Deliver one message; a short description of where it went, or DeliveryError."""
        if claimed.channel == "webhook":
            return self._webhook(claimed)
        if claimed.channel == "email":
            return self._email(claimed)
        raise DeliveryError(f"no sender for channel {claimed.channel!r}", permanent=True)

    def _webhook(self, claimed: Claimed) -> str:
        if claimed.endpoint_id is not None and claimed.endpoint_url is None:
            raise DeliveryError(f"webhook endpoint #{claimed.endpoint_id} no longer exists", permanent=True)
        if claimed.endpoint_active is False:
            raise DeliveryError(f"webhook endpoint #{claimed.endpoint_id} is deactivated", permanent=True)
        url = claimed.endpoint_url or claimed.destination
        status = channels.send_webhook(self.http(), url, claimed.endpoint_secret or "", claimed.payload,
                                       claimed.event_type, claimed.idempotency_key, self.webhook_timeout_s)
        return f"{url} (HTTP {status})"

    def message_id(self, claimed: Claimed) -> str:
        return f"<outbox-{claimed.id}@{self.mail_host}>"

    def _email(self, claimed: Claimed) -> str:
        msg = channels.email_from_payload(claimed.payload, message_id=self.message_id(claimed), to=claimed.destination,
                                          default_sender=self.default_sender(), delivery_id=claimed.idempotency_key)
        if not self.settings.smtp_url:
            path = channels.write_mail_file(self.settings.mail_dir, f"outbox-{claimed.id}", msg)
            return f"{claimed.destination} (written to {path})"
        try:
            target = channels.parse_smtp_url(self.settings.smtp_url)
        except ValueError as exc:  # the configuration is wrong, not the message: keep it for later
            raise DeliveryError(str(exc), permanent=False) from None
        channels.send_smtp(target, msg, self.smtp_timeout_s, local_hostname=self.mail_host)
        return f"{claimed.destination} (via {target.host}:{target.port})"


def dispatch_due(engine: Engine, now: datetime | None = None, limit: int = 50, *, settings: Settings | None = None,
                 webhook_timeout_s: float = channels.WEBHOOK_TIMEOUT_S, smtp_timeout_s: float = channels.SMTP_TIMEOUT_S,
                 lease_s: int = LEASE_S) -> DispatchReport:
    """Claim the due messages, send each, record sent / retry with backoff / dead. Safe to run in many workers."""
    now = now or utcnow()
    settings = settings or get_settings()
    claimed = claim_due(engine, now, limit, lease_s)
    report = DispatchReport(claimed=len(claimed))
    if not claimed:
        return report
    senders = _Senders(engine, settings, webhook_timeout_s, smtp_timeout_s)
    started = time.monotonic()
    try:
        for item in claimed:
            if time.monotonic() - started + senders.budget_s(item) > lease_s:
                report.outcomes.append(_release(engine, item, now))
                continue
            report.outcomes.append(_deliver(engine, senders, item, now))
    finally:
        senders.close()
    return report


def _deliver(engine: Engine, senders: _Senders, item: Claimed, now: datetime) -> Outcome:
    outcome = Outcome(item.id, item.channel, item.destination, "sent")
    try:
        where = senders.send(item)
    except DeliveryError as exc:
        outcome.error = str(exc)
        if exc.permanent or item.attempts >= MAX_ATTEMPTS:
            outcome.result = "dead"
            reason = "permanent failure" if exc.permanent else f"gave up after {item.attempts} attempts"
            written = _finish(engine, item, state="dead", last_error=outcome.error[:1000])
            log.warning("outbox #%s %s %s → dead letter (%s): %s", item.id, item.channel, item.event_type,
                        reason, outcome.error)
        else:
            outcome.result = "retry"
            delay = backoff_delay(item.attempts)
            if exc.retry_after_s:
                delay = max(delay, min(exc.retry_after_s, MAX_BACKOFF_S))
            outcome.next_attempt_at = now + timedelta(seconds=delay)
            written = _finish(engine, item, state="failed", last_error=outcome.error[:1000],
                              next_attempt_at=outcome.next_attempt_at)
            log.info("outbox #%s %s %s failed (attempt %s of %s), retry in %.0f s: %s", item.id, item.channel,
                     item.event_type, item.attempts, MAX_ATTEMPTS, delay, outcome.error)
    except Exception as exc:  # a bug in a sender must not lose the row: count the attempt and retry later
        log.exception("outbox #%s: unexpected error while sending", item.id)
        outcome.error = f"internal error: {type(exc).__name__}: {exc}"[:1000]
        if item.attempts >= MAX_ATTEMPTS:
            outcome.result = "dead"
            written = _finish(engine, item, state="dead", last_error=outcome.error)
        else:
            outcome.result = "retry"
            outcome.next_attempt_at = now + timedelta(seconds=backoff_delay(item.attempts))
            written = _finish(engine, item, state="failed", last_error=outcome.error,
                              next_attempt_at=outcome.next_attempt_at)
    else:
        written = _finish(engine, item, state="sent", sent_at=utcnow(), last_error="")
        log.info("outbox #%s %s %s sent to %s", item.id, item.channel, item.event_type, where)
    if not written:
        log.warning("outbox #%s: lease lost before the outcome (%s) was recorded; another worker has it",
                    item.id, outcome.result)
        outcome.result = "lost"
    return outcome


def _release(engine: Engine, item: Claimed, now: datetime) -> Outcome:
    """Give back a claimed row we no longer have time to send within the lease (not counted as an attempt)."""
    _finish(engine, item, state="pending" if item.attempts <= 1 else "failed", attempts=item.attempts - 1,
            next_attempt_at=now)
    return Outcome(item.id, item.channel, item.destination, "released")

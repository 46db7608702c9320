"""Send what the outbox holds: claim due rows, send them outside any transaction, record the outcome.

Claiming is one statement, `UPDATE … SET state='sending' … WHERE id IN (SELECT … LIMIT n) RETURNING`,
with `FOR UPDATE SKIP LOCKED` in the sub-select on PostgreSQL, so several workers never claim one row;
SQLite has a single writer, which gives the same guarantee. A claim is a lease: `next_attempt_at` moves
to now + LEASE_S, and a row whose worker died mid-send is claimed again once the lease has run out.
Claiming counts the attempt (`attempts + 1`), so a message that keeps crashing its worker still ends up
in the dead letter. The attempt number is also the fencing token when the outcome is written: a worker
that lost its lease cannot overwrite the outcome of the worker that took over.

Delivery semantics after a crash between sending and recording the outcome:

- webhooks and e-mail: at least once. The row is sent again after the lease, with the same
  `X-Portal-Delivery` (webhooks) or the same `Message-ID` (e-mail), so the receiver can drop the copy:
  "exactly once" for e-mail means exactly once per Message-ID at the receiving side. Only the message in
  flight can be repeated: each outcome is committed before the receiver can accept the next message
  (the commit runs in a helper thread during the next message's SMTP MAIL/RCPT, and the sender waits
  for it before DATA; see _Recorder). Outcomes are therefore not batched into one transaction per claim:
  that would make every sent-but-unrecorded message of the batch go twice after a crash.
- SMS: never twice. A phone cannot deduplicate, and neither 46elks nor Twilio honours an idempotency key,
  so a "sending" DeliveryEvent is committed (fenced by the attempt number) before the provider is called.
  A claimed SMS row whose last marker is "sending" with no outcome was interrupted mid-send: whether it
  left is unknown, so it goes to the dead letter ("outcome unknown") instead of being sent again; staff
  can check the provider's log and retry it by hand. The `Idempotency-Key` header carries the outbox
  key for providers (or proxies) that do honour it.

SMS also has quiet hours in the recipient's time zone (default 21:00–08:00, from the number's country
code, falling back to TIMEZONE): a row due then is deferred to the end of the quiet hours, not counted as
an attempt. Every channel can be throttled with NOTIFY_THROTTLE_<CHANNEL>="X/Y": after X sends in a run,
pause Y seconds. E-mail and SMS outcomes are written as DeliveryEvent rows and, for a row about a return,
as a staff-only ReturnEvent (notification.sent / .deferred / .failed) in the same transaction.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait as futures_wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portal.config import Settings, get_settings
from portal.models import DeliveryEvent, MerchantPolicy, OutboxMessage, ReturnEvent, WebhookEndpoint, utcnow
from portal.notify import unsubscribe
from portal.outbox import channels
from portal.outbox.channels import DeliveryError

log = logging.getLogger("portal.outbox")

LEASE_S = 60
MAX_ATTEMPTS = 8
BASE_BACKOFF_S = 30
MAX_BACKOFF_S = 3600
LEASE_MARGIN_S = 5
SENDABLE_CHANNELS = ("webhook", "email", "sms")  # sms only while an SMS provider is configured
NOTIFY_CHANNELS = ("email", "sms")  # channels whose decisions go to the delivery log and the timeline
CLAIMABLE_STATES = ("pending", "failed", "sending")  # "sending" only once its lease has run out
QUIET_HOURS = (dtime(21, 0), dtime(8, 0))  # SMS quiet hours, recipient's local time; NOTIFY_QUIET_HOURS="21:00-08:00"
UNKNOWN_OUTCOME = "outcome unknown: the worker stopped while this SMS was being sent; not sent again " \
                  "(check the provider's log, then retry by hand if it did not arrive)"


def backoff_delay(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` failed tries: 30 s · 2^(attempts-1), capped at 1 h,
    with "full-ish" jitter (75–100 % of that) so a burst of failures does not retry in lock-step."""
    base = min(BASE_BACKOFF_S * 2 ** max(attempts - 1, 0), MAX_BACKOFF_S)
    return base * (0.75 + 0.25 * rand())


# --- Quiet hours and throttling ------------------------------------------------------------


def parse_quiet_hours(value: str | None) -> tuple[dtime, dtime]:
    """"21:00-08:00" → (21:00, 08:00); empty or malformed → the default."""
    try:
        start, end = (value or "").split("-")
        return dtime.fromisoformat(start.strip()), dtime.fromisoformat(end.strip())
    except ValueError:
        return QUIET_HOURS


@lru_cache(maxsize=4096)
def recipient_zones(number: str, fallback: str) -> tuple[str, ...]:
    """The IANA zones of an E.164 number's region (phonenumbers), or the merchant's zone."""
    import phonenumbers
    from phonenumbers import timezone as pn_timezone

    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        zones = ()
    known = []
    for zone in zones:
        try:
            ZoneInfo(zone)
            known.append(zone)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return tuple(known) or (fallback,)


def quiet_until(now: datetime, zones: Sequence[str], quiet: tuple[dtime, dtime] = QUIET_HOURS) -> datetime | None:
    """If `now` falls in the quiet hours in any of the recipient's zones, the UTC time they end; else None."""
    start, end = quiet
    if start == end:
        return None
    latest: datetime | None = None
    for zone in zones:
        tz = ZoneInfo(zone)
        local = now.astimezone(tz)
        t = local.timetz().replace(tzinfo=None)
        if start < end:
            inside = start <= t < end
            end_day = local.date()
        else:  # over midnight: 21:00–08:00
            inside = t >= start or t < end
            end_day = local.date() + timedelta(days=1) if t >= start else local.date()
        if inside:
            until = datetime.combine(end_day, end, tzinfo=tz).astimezone(timezone.utc)
            latest = until if latest is None else max(latest, until)
    return latest


def parse_throttle(value: str | None) -> tuple[int, float] | None:
    """"100/5" → send 100, then pause 5 s. Empty or malformed → no throttle."""
    try:
        count, pause = (value or "").split("/")
        n, p = int(count), float(pause)
    except ValueError:
        return None
    return (n, p) if n > 0 and p >= 0 else None


class Throttle:
    """Per channel: after X sends, sleep Y seconds before the next one. `sleep` is injectable for tests."""

    def __init__(self, limits: dict[str, tuple[int, float]], sleep: Callable[[float], None] = time.sleep):
        self.limits = limits
        self.sleep = sleep
        self.sent: dict[str, int] = {}
        self.pauses: list[tuple[str, float]] = []

    @classmethod
    def from_env(cls, sleep: Callable[[float], None] = time.sleep, environ=None) -> "Throttle":
        env = os.environ if environ is None else environ
        limits = {}
        for name in SENDABLE_CHANNELS:
            limit = parse_throttle(env.get(f"NOTIFY_THROTTLE_{name.upper()}"))
            if limit:
                limits[name] = limit
        return cls(limits, sleep)

    def pause_due(self, channel: str) -> float:
        """The pause the next send on `channel` will start with (0 if none)."""
        limit = self.limits.get(channel)
        return limit[1] if limit and self.sent.get(channel, 0) >= limit[0] else 0.0

    def before_send(self, channel: str) -> None:
        limit = self.limits.get(channel)
        if not limit:
            return
        if self.sent.get(channel, 0) >= limit[0]:
            self.pauses.append((channel, limit[1]))
            self.sleep(limit[1])
            self.sent[channel] = 0
        self.sent[channel] = self.sent.get(channel, 0) + 1


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
    return_id: int | None = None


@dataclass
class Outcome:
    message_id: int
    channel: str
    destination: str
    result: str  # sent | retry | dead | released | lost | deferred
    error: str = ""
    next_attempt_at: datetime | None = None
    provider_message_id: str | None = None


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

    @property
    def deferred(self) -> int:
        return self.count("deferred")

    def __str__(self) -> str:
        return (f"claimed {self.claimed}: {self.sent} sent, {self.retried} to retry, {self.dead} dead"
                + (f", {self.deferred} deferred" if self.deferred else "")
                + (f", {self.released} released" if self.released else ""))


# --- Claiming ------------------------------------------------------------------------------


def due_ids(dialect: str, now: datetime, limit: int, channel_names: Sequence[str]) -> sa.Select:
    """The ids of up to `limit` due rows, oldest first, locked (skipping locked ones) on PostgreSQL."""
    table = OutboxMessage.__table__
    channel = table.c.channel
    if dialect == "sqlite":
        # SQLite's planner would take the channel index: every row of those channels ever sent, then a sort.
        # The state index reads only the unsent rows; a unary "+" keeps the planner off the channel index.
        channel = sa.literal_column(f"+{table.name}.channel", sa.String)
    due = (
        sa.select(table.c.id)
        .where(table.c.state.in_(CLAIMABLE_STATES), table.c.next_attempt_at <= now, channel.in_(channel_names))
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    return due.with_for_update(skip_locked=True) if dialect == "postgresql" else due


def claim_due(engine: Engine, now: datetime, limit: int = 50, lease_s: int = LEASE_S,
              channel_names: Sequence[str] = SENDABLE_CHANNELS) -> list[Claimed]:
    """Mark up to `limit` due rows as ours ("sending", leased until now + lease_s) and load them."""
    table = OutboxMessage.__table__
    due = due_ids(engine.dialect.name, now, limit, channel_names)
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
                endpoint_active=r["ep_active"], return_id=r["return_id"])
        for r in rows
    ]


@contextmanager
def _transaction(db: Engine | Connection) -> Iterator[Connection]:
    """A transaction on `db`: a connection of its own from an engine, or the run's one connection
    (dispatch_due keeps one for the whole batch, so each outcome costs its statements and a commit, no pool
    round trip). Every statement on that connection runs inside one of these, so none is left open."""
    if isinstance(db, Engine):
        with db.begin() as conn:
            yield conn
    else:
        with db.begin():
            yield db


@lru_cache(maxsize=16)
def _fenced_update(columns: tuple[str, ...]) -> sa.Update:
    """`UPDATE outbox_message SET <columns> WHERE id = :row_id AND state = 'sending' AND attempts = :fence`,
    built once per set of columns: building and cache-keying a statement per message cost more than running it."""
    table = OutboxMessage.__table__
    return (sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"), table.c.state == "sending",
                   table.c.attempts == sa.bindparam("fence"))
            .values({name: sa.bindparam(f"new_{name}") for name in columns}))


# E-mail and webhook outcomes commit without waiting for PostgreSQL's WAL flush (as SQLite's WAL with
# synchronous=NORMAL does): the commit is visible, and survives a worker crash, at once; only a crash of the
# database server itself could forget the last moment's outcomes, and those messages then go again with the
# same Message-ID / X-Portal-Delivery, which the at-least-once promise above allows. SMS markers and outcomes
# keep the full wait: "never twice" depends on them.
REPEATABLE_CHANNELS = ("email", "webhook")
_NO_FLUSH_WAIT = sa.text("SET LOCAL synchronous_commit = off")
_INSERT_DELIVERY_EVENT = sa.insert(DeliveryEvent.__table__)
_INSERT_RETURN_EVENT = sa.insert(ReturnEvent.__table__)


def _finish(db: Engine | Connection, claimed: Claimed, *, log_kind: str | None = None, detail: dict | None = None,
            provider_message_id: str | None = None, timeline: str | None = None, **values) -> bool:
    """Write the outcome if the row is still ours (same state and attempt number); False if the lease was lost.
    For notification channels the DeliveryEvent (`log_kind`) and the staff-only ReturnEvent (`timeline`)
    are written in the same transaction, and only if the outcome was."""
    columns = tuple(sorted(values))
    params = {"row_id": claimed.id, "fence": claimed.attempts, **{f"new_{name}": values[name] for name in columns}}
    with _transaction(db) as conn:
        if claimed.channel in REPEATABLE_CHANNELS and conn.dialect.name == "postgresql":
            conn.execute(_NO_FLUSH_WAIT)
        result = conn.execute(_fenced_update(columns), params)
        if result.rowcount == 1 and log_kind and claimed.channel in NOTIFY_CHANNELS:
            _record(conn, claimed, log_kind, detail or {}, provider_message_id, timeline)
    return result.rowcount == 1


def _record(conn: Connection, claimed: Claimed, kind: str, detail: dict, provider_message_id: str | None,
            timeline: str | None) -> None:
    at = utcnow()
    detail = dict(detail, channel=claimed.channel, attempt=claimed.attempts)
    conn.execute(_INSERT_DELIVERY_EVENT, {"outbox_id": claimed.id, "return_id": claimed.return_id, "at": at,
                                          "kind": kind, "provider_message_id": provider_message_id, "detail": detail})
    if timeline and claimed.return_id is not None:
        conn.execute(_INSERT_RETURN_EVENT, {
            "return_id": claimed.return_id, "type": timeline, "at": at, "actor": "system",
            "data": dict(detail, outbox_id=claimed.id, event=claimed.event_type, destination=claimed.destination,
                         **({"provider_message_id": provider_message_id} if provider_message_id else {}))})


def _mark_sending(db: Engine | Connection, claimed: Claimed) -> bool:
    """Commit the "sending" marker before an SMS leaves (fenced: only while the row is ours)."""
    table = OutboxMessage.__table__
    with _transaction(db) as conn:
        mine = conn.execute(sa.select(table.c.id).where(
            table.c.id == claimed.id, table.c.state == "sending", table.c.attempts == claimed.attempts)).first()
        if mine is None:
            return False
        _record(conn, claimed, "sending", {}, None, None)
    return True


def _interrupted(db: Engine | Connection, claimed: Claimed) -> bool:
    """True if this SMS row's last marker is "sending": an earlier attempt died between send and record."""
    events = DeliveryEvent.__table__
    with _transaction(db) as conn:
        last = conn.execute(
            sa.select(events.c.kind).where(events.c.outbox_id == claimed.id,
                                           events.c.kind.in_(("sending", "sent", "failed", "dead")))
            .order_by(events.c.id.desc()).limit(1)).scalar()
    return last == "sending"


# --- Sending -------------------------------------------------------------------------------


class _Senders:
    """What one dispatch run needs to send: one HTTP client (connection reuse), one SMTP connection,
    the mail folder, the SMS provider."""

    def __init__(self, engine: Engine, settings: Settings, webhook_timeout_s: float, smtp_timeout_s: float,
                 sms_config=None):
        self.engine = engine
        self.settings = settings
        self.webhook_timeout_s = webhook_timeout_s
        self.smtp_timeout_s = smtp_timeout_s
        self.mail_host = urlsplit(settings.base_url).hostname or "localhost"
        self.sms_config = sms_config
        self._http: httpx.Client | None = None
        self._sender: tuple[str, str] | None = None
        self._smtp: channels.SmtpConnection | None = None

    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.webhook_timeout_s, follow_redirects=False,
                                      headers={"User-Agent": channels.USER_AGENT})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._smtp is not None:
            self._smtp.close()

    def budget_s(self, claimed: Claimed) -> float:
        return (self.smtp_timeout_s if claimed.channel == "email" else self.webhook_timeout_s) + LEASE_MARGIN_S

    def sender(self) -> tuple[str, str]:
        """The merchant's (name, address) for the From header, read once per run."""
        if self._sender is None:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(MerchantPolicy.__table__.c.merchant_name,
                                             MerchantPolicy.__table__.c.support_email)
                                   .order_by(MerchantPolicy.__table__.c.id).limit(1)).first()
            self._sender = (row[0], row[1]) if row else ("Returns", f"no-reply@{self.mail_host}")
        return self._sender

    def list_unsubscribe(self, claimed: Claimed) -> dict[str, str] | None:
        """RFC 8058 one-click unsubscribe headers for marketing mail to a customer; None for service mail."""
        payload = claimed.payload
        customer_id = payload.get("customer_id")
        if payload.get("marketing") is not True or type(customer_id) is not int:
            return None
        url = unsubscribe.unsubscribe_url(self.settings.base_url, self.settings.secret_key, customer_id, "email")
        return channels.list_unsubscribe_headers(url, self.sender()[1])

    def send(self, claimed: Claimed, before_accept: Callable[[], None] = lambda: None) -> tuple[str, str | None]:
        """Deliver one message; where it went and the provider's message id (SMS), or DeliveryError.
        `before_accept` runs right before the receiver can take the message (see _Recorder)."""
        if claimed.channel == "webhook":
            return self._webhook(claimed, before_accept), None
        if claimed.channel == "email":
            return self._email(claimed, before_accept), None
        if claimed.channel == "sms":
            before_accept()
            return self._sms(claimed)
        raise DeliveryError(f"no sender for channel {claimed.channel!r}", permanent=True)

    def _webhook(self, claimed: Claimed, before_accept: Callable[[], None]) -> str:
        if claimed.endpoint_id is not None and claimed.endpoint_url is None:
            raise DeliveryError(f"webhook endpoint #{claimed.endpoint_id} no longer exists", permanent=True)
        if claimed.endpoint_active is False:
            raise DeliveryError(f"webhook endpoint #{claimed.endpoint_id} is deactivated", permanent=True)
        url = claimed.endpoint_url or claimed.destination
        before_accept()
        status = channels.send_webhook(self.http(), url, claimed.endpoint_secret or "", claimed.payload,
                                       claimed.event_type, claimed.idempotency_key, self.webhook_timeout_s)
        return f"{url} (HTTP {status})"

    def message_id(self, claimed: Claimed) -> str:
        return f"<outbox-{claimed.id}@{self.mail_host}>"

    def _email(self, claimed: Claimed, before_accept: Callable[[], None]) -> str:
        msg = channels.email_from_payload(claimed.payload, message_id=self.message_id(claimed), to=claimed.destination,
                                          sender=self.sender(), delivery_id=claimed.idempotency_key,
                                          list_unsubscribe=self.list_unsubscribe(claimed))
        if not self.settings.smtp_url:
            before_accept()
            path = channels.write_mail_file(self.settings.mail_dir, f"outbox-{claimed.id}", msg)
            return f"{claimed.destination} (written to {path})"
        if self._smtp is None:
            try:
                target = channels.parse_smtp_url(self.settings.smtp_url)
            except ValueError as exc:  # the configuration is wrong, not the message: keep it for later
                raise DeliveryError(str(exc), permanent=False) from None
            self._smtp = channels.SmtpConnection(target, self.smtp_timeout_s, local_hostname=self.mail_host)
        self._smtp.send(msg, before_data=before_accept)
        return f"{claimed.destination} (via {self._smtp.target.host}:{self._smtp.target.port})"

    def _sms(self, claimed: Claimed) -> tuple[str, str]:
        from portal.notify.sms_providers import send_sms

        text = claimed.payload.get("text") if isinstance(claimed.payload, dict) else None
        if not isinstance(text, str):
            raise DeliveryError("SMS payload needs a 'text'", permanent=True)
        sender = claimed.payload.get("sender")
        provider_id = send_sms(self.http(), self.sms_config, claimed.destination, text,
                               idempotency_key=claimed.idempotency_key, timeout_s=self.webhook_timeout_s,
                               sender=sender if isinstance(sender, str) else None)
        return f"{claimed.destination} (via {self.sms_config.provider}, id {provider_id})", provider_id


def dispatch_due(engine: Engine, now: datetime | None = None, limit: int = 50, *, settings: Settings | None = None,
                 webhook_timeout_s: float = channels.WEBHOOK_TIMEOUT_S, smtp_timeout_s: float = channels.SMTP_TIMEOUT_S,
                 lease_s: int = LEASE_S, sms_config=None, throttle: Throttle | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> DispatchReport:
    """Claim the due messages, send each, record sent / retry with backoff / dead / deferred.
    Safe to run in many workers. `now`, `sleep` and `monotonic` are injectable so tests control time;
    `sms_config` defaults to the environment (portal.notify.sms_providers), `throttle` to NOTIFY_THROTTLE_*."""
    now = now or utcnow()
    settings = settings or get_settings()
    if sms_config is None:
        from portal.notify.sms_providers import sms_config_from_env

        sms_config = sms_config_from_env()
    names = tuple(c for c in SENDABLE_CHANNELS if c != "sms" or sms_config.configured)  # SMS waits for a provider
    claimed = claim_due(engine, now, limit, lease_s, names)
    report = DispatchReport(claimed=len(claimed))
    if not claimed:
        return report
    throttle = throttle or Throttle.from_env(sleep)
    quiet = parse_quiet_hours(os.environ.get("NOTIFY_QUIET_HOURS"))
    senders = _Senders(engine, settings, webhook_timeout_s, smtp_timeout_s, sms_config)
    started = monotonic()
    try:
        with engine.connect() as db, _Recorder(db) as recorder:
            for item in claimed:
                if item.channel == "sms":
                    until = quiet_until(now, recipient_zones(item.destination, settings.timezone), quiet)
                    if until is not None:
                        report.outcomes.append(_defer(recorder, item, until))
                        continue
                if monotonic() - started + throttle.pause_due(item.channel) + senders.budget_s(item) > lease_s:
                    report.outcomes.append(_release(recorder, item, now))
                    continue
                throttle.before_send(item.channel)
                report.outcomes.append(_deliver(recorder, senders, item, now))
    except _RecordFailed as exc:
        raise exc.error from None  # the database error itself, as before
    finally:
        senders.close()
    return report


class _RecordFailed(Exception):
    """Writing an outcome failed (the database); carried past the senders' error handling to the caller."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


_record_threads: tuple[int, ThreadPoolExecutor] | None = None


def _record_pool() -> ThreadPoolExecutor:
    """Threads shared by the runs of this process, started once rather than per batch (a run has at most
    one write pending, so runs wait for each other only when more than four dispatch at once); a new pool
    in a forked child, where the parent's threads do not exist."""
    global _record_threads
    if _record_threads is None or _record_threads[0] != os.getpid():
        _record_threads = (os.getpid(), ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbox-record"))
    return _record_threads[1]


class _Recorder:
    """Writes each outcome on the run's one connection in a helper thread, so that one message's commit
    overlaps the start of the next message's delivery (the SMTP connection, MAIL and RCPT round trips).

    `wait()` is the barrier, and every sender calls it (as `before_accept`) right before the receiver can
    accept the next message: before SMTP DATA, before writing the mail file, before a webhook or SMS request.
    So at most one accepted message is ever unrecorded — the one in flight — as with a write after each
    send, and a crash repeats at most that one (tests/integration/test_notify_crash.py). The connection is
    only ever used by one thread at a time: the dispatching thread touches it only after `wait()`."""

    def __init__(self, db: Connection):
        self.db = db
        self._pending: Future | None = None

    def __enter__(self) -> "_Recorder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.wait()
        elif self._pending is not None:
            futures_wait([self._pending])  # let the write in progress end; the error being raised wins

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except Exception as exc:
                raise _RecordFailed(exc) from exc

    def finish(self, item: Claimed, outcome: Outcome, **values) -> None:
        """Record `outcome` (values as for _finish) in the background; "lost" if the lease was lost."""
        self.wait()
        self._pending = _record_pool().submit(self._write, item, outcome, values)

    def _write(self, item: Claimed, outcome: Outcome, values: dict) -> None:
        if not _finish(self.db, item, **values):
            log.warning("outbox #%s: lease lost before the outcome (%s) was recorded; another worker has it",
                        item.id, outcome.result)
            outcome.result = "lost"


def _deliver(recorder: _Recorder, senders: _Senders, item: Claimed, now: datetime) -> Outcome:
    outcome = Outcome(item.id, item.channel, item.destination, "sent")
    if item.channel == "sms":
        recorder.wait()
        if _interrupted(recorder.db, item):
            outcome.result, outcome.error = "dead", UNKNOWN_OUTCOME
            recorder.finish(item, outcome, state="dead", last_error=UNKNOWN_OUTCOME, log_kind="dead",
                            detail={"error": UNKNOWN_OUTCOME}, timeline="notification.failed")
            log.warning("outbox #%s sms: %s", item.id, UNKNOWN_OUTCOME)
            return outcome
        if not _mark_sending(recorder.db, item):
            return Outcome(item.id, item.channel, item.destination, "lost")
    try:
        where, provider_id = senders.send(item, before_accept=recorder.wait)
    except _RecordFailed:
        raise
    except DeliveryError as exc:
        outcome.error = str(exc)
        if exc.permanent or item.attempts >= MAX_ATTEMPTS:
            outcome.result = "dead"
            reason = "permanent failure" if exc.permanent else f"gave up after {item.attempts} attempts"
            recorder.finish(item, outcome, state="dead", last_error=outcome.error[:1000], log_kind="dead",
                            detail={"error": outcome.error[:500], "reason": reason}, timeline="notification.failed")
            log.warning("outbox #%s %s %s → dead letter (%s): %s", item.id, item.channel, item.event_type,
                        reason, outcome.error)
        else:
            outcome.result = "retry"
            delay = backoff_delay(item.attempts)
            if exc.retry_after_s:
                delay = max(delay, min(exc.retry_after_s, MAX_BACKOFF_S))
            outcome.next_attempt_at = now + timedelta(seconds=delay)
            recorder.finish(item, outcome, state="failed", last_error=outcome.error[:1000],
                            next_attempt_at=outcome.next_attempt_at, log_kind="failed",
                            detail={"error": outcome.error[:500], "retry_at": outcome.next_attempt_at.isoformat()},
                            timeline="notification.failed")
            log.info("outbox #%s %s %s failed (attempt %s of %s), retry in %.0f s: %s", item.id, item.channel,
                     item.event_type, item.attempts, MAX_ATTEMPTS, delay, outcome.error)
    except Exception as exc:  # a bug in a sender must not lose the row: count the attempt and retry later
        log.exception("outbox #%s: unexpected error while sending", item.id)
        outcome.error = f"internal error: {type(exc).__name__}: {exc}"[:1000]
        if item.attempts >= MAX_ATTEMPTS:
            outcome.result = "dead"
            recorder.finish(item, outcome, state="dead", last_error=outcome.error, log_kind="dead",
                            detail={"error": outcome.error[:500]}, timeline="notification.failed")
        else:
            outcome.result = "retry"
            outcome.next_attempt_at = now + timedelta(seconds=backoff_delay(item.attempts))
            recorder.finish(item, outcome, state="failed", last_error=outcome.error,
                            next_attempt_at=outcome.next_attempt_at, log_kind="failed",
                            detail={"error": outcome.error[:500]}, timeline="notification.failed")
    else:
        outcome.provider_message_id = provider_id
        recorder.finish(item, outcome, state="sent", sent_at=utcnow(), last_error="", log_kind="sent",
                        provider_message_id=provider_id, timeline="notification.sent")
        log.info("outbox #%s %s %s sent to %s", item.id, item.channel, item.event_type, where)
    return outcome


def _defer(recorder: _Recorder, item: Claimed, until: datetime) -> Outcome:
    """Quiet hours: give the row back for `until`, the attempt not counted, and say so in the log/timeline."""
    outcome = Outcome(item.id, item.channel, item.destination, "deferred", next_attempt_at=until)
    recorder.finish(item, outcome, state="pending" if item.attempts <= 1 else "failed", attempts=item.attempts - 1,
                    next_attempt_at=until, log_kind="deferred",
                    detail={"reason": "quiet_hours", "until": until.isoformat()}, timeline="notification.deferred")
    log.info("outbox #%s sms deferred to %s (quiet hours at the recipient)", item.id, until.isoformat())
    return outcome


def _release(recorder: _Recorder, item: Claimed, now: datetime) -> Outcome:
    """Give back a claimed row we no longer have time to send within the lease (not counted as an attempt)."""
    outcome = Outcome(item.id, item.channel, item.destination, "released")
    recorder.finish(item, outcome, state="pending" if item.attempts <= 1 else "failed", attempts=item.attempts - 1,
                    next_attempt_at=now)
    return outcome

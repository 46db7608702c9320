"""The delivery log of customer and staff notifications (e-mail, SMS), its dead letters, and retrying one.

Reads the outbox rows of the notification channels with their DeliveryEvents (queued, deferred, sending,
sent, failed, dead, delivered, retried). The `not_sent` view lists the rule decisions that never made an
outbox message (no marketing consent, invalid recipient, template error). A retry goes through `portal.outbox.service.requeue`, the same
reset the webhook re-delivery uses. No web imports: the controller parses, calls these, renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import DeliveryEvent, OutboxMessage, Return, utcnow
from portal.notify.rules import TRIGGERS
from portal.outbox import service as outbox
from portal.returns.identifiers import normalise_rma
from portal.staff.accounts import StaffPrincipal, audit
from portal.staff.common import staff_event
from portal.staff.search import clean_query, email_variants, looks_like_phone, looks_like_rma, phone_variants
from portal.staff.vocabulary import term

CHANNELS = ("email", "sms")  # webhooks have their own log under /staff/webhook-endpoints
STATES = ("pending", "sending", "sent", "failed", "dead")
NOT_SENT = "not_sent"  # the state filter value for decisions without an outbox message
# DeliveryEvent kinds written by portal.notify.rules for a message that was never queued (outbox_id NULL)
NOT_SENT_KINDS = {"suppressed": staff_text("suppressed (no consent)"),
                  "invalid_recipient": staff_text("invalid recipient"),
                  "failed": staff_text("template error")}
RETRYABLE = ("failed", "dead")
PAGE_SIZE = 50
MAX_PAGE = 100_000
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2100, 12, 31)
RETRIED = "retried"  # DeliveryEvent kind and, as notification.retried, the timeline event
_LIKE_SPECIAL = ("\\", "%", "_")
OTHER_EVENTS = {"status_link.resent": staff_text("Status link resent by support")}


class DeliveryNotFound(LookupError):
    pass


class RetryRefused(RuntimeError):
    """The message cannot be retried now (not failed/dead, or a worker has it); the text says why."""


# --- Filters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilters:
    channel: str = ""
    state: str = ""
    q: str = ""
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    def params(self, **changes) -> dict[str, str]:
        """Query parameters for a link to this view (e.g. another page), empty ones left out."""
        f = replace(self, **changes)
        values = {"channel": f.channel, "state": f.state, "q": f.q,
                  "date_from": f.date_from.isoformat() if f.date_from else "",
                  "date_to": f.date_to.isoformat() if f.date_to else "",
                  "page": str(f.page) if f.page != 1 else ""}
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True)
class ParsedFilters:
    filters: LogFilters  # only the valid values; a bad one filters nothing
    values: dict[str, str]  # what was typed, shown again in the form
    errors: dict[str, str]  # field -> message


def _date(raw: str) -> date:
    value = date.fromisoformat(raw)  # ValueError for anything that is not YYYY-MM-DD (or YYYYMMDD)
    if not FIRST_DATE <= value <= LAST_DATE:
        raise ValueError("out of range")
    return value


def parse_filters(params: Mapping[str, str]) -> ParsedFilters:
    """Read the query string; each bad value gets its own message and is left out of the filter."""
    values = {name: clean_query(str(params.get(name) or ""))[:200]
              for name in ("channel", "state", "q", "date_from", "date_to", "page")}
    errors: dict[str, str] = {}
    channel, state = values["channel"], values["state"]
    if channel and channel not in CHANNELS:
        errors["channel"] = staff_text("Unknown channel %(value)s: choose e-mail or SMS.", value=repr(channel))
        channel = ""
    if state and state not in STATES and state != NOT_SENT:
        errors["state"] = staff_text("Unknown state %(value)s: choose one of %(states)s.", value=repr(state),
                                     states=", ".join((*STATES, NOT_SENT)))
        state = ""
    dates: dict[str, date | None] = {"date_from": None, "date_to": None}
    for name in dates:
        if values[name]:
            try:
                dates[name] = _date(values[name])
            except ValueError:
                errors[name] = staff_text("Enter the date as YYYY-MM-DD, e.g. %(example)s, between %(first)s and %(last)s.",
                                          example=utcnow().date().isoformat(), first=FIRST_DATE.isoformat(),
                                          last=LAST_DATE.isoformat())
    if dates["date_from"] and dates["date_to"] and dates["date_to"] < dates["date_from"]:
        errors["date_to"] = staff_text("The end date is before the start date.")
        dates["date_to"] = None
    page = 1
    if values["page"]:
        try:
            page = int(values["page"])
        except ValueError:
            page = 0
        if not 1 <= page <= MAX_PAGE:
            errors["page"] = staff_text("The page must be a whole number from 1 to %(limit)s.", limit=MAX_PAGE)
            page = 1
    filters = LogFilters(channel=channel, state=state, q=values["q"], date_from=dates["date_from"],
                         date_to=dates["date_to"], page=page)
    return ParsedFilters(filters, values, errors)


def _utc_start(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def _search_clause(q: str):
    """RMA, phone number (any form) or part of an e-mail address."""
    terms = []
    if looks_like_rma(q):
        terms.append(Return.rma == normalise_rma(q))
    if looks_like_phone(q):
        terms.append(OutboxMessage.destination.in_(phone_variants(q)))
    lowered = sa.func.lower(OutboxMessage.destination)
    for form in email_variants(q):
        for ch in _LIKE_SPECIAL:
            form = form.replace(ch, "\\" + ch)
        terms.append(lowered.like(f"%{form}%", escape="\\"))
    return sa.or_(*terms)


def _date_clauses(column, filters: LogFilters, tz: str) -> list:
    clauses = []
    if filters.date_from:
        clauses.append(column >= _utc_start(filters.date_from, tz))
    if filters.date_to:
        clauses.append(column < _utc_start(filters.date_to + timedelta(days=1), tz))
    return clauses


def _where(filters: LogFilters, tz: str) -> list:
    clauses = [OutboxMessage.channel.in_([filters.channel] if filters.channel else CHANNELS)]
    if filters.state:
        clauses.append(OutboxMessage.state == filters.state)
    clauses += _date_clauses(OutboxMessage.created_at, filters, tz)
    if filters.q:
        clauses.append(_search_clause(filters.q))
    return clauses


def _not_sent_where(filters: LogFilters, tz: str) -> list:
    """Decisions have no recipient, so the search matches their RMA only."""
    channel = DeliveryEvent.detail["channel"].as_string()
    clauses = [DeliveryEvent.outbox_id.is_(None), DeliveryEvent.kind.in_(NOT_SENT_KINDS),
               channel.in_([filters.channel] if filters.channel else CHANNELS)]
    clauses += _date_clauses(DeliveryEvent.at, filters, tz)
    if filters.q:
        clauses.append(Return.rma == normalise_rma(filters.q) if looks_like_rma(filters.q) else sa.false())
    return clauses


# --- The log -----------------------------------------------------------------------------------


def trigger_of(message: OutboxMessage) -> tuple[str, str]:
    """(trigger code, label): "notify.parcel.arrived" -> ("parcel.arrived", "Arrived at the merchant")."""
    code = message.event_type.removeprefix("notify.")
    return code, TRIGGERS.get(code) or OTHER_EVENTS.get(code, "")


def mask_recipient(destination: str) -> str:
    """Enough to recognise a recipient, not to copy a list of them: "an…@example.se", "+4670…67"."""
    if "@" in destination:
        local, _, domain = destination.rpartition("@")
        return f"{local[:2]}…@{domain}"
    if len(destination) > 7:
        return f"{destination[:5]}…{destination[-2:]}"
    return "…" + destination[-2:]


@dataclass(frozen=True)
class LogRow:
    message: OutboxMessage
    rma: str | None
    trigger: str
    trigger_label: str
    rule: str  # the rule's name, from its "queued" event
    recipient: str  # masked for roles that do not see full recipients in the list
    last_event: DeliveryEvent | None


@dataclass(frozen=True)
class NotSentRow:
    """A rule's decision not to (or failure to) queue a message."""
    event: DeliveryEvent
    rma: str | None
    kind_label: str
    channel: str
    trigger: str
    trigger_label: str
    rule: str
    reason: str


@dataclass(frozen=True)
class LogPage:
    filters: LogFilters
    rows: list[LogRow]
    total: int
    dead: int  # dead letters among all e-mail/SMS messages, whatever the filters
    not_sent: list[NotSentRow] = field(default_factory=list)  # filled instead of rows for state=not_sent

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @property
    def past_the_end(self) -> bool:
        return self.filters.page > self.pages


def events_by_message(session: Session, ids: list[int]) -> dict[int, list[DeliveryEvent]]:
    found: dict[int, list[DeliveryEvent]] = {}
    if ids:
        for event in session.exec(select(DeliveryEvent).where(DeliveryEvent.outbox_id.in_(ids))
                                  .order_by(DeliveryEvent.at, DeliveryEvent.id)):
            found.setdefault(event.outbox_id, []).append(event)
    return found


def dead_count(session: Session) -> int:
    return session.exec(select(sa.func.count()).select_from(OutboxMessage)
                        .where(OutboxMessage.channel.in_(CHANNELS), OutboxMessage.state == "dead")).one()


def list_deliveries(session: Session, filters: LogFilters, tz: str, *, full_recipients: bool) -> LogPage:
    """One page of e-mail/SMS messages, newest first, with each one's RMA, rule and latest event."""
    if filters.state == NOT_SENT:
        return _list_not_sent(session, filters, tz)
    where = _where(filters, tz)
    joined = sa.outerjoin(OutboxMessage, Return, Return.id == OutboxMessage.return_id)
    total = session.exec(select(sa.func.count()).select_from(joined).where(*where)).one()
    found = session.exec(
        select(OutboxMessage, Return.rma).select_from(joined).where(*where)
        .order_by(OutboxMessage.id.desc()).offset((filters.page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    ).all()
    events = events_by_message(session, [m.id for m, _ in found])
    rows = []
    for message, rma in found:
        own = events.get(message.id, [])
        code, label = trigger_of(message)
        rows.append(LogRow(message=message, rma=rma, trigger=code, trigger_label=label, rule=_rule_name(own),
                           recipient=message.destination if full_recipients else mask_recipient(message.destination),
                           last_event=own[-1] if own else None))
    return LogPage(filters=filters, rows=rows, total=total, dead=dead_count(session))


def _list_not_sent(session: Session, filters: LogFilters, tz: str) -> LogPage:
    """One page of the decisions that never made a message, newest first."""
    where = _not_sent_where(filters, tz)
    joined = sa.outerjoin(DeliveryEvent, Return, Return.id == DeliveryEvent.return_id)
    total = session.exec(select(sa.func.count()).select_from(joined).where(*where)).one()
    found = session.exec(
        select(DeliveryEvent, Return.rma).select_from(joined).where(*where)
        .order_by(DeliveryEvent.at.desc(), DeliveryEvent.id.desc())
        .offset((filters.page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    ).all()
    rows = []
    for event, rma in found:
        detail = event.detail or {}
        code = str(detail.get("trigger") or "")
        rows.append(NotSentRow(event=event, rma=rma, kind_label=NOT_SENT_KINDS[event.kind],
                               channel=str(detail.get("channel") or ""), trigger=code,
                               trigger_label=TRIGGERS.get(code, ""), rule=str(detail.get("rule") or ""),
                               reason=str(detail.get("reason") or "")))
    return LogPage(filters=filters, rows=[], total=total, dead=dead_count(session), not_sent=rows)


def _rule_name(events: list[DeliveryEvent]) -> str:
    return next((str((e.detail or {}).get("rule") or "") for e in events if e.kind == "queued"), "")


# --- One message -------------------------------------------------------------------------------


def _when(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class EventView:
    event: DeliveryEvent
    until: datetime | None = None  # deferred: the end of the quiet hours
    retry_at: datetime | None = None  # failed: when the dispatcher tries again
    error: str = ""
    reason: str = ""
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryView:
    message: OutboxMessage
    rma: str | None
    trigger: str
    trigger_label: str
    rule: str
    subject: str
    text: str  # the plain-text e-mail body or the SMS text
    has_html: bool
    events: list[EventView]

    @property
    def retryable(self) -> bool:
        return self.message.state in RETRYABLE


def _event_view(event: DeliveryEvent) -> EventView:
    detail = dict(event.detail or {})
    return EventView(event=event, until=_when(detail.get("until")), retry_at=_when(detail.get("retry_at")),
                     error=str(detail.get("error") or ""), reason=str(detail.get("reason") or ""), detail=detail)


def get_delivery(session: Session, message_id: int) -> DeliveryView:
    message = session.get(OutboxMessage, message_id)
    if message is None or message.channel not in CHANNELS:
        raise DeliveryNotFound(staff_text("No e-mail or SMS message #%(id)s.", id=message_id))
    ret = session.get(Return, message.return_id) if message.return_id is not None else None
    events = events_by_message(session, [message.id]).get(message.id, [])
    payload = message.payload if isinstance(message.payload, dict) else {}
    code, label = trigger_of(message)
    return DeliveryView(message=message, rma=ret.rma if ret else None, trigger=code, trigger_label=label,
                        rule=_rule_name(events), subject=str(payload.get("subject") or ""),
                        text=str(payload.get("text") or ""), has_html=bool(payload.get("html")),
                        events=[_event_view(e) for e in events])


# --- Retry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryResult:
    message: OutboxMessage
    already: bool  # a repeated submit: the message was already queued again, nothing changed


def _last_kind(session: Session, message_id: int) -> str | None:
    return session.exec(select(DeliveryEvent.kind).where(DeliveryEvent.outbox_id == message_id)
                        .order_by(DeliveryEvent.id.desc()).limit(1)).first()


def _already_retried(session: Session, message: OutboxMessage) -> bool:
    """A second submit of the same retry: the message waits, untouched since the retry."""
    return message.state == "pending" and message.attempts == 0 and _last_kind(session, message.id) == RETRIED


def _refusal(message: OutboxMessage) -> str:
    if message.state == "sending":
        return staff_text("Message #%(id)s is being sent right now. Reload in a minute to see how it went.", id=message.id)
    if message.state == "sent":
        return staff_text("Message #%(id)s was sent; only failed or dead messages can be retried.", id=message.id)
    return staff_text("Message #%(id)s is %(state)s; only failed or dead messages can be retried.", id=message.id,
                      state=term("delivery_state", message.state))


def retry(session: Session, message_id: int, staff: StaffPrincipal, client_ip: str = "",
          now: datetime | None = None) -> RetryResult:
    """Queue a failed or dead e-mail/SMS again: pending, due now, attempts reset; logged as a "retried"
    DeliveryEvent, a staff event on the return's timeline and an audit entry. A repeated submit is a no-op."""
    now = now or utcnow()
    message = session.get(OutboxMessage, message_id)
    if message is None or message.channel not in CHANNELS:
        raise DeliveryNotFound(staff_text("No e-mail or SMS message #%(id)s.", id=message_id))
    if message.state not in RETRYABLE:
        if _already_retried(session, message):
            return RetryResult(message, already=True)
        raise RetryRefused(_refusal(message))
    try:
        before = outbox.requeue(session, message, now)
    except outbox.MessageBusy:
        session.refresh(message)  # someone (a worker, a second click) got there first
        if _already_retried(session, message):
            return RetryResult(message, already=True)
        raise RetryRefused(staff_text("Message #%(id)s changed while you asked; reload and try again.", id=message.id)) from None
    detail = {"by": staff.email, "staff_id": staff.id, "role": staff.role, "previous_state": before["state"],
              "previous_attempts": before["attempts"], "previous_error": (before["last_error"] or "")[:500],
              "channel": message.channel}
    session.add(DeliveryEvent(outbox_id=message.id, return_id=message.return_id, kind=RETRIED, at=now, detail=detail))
    if message.return_id is not None:
        ret = session.get(Return, message.return_id)
        staff_event(session, ret, staff, f"notification.{RETRIED}", before={"state": before["state"],
                    "attempts": before["attempts"], "last_error": before["last_error"]},
                    after={"state": "pending", "attempts": 0}, outbox_id=message.id, channel=message.channel,
                    event=message.event_type)
    audit(session, staff.email, f"notification.{RETRIED}", f"outbox:{message.id}", before,
          {"state": "pending", "channel": message.channel}, client_ip)
    return RetryResult(message, already=False)

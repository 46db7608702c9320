"""Webhook endpoints the merchant registers, their delivery log, and re-delivery. No web imports."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from sqlmodel import Session, func, select

from portal.i18n import staff_text
from portal.models import OutboxMessage, WebhookEndpoint
from portal.outbox import service as outbox
from portal.staff.accounts import audit

EVENT_TYPES = (
    "return.registered",
    "return.received",
    "return.inspected",
    "refund.requested",
    "refund.issued",
    "exchange.requested",
    "exchange.shipped",
    "collection.created",
    "storage.overdue",  # a Norwegian return at the consolidation point past its free storage days
)
ALL_EVENTS = "*"
DELIVERY_LOG_SIZE = 50
MAX_URL = 500
MAX_DESCRIPTION = 200


class EndpointError(ValueError):
    """A form that cannot be saved; `fields` maps form fields to messages."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class DeliveryNotFound(LookupError):
    pass


class DeliveryBusy(RuntimeError):
    """The message is being sent right now (or changed under us); try again shortly."""


def url_problem(url: str) -> str | None:
    """Why this URL cannot be a webhook endpoint, or None."""
    if not url:
        return staff_text("Enter the URL that should receive the webhooks.")
    if len(url) > MAX_URL:
        return staff_text("The URL is too long (at most %(limit)s characters).", limit=MAX_URL)
    if any(c.isspace() or ord(c) < 32 for c in url):
        return staff_text("The URL must not contain spaces or control characters.")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return staff_text("The URL must start with https:// (or http://).")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return staff_text("The port in the URL is not a number between 0 and 65535.")
    if not parts.hostname:
        return staff_text("The URL needs a host name, e.g. https://shop.example.com/hooks/returns.")
    if parts.fragment:
        return staff_text("The URL must not contain a #fragment.")
    return None


def clean_event_types(chosen: list[str]) -> list[str]:
    chosen = [c for c in dict.fromkeys(chosen) if c]
    if ALL_EVENTS in chosen:
        return [ALL_EVENTS]
    return [c for c in EVENT_TYPES if c in chosen]


def secret_hint(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) >= 8 else "…"


def create_endpoint(session: Session, url: str, event_types: list[str], description: str, actor: str,
                    client_ip: str = "") -> tuple[WebhookEndpoint, str]:
    """A new active endpoint and its signing secret (returned once; shown to the admin once)."""
    url = url.strip()
    description = description.strip()
    errors = {}
    problem = url_problem(url)
    if problem:
        errors["url"] = problem
    unknown = [e for e in event_types if e and e != ALL_EVENTS and e not in EVENT_TYPES]
    types = clean_event_types(event_types)
    if unknown:
        errors["event_types"] = staff_text("Unknown event type: %(types)s.", types=", ".join(unknown))
    elif not types:
        errors["event_types"] = staff_text("Choose at least one event (or all events).")
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = staff_text("At most %(limit)s characters.", limit=MAX_DESCRIPTION)
    if errors:
        raise EndpointError(errors)
    secret = secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(url=url, secret=secret, event_types=types, description=description, active=True)
    session.add(endpoint)
    session.flush()
    audit(session, actor, "webhook.created", f"webhook:{endpoint.id}", {},
          {"url": url, "event_types": types, "description": description}, client_ip)
    return endpoint, secret


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id)


@dataclass(frozen=True)
class EndpointSummary:
    endpoint: WebhookEndpoint
    counts: dict[str, int]  # outbox state -> messages
    last_sent_at: datetime | None

    @property
    def hint(self) -> str:
        return secret_hint(self.endpoint.secret)


def list_endpoints(session: Session) -> list[EndpointSummary]:
    endpoints = session.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.active.desc(), WebhookEndpoint.id)).all()
    counts: dict[int, dict[str, int]] = {}
    for endpoint_id, state, n in session.exec(
        select(OutboxMessage.endpoint_id, OutboxMessage.state, func.count())
        .where(OutboxMessage.endpoint_id.is_not(None))
        .group_by(OutboxMessage.endpoint_id, OutboxMessage.state)
    ):
        counts.setdefault(endpoint_id, {})[state] = n
    last_sent = dict(session.exec(
        select(OutboxMessage.endpoint_id, func.max(OutboxMessage.sent_at))
        .where(OutboxMessage.endpoint_id.is_not(None)).group_by(OutboxMessage.endpoint_id)
    ).all())
    return [EndpointSummary(e, counts.get(e.id, {}), _aware(last_sent.get(e.id))) for e in endpoints]


def _aware(value):
    if isinstance(value, str):  # SQLite hands aggregates back untyped
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def deactivate_endpoint(session: Session, endpoint: WebhookEndpoint, actor: str, client_ip: str = "") -> bool:
    """Stop sending to this endpoint (queued messages to it end in the dead letter). False if it already was."""
    if not endpoint.active:
        return False
    endpoint.active = False
    session.add(endpoint)
    audit(session, actor, "webhook.deactivated", f"webhook:{endpoint.id}", {"active": True}, {"active": False}, client_ip)
    return True


def delivery_log(session: Session, endpoint_id: int, limit: int = DELIVERY_LOG_SIZE) -> list[OutboxMessage]:
    return list(session.exec(
        select(OutboxMessage).where(OutboxMessage.endpoint_id == endpoint_id)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit)
    ).all())


def redeliver(session: Session, message_id: int, actor: str, client_ip: str = "",
              now: datetime | None = None) -> OutboxMessage:
    """Queue a webhook message again with a fresh retry budget (sent, failed or dead alike).

    A message a worker is sending right now is refused (DeliveryBusy) unless that worker's lease ran out.
    """
    message = session.get(OutboxMessage, message_id)
    if message is None or message.channel != "webhook":
        raise DeliveryNotFound(staff_text("No webhook delivery #%(id)s.", id=message_id))
    try:
        before = outbox.requeue(session, message, now)
    except outbox.MessageBusy as exc:
        if exc.sending:
            raise DeliveryBusy(staff_text("Delivery #%(id)s is being sent right now. Reload in a minute to see how it went.",
                                          id=message_id)) from None
        raise DeliveryBusy(staff_text("Delivery #%(id)s changed while you asked; reload and try again.", id=message_id)) from None
    audit(session, actor, "webhook.redelivered", f"outbox:{message.id}", before,
          {"state": "pending", "endpoint_id": message.endpoint_id}, client_ip)
    return message

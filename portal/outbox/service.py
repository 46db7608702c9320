"""Writing to the outbox. Call inside the transaction that makes the change the message is about."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.models import OutboxMessage, WebhookEndpoint, utcnow


def enqueue(session: Session, *, key: str, channel: str, destination: str, event_type: str, payload: dict,
            return_id: int | None = None, endpoint_id: int | None = None,
            not_before: datetime | None = None) -> OutboxMessage | None:
    """Add a message unless one with the same idempotency key exists; returns the new row or None."""
    if session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)).first() is not None:
        return None
    message = OutboxMessage(idempotency_key=key[:200], channel=channel, destination=destination, event_type=event_type,
                            payload=payload, return_id=return_id, endpoint_id=endpoint_id,
                            next_attempt_at=not_before or utcnow())
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return None  # a concurrent transaction queued the same message first
    return message


def enqueue_webhook_event(session: Session, event_type: str, payload: dict, *, unique: str,
                          return_id: int | None = None) -> list[OutboxMessage]:
    """One message per active endpoint subscribed to `event_type` ("*" subscribes to all).

    `unique` names this occurrence (e.g. "refund:17"), so the same occurrence is never queued twice.
    """
    queued = []
    for endpoint in session.exec(select(WebhookEndpoint).where(WebhookEndpoint.active)):
        if event_type not in endpoint.event_types and "*" not in endpoint.event_types:
            continue
        body = {"type": event_type, "id": f"{event_type}:{unique}", "created_at": utcnow().isoformat(), "data": payload}
        message = enqueue(session, key=f"webhook:{endpoint.id}:{event_type}:{unique}", channel="webhook",
                          destination=endpoint.url, event_type=event_type, payload=body, return_id=return_id,
                          endpoint_id=endpoint.id)
        if message:
            queued.append(message)
    return queued

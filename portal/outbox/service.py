"""Writing to the outbox. Call inside the transaction that makes the change the message is about."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
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


class MessageBusy(RuntimeError):
    """A requeue that lost: a worker holds the message (`sending`) or it changed since it was read."""

    def __init__(self, message_id: int, sending: bool):
        super().__init__(f"outbox #{message_id} is {'being sent' if sending else 'changed'}")
        self.message_id = message_id
        self.sending = sending


def requeue(session: Session, message: OutboxMessage, now: datetime | None = None) -> dict:
    """Put a message back in the queue by hand: pending, due now, a fresh retry budget, no error, not sent.

    The one way staff re-send anything (webhook re-delivery, notification retry); callers decide which
    states they allow and write their own audit. A message a worker is sending (lease not run out) is
    refused, and the update is a compare-and-set on (state, attempts), so a worker claiming the row at
    this moment wins and the caller gets MessageBusy. Returns what the message was before.
    """
    now = now or utcnow()
    if message.state == "sending" and message.next_attempt_at > now:
        raise MessageBusy(message.id, sending=True)
    before = {"state": message.state, "attempts": message.attempts, "last_error": message.last_error,
              "sent_at": message.sent_at.isoformat() if message.sent_at else None}
    result = session.exec(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message.id, OutboxMessage.state == message.state,
               OutboxMessage.attempts == message.attempts)
        .values(state="pending", attempts=0, next_attempt_at=now, last_error="", sent_at=None)
    )
    if result.rowcount != 1:
        raise MessageBusy(message.id, sending=False)
    session.refresh(message)
    return before

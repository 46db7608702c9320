"""GDPR retention: anonymise the customers whose business with the shop ended more than RETENTION_MONTHS ago.

A customer qualifies when nothing of theirs moved within the period: no order placed, delivered or
changed, every return in a terminal state (lifecycle.TERMINAL) and untouched since, no refund still
owed, no consent given. Their name, e-mail, phone and address go (the country stays), everywhere a
copy lives: customer and order rows, return comments, timeline data, notification payloads and
destinations, delivery and carrier-scan details, stored label PDFs, consent sources. The figures
stay (returns, lines, quantities, amounts, reasons, dates, countries, SKUs), so reports still add up.

Idempotent: anonymised customers are marked (`customer.anonymised_at`) and never picked again.
One audit entry per run with the count and the customer ids (no personal data).
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from portal.config import Settings
from portal.documents.store import DocumentStorage
from portal.models import (
    AuditEntry,
    CarrierEvent,
    Consent,
    Customer,
    DeliveryEvent,
    Order,
    OutboxMessage,
    Refund,
    Return,
    ReturnEvent,
    ReturnLine,
    StoredDocument,
)
from portal.privacy.scrub import REMOVED, personal_pattern, phone_spellings, scrub
from portal.returns.lifecycle import TERMINAL

log = logging.getLogger("portal.privacy")

ACTOR = "system:retention"
AUDIT_ACTION = "gdpr.anonymised"
ANONYMISED_EVENT = "customer.anonymised"
NOTE_EVENT = "note.added"  # staff notes are free text about the customer: cleared too
CHUNK = 200  # customers per batch of statements (keeps IN lists short)
CUSTOMER_CHANNELS = ("email", "sms")


@dataclass
class RetentionReport:
    cutoff: datetime
    months: int
    dry_run: bool
    customer_ids: list[int] = field(default_factory=list)
    documents_deleted: int = 0

    @property
    def count(self) -> int:
        return len(self.customer_ids)


def months_before(moment: datetime, months: int) -> datetime:
    """The same wall-clock moment `months` calendar months earlier (the 31st becomes the month's last day)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _eligible(cutoff: datetime):
    """SELECT customer.id of everyone whose last business ended before `cutoff` and who is not anonymised yet."""
    recent_order = sa.exists().where(
        Order.customer_id == Customer.id,
        sa.or_(Order.placed_at >= cutoff, Order.created_at >= cutoff, Order.updated_at >= cutoff,
               Order.delivered_at >= cutoff),
    )
    live_return = sa.exists().where(
        Return.order_id == Order.id, Order.customer_id == Customer.id,
        sa.or_(Return.status.not_in(TERMINAL), Return.updated_at >= cutoff),
    )
    unpaid_refund = sa.exists().where(
        Refund.return_id == Return.id, Return.order_id == Order.id, Order.customer_id == Customer.id,
        Refund.state != "issued",
    )
    recent_consent = sa.exists().where(Consent.customer_id == Customer.id, Consent.at >= cutoff)
    return select(Customer.id).where(
        Customer.anonymised_at.is_(None), Customer.created_at < cutoff,
        ~recent_order, ~live_return, ~unpaid_refund, ~recent_consent,
    )


def eligible_customer_ids(session: Session, cutoff: datetime, among: list[int] | None = None) -> list[int]:
    query = _eligible(cutoff).order_by(Customer.id)
    if among is not None:
        query = query.where(Customer.id.in_(among))
    return list(session.exec(query).all())


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


def anonymise_expired(session: Session, now: datetime, months: int, storage: DocumentStorage, *,
                      dry_run: bool = False, actor: str = ACTOR) -> RetentionReport:
    """Anonymise every qualifying customer in the caller's transaction (the caller commits).

    The audit row is written first: on SQLite that takes the write lock, so the selection below sees
    the latest data and no return can be registered for these customers until we commit. On
    PostgreSQL the customers' order rows are locked and the selection checked again under the lock
    (registering a return writes the order row first, so it waits for us or we see it).
    """
    cutoff = months_before(now, months)
    report = RetentionReport(cutoff=cutoff, months=months, dry_run=dry_run)
    if dry_run:
        report.customer_ids = eligible_customer_ids(session, cutoff)
        return report
    entry = AuditEntry(actor=actor, action=AUDIT_ACTION, target="customers", at=now,
                       after={"count": 0, "customer_ids": [], "retention_months": months, "cutoff": cutoff.isoformat()})
    session.add(entry)
    session.flush()
    candidates = eligible_customer_ids(session, cutoff)
    if session.get_bind().dialect.name == "postgresql":
        locked = []
        for chunk in _chunks(candidates):
            session.exec(select(Order.id).where(Order.customer_id.in_(chunk)).with_for_update()).all()
            locked += eligible_customer_ids(session, cutoff, among=chunk)
        candidates = locked
    for chunk in _chunks(candidates):
        report.documents_deleted += _anonymise_customers(session, chunk, now, storage, actor, months)
    report.customer_ids = candidates
    entry.after = dict(entry.after, count=len(candidates), customer_ids=candidates,
                       documents_deleted=report.documents_deleted)
    session.add(entry)
    session.flush()
    return report


def _anonymise_customers(session: Session, customer_ids: list[int], now: datetime, storage: DocumentStorage,
                         actor: str, months: int) -> int:
    customers = {c.id: c for c in session.exec(select(Customer).where(Customer.id.in_(customer_ids)))}
    orders = list(session.exec(select(Order).where(Order.customer_id.in_(customer_ids))))
    customer_of_order = {o.id: o.customer_id for o in orders}
    returns = list(session.exec(select(Return).where(Return.order_id.in_(list(customer_of_order) or [0]))))
    customer_of_return = {r.id: customer_of_order[r.order_id] for r in returns}
    patterns, addresses = {}, {}
    for cid, customer in customers.items():
        own_orders = [o for o in orders if o.customer_id == cid]
        phones = phone_spellings(customer.phone, customer.country)
        emails = {e.strip().lower() for e in [customer.email, *(o.email for o in own_orders)] if e and e.strip()}
        postcodes = {customer.postcode, *(o.postcode for o in own_orders)}
        patterns[cid] = personal_pattern([customer.first_name, customer.last_name, customer.full_name, customer.street,
                                          customer.city, *emails, *phones, *postcodes])
        addresses[cid] = emails | phones

    _scrub_timelines(session, customer_of_return, patterns)
    messages = _scrub_outbox(session, customer_of_return, addresses, patterns)
    _scrub_delivery_events(session, customer_of_return, messages, patterns)
    for scan in session.exec(select(CarrierEvent).where(CarrierEvent.return_id.in_(list(customer_of_return) or [0]))):
        scan.raw = scrub(scan.raw, patterns[customer_of_return[scan.return_id]])
        session.add(scan)
    deleted = _delete_documents(session, list(customer_of_return), storage)

    return_ids = list(customer_of_return) or [0]
    session.exec(sa.update(ReturnLine).where(ReturnLine.return_id.in_(return_ids)).values(comment=""))
    session.exec(sa.update(Order).where(Order.customer_id.in_(customer_ids)).values(email="", postcode=""))
    session.exec(sa.update(Consent).where(Consent.customer_id.in_(customer_ids)).values(source=""))
    session.exec(sa.update(Customer).where(Customer.id.in_(customer_ids)).values(
        email="", phone=None, first_name="", last_name="", street="", postcode="", city="", anonymised_at=now))
    for ret in returns:  # straight rows, not service.record_event: no notification may fire for this
        session.add(ReturnEvent(return_id=ret.id, type=ANONYMISED_EVENT, at=now, actor=actor,
                                data={"retention_months": months}))
    session.flush()
    session.expire_all()  # bulk updates above bypassed the loaded objects
    return deleted


def _scrub_timelines(session: Session, customer_of_return: dict[int, int], patterns: dict) -> None:
    for event in session.exec(select(ReturnEvent).where(ReturnEvent.return_id.in_(list(customer_of_return) or [0]))):
        data = scrub(event.data or {}, patterns[customer_of_return[event.return_id]])
        if event.type == NOTE_EVENT and data.get("text"):
            data["text"] = REMOVED
        if data != event.data:
            event.data = data
            session.add(event)


def _scrub_outbox(session: Session, customer_of_return: dict[int, int], addresses: dict[int, set[str]],
                  patterns: dict) -> dict[int, int]:
    """Messages about the customer's returns or sent to them; returns {message id: customer id}.

    Messages to the customer lose their address and content entirely; anything still waiting to
    go is parked as dead (there is nobody to send it to any more). Other messages (webhooks to
    the shop, internal alerts) keep their content with the personal data scrubbed out.
    """
    owner_of_address = {a: cid for cid, found in addresses.items() for a in found}
    query = select(OutboxMessage).where(sa.or_(
        OutboxMessage.return_id.in_(list(customer_of_return) or [0]),
        sa.and_(OutboxMessage.channel.in_(CUSTOMER_CHANNELS),
                sa.func.lower(OutboxMessage.destination).in_(list(owner_of_address) or [""])),
    ))
    found = {}
    for message in session.exec(query):
        cid = owner_of_address.get(message.destination.strip().lower())
        if cid is None:
            cid = customer_of_return[message.return_id]
        found[message.id] = cid
        if message.channel in CUSTOMER_CHANNELS and message.destination.strip().lower() in addresses[cid]:
            message.destination = REMOVED
            message.payload = {"anonymised": True}
            if message.state in ("pending", "failed"):
                message.state = "dead"
                message.last_error = "customer anonymised (GDPR retention); not sent"
        else:
            message.payload = scrub(message.payload, patterns[cid])
        message.last_error = scrub(message.last_error, patterns[cid])
        session.add(message)
    return found


def _scrub_delivery_events(session: Session, customer_of_return: dict[int, int], messages: dict[int, int],
                           patterns: dict) -> None:
    query = select(DeliveryEvent).where(sa.or_(DeliveryEvent.return_id.in_(list(customer_of_return) or [0]),
                                               DeliveryEvent.outbox_id.in_(list(messages) or [0])))
    for event in session.exec(query):
        cid = messages.get(event.outbox_id) or customer_of_return.get(event.return_id)
        detail = scrub(event.detail or {}, patterns[cid])
        if detail != event.detail:
            event.detail = detail
            session.add(event)


def _delete_documents(session: Session, return_ids: list[int], storage: DocumentStorage) -> int:
    """Stored labels carry the sender's address: delete rows and files. A label asked for later is
    rendered again from the anonymised data (and a file removed before a rollback is simply re-rendered)."""
    owners = [f"return:{rid}" for rid in return_ids]
    deleted = 0
    for chunk in [owners[i:i + CHUNK] for i in range(0, len(owners), CHUNK)]:
        for doc in session.exec(select(StoredDocument).where(StoredDocument.owner.in_(chunk))):
            if doc.path:
                (storage.directory / doc.path).unlink(missing_ok=True)
            session.delete(doc)
            deleted += 1
    return deleted


def run_job(engine: Engine, now: datetime, settings: Settings) -> RetentionReport:
    """The daily scheduled run (one transaction)."""
    from portal.db import session_scope
    from portal.returns.labels import storage_for

    with session_scope(engine) as session:
        report = anonymise_expired(session, now, settings.retention_months, storage_for(settings))
    if report.count:
        log.info("GDPR retention: %d customers anonymised (no business since %s)", report.count,
                 report.cutoff.date().isoformat())
    return report

"""What the staff return page shows, and the support actions on it (notes, resending the status link).

No web imports: the controller parses the form, calls these, renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from portal import i18n
from portal.i18n import staff_text
from portal.models import (
    Customer,
    Exchange,
    Order,
    OrderLine,
    Refund,
    Return,
    ReturnEvent,
    ReturnLine,
    ReturnLineCustoms,
    utcnow,
)
from portal.outbox import service as outbox
from portal.returns import service
from portal.returns.refund_estimate import RefundEstimate, estimate_refund
from portal.staff.accounts import StaffPrincipal
from portal.staff.common import staff_event

NOTE_MAX = 2000
RESEND_LIMIT = 3  # status-link e-mails per return per hour
RESEND_WINDOW_S = 3600
NOTE_EVENT = "note.added"
RESEND_EVENT = "status_link.resent"

# Existing catalogue messages (templates/pages/status.html and find_order.html), so the e-mail
# reaches the customer in their language without new strings to translate.
_SUBJECT = "Return %(rma)s"
_BODY = "Follow your return and refund on your personal status page."


class SupportError(ValueError):
    """A support action refused; `fields` maps form fields to messages (English, for staff)."""

    def __init__(self, fields: dict[str, str], status_code: int = 400):
        super().__init__("; ".join(fields.values()))
        self.fields = fields
        self.status_code = status_code


@dataclass(frozen=True)
class StaffLine:
    line: ReturnLine
    order_line: OrderLine
    customs: ReturnLineCustoms | None

    @property
    def failed_rules(self) -> list[dict]:
        return [r for r in (self.customs.results if self.customs else []) if not r.get("ok")]


@dataclass(frozen=True)
class TimelineEntry:
    event: ReturnEvent
    is_staff: bool  # written by staff_event: carries staff_id, role, before and after
    before: dict
    after: dict
    details: dict  # the rest of the event data, for display


@dataclass(frozen=True)
class StaffReturnView:
    ret: Return
    order: Order
    customer: Customer
    lines: list[StaffLine]
    refunds: list[Refund]
    estimate: RefundEstimate | None
    exchanges: list[Exchange]
    timeline: list[TimelineEntry]  # newest first, every event (consumer, system and staff)
    status_url: str
    resends_last_hour: int

    @property
    def any_customs(self) -> bool:
        return any(l.customs for l in self.lines)


def status_url(base_url: str, ret: Return) -> str:
    return f"{base_url}/r/{ret.rma}/{ret.status_token}"


def _timeline_entry(event: ReturnEvent) -> TimelineEntry:
    data = dict(event.data or {})
    is_staff = "staff_id" in data
    before = data.pop("before", {}) if is_staff else {}
    after = data.pop("after", {}) if is_staff else {}
    if is_staff:
        data.pop("staff_id", None)
    return TimelineEntry(event, is_staff, before if isinstance(before, dict) else {"value": before},
                         after if isinstance(after, dict) else {"value": after}, data)


def build_staff_view(session: Session, ret: Return, tz: str, base_url: str) -> StaffReturnView:
    order = session.get(Order, ret.order_id)
    customer = session.get(Customer, order.customer_id)
    pairs = service.return_lines_with_order_lines(session, ret.id)
    customs = {
        row.return_line_id: row
        for row in session.exec(
            select(ReturnLineCustoms).where(ReturnLineCustoms.return_line_id.in_([rl.id for rl, _ in pairs] or [0]))
        )
    }
    refunds = list(session.exec(select(Refund).where(Refund.return_id == ret.id).order_by(Refund.id)))
    estimate = None
    if not refunds and ret.status not in service.INACTIVE_STATUSES:
        estimate = estimate_refund(session, ret, order, tz)
    exchanges = list(session.exec(select(Exchange).where(Exchange.return_id == ret.id).order_by(Exchange.id)))
    events = service.events_of(session, ret.id)
    return StaffReturnView(
        ret=ret,
        order=order,
        customer=customer,
        lines=[StaffLine(rl, ol, customs.get(rl.id)) for rl, ol in pairs],
        refunds=refunds,
        estimate=estimate,
        exchanges=exchanges,
        timeline=[_timeline_entry(e) for e in reversed(events)],
        status_url=status_url(base_url, ret),
        resends_last_hour=resends_since(session, ret, utcnow() - timedelta(seconds=RESEND_WINDOW_S)),
    )


# --- Notes ---------------------------------------------------------------------------------------


def add_note(session: Session, ret: Return, staff: StaffPrincipal, text: str) -> ReturnEvent:
    """A staff note on the timeline. Notes change nothing else, so they do not bump the version."""
    text = (text or "").strip()
    if not text:
        raise SupportError({"note": staff_text("Write the note before saving it.")})
    if len(text) > NOTE_MAX:
        raise SupportError({"note": staff_text("The note is too long (%(length)s characters; at most %(limit)s).",
                                               length=len(text), limit=NOTE_MAX)})
    return staff_event(session, ret, staff, NOTE_EVENT, text=text)


# --- Resending the status link ------------------------------------------------------------------


def resends_since(session: Session, ret: Return, since: datetime) -> int:
    return session.exec(
        select(sa.func.count()).select_from(ReturnEvent).where(
            ReturnEvent.return_id == ret.id, ReturnEvent.type == RESEND_EVENT, ReturnEvent.at >= since)
    ).one()


def resend_status_link(session: Session, ret: Return, staff: StaffPrincipal, base_url: str,
                       allowed_by_counter: bool, retry_after_s: int = 0) -> str:
    """Queue the status-link e-mail to the customer and note it on the timeline; returns the address.

    `allowed_by_counter` is the shared rate-limit counter's verdict (the caller hits it); the
    timeline is checked too, so "3 per hour" holds over any 60 minutes, not only per clock hour.
    The outbox key numbers the resends, so a double click queues one e-mail, not two.
    """
    recent = resends_since(session, ret, utcnow() - timedelta(seconds=RESEND_WINDOW_S))
    if not allowed_by_counter or recent >= RESEND_LIMIT:
        minutes = max(1, (retry_after_s + 59) // 60) if retry_after_s else 60
        raise SupportError({"resend": staff_text(
            "The status link was already sent %(limit)s times within the last hour. "
            "Try again in about %(minutes)s minutes, or give the customer the link yourself.",
            limit=RESEND_LIMIT, minutes=minutes,
        )}, status_code=429)
    order = session.get(Order, ret.order_id)
    customer = session.get(Customer, order.customer_id)
    if customer.anonymised_at is not None:
        raise SupportError({"resend": staff_text("This customer's data was anonymised (GDPR retention): there is no "
                                                 "address to send the link to.")}, status_code=409)
    destination = customer.email or order.email
    url = status_url(base_url, ret)
    sequence = session.exec(
        select(sa.func.count()).select_from(ReturnEvent).where(
            ReturnEvent.return_id == ret.id, ReturnEvent.type == RESEND_EVENT)
    ).one()
    subject = i18n.gettext(ret.language, _SUBJECT) % {"rma": ret.rma}
    body = f"{i18n.gettext(ret.language, _BODY)}\n\n{url}\n"
    message = outbox.enqueue(
        session, key=f"status-link:{ret.id}:{sequence}", channel="email", destination=destination,
        event_type=RESEND_EVENT, return_id=ret.id,
        payload={"subject": subject, "text": body, "language": ret.language, "status_url": url},
    )
    if message is None:
        raise SupportError({"resend": staff_text("The status link was just sent by someone else. Check the timeline.")},
                           status_code=409)
    staff_event(session, ret, staff, RESEND_EVENT, after={"to": destination, "outbox_id": message.id},
                sequence=sequence)
    return destination


def today_in(tz: str) -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(tz)).date()

"""Consumer-side return services: find the order, check the policy, register the return."""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from portal.config import Settings
from portal.models import (
    MerchantPolicy,
    Order,
    OrderLine,
    Return,
    ReturnEvent,
    ReturnLine,
    utcnow,
)
from portal.returns import identifiers, policy
from portal.returns.lifecycle import EXPIRABLE, can_advance

INACTIVE_STATUSES = ("cancelled", "rejected", "expired")
DEFAULT_REASONS = ("too_small", "too_large", "not_as_described", "damaged", "wrong_item", "changed_mind", "other")
DEFAULT_RESOLUTIONS = ("refund", "exchange", "store_credit")


class ReturnError(Exception):
    """A request the service refuses; `code` is a message code the page translates."""

    def __init__(self, code: str, fields: dict[str, str] | None = None):
        super().__init__(code)
        self.code = code
        self.fields = fields or {}


def get_policy(session: Session) -> MerchantPolicy:
    # The logo (up to 512 KB) loads only when something reads merchant.logo.
    found = session.exec(select(MerchantPolicy).options(defer(MerchantPolicy.logo)).order_by(MerchantPolicy.id)).first()
    return found or MerchantPolicy(
        refund_methods=list(DEFAULT_RESOLUTIONS), return_reasons=list(DEFAULT_REASONS)
    )


def policy_rules(merchant: MerchantPolicy) -> policy.PolicyRules:
    return policy.PolicyRules(
        return_window_days=merchant.return_window_days,
        non_returnable_categories=frozenset(merchant.non_returnable_categories),
        non_returnable_skus=frozenset(merchant.non_returnable_skus),
        resolutions=tuple(merchant.refund_methods) or ("refund",),
        reasons=tuple(merchant.return_reasons) or DEFAULT_REASONS,
    )


def _same(given: str, stored: str) -> bool:
    return hmac.compare_digest(given.encode(), stored.encode())


def normalise_postcode(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def find_order(session: Session, number: str, credential: str) -> Order | None:
    """The order when the number matches and the credential is its e-mail or postcode.

    Both comparisons always run, so timing does not tell which part was wrong.
    """
    credential = credential.strip()
    if not credential or len(credential) > 254:
        return None
    order = find_order_by_number(session, number)
    stored_email = order.email.casefold() if order else ""
    stored_postcode = normalise_postcode(order.postcode) if order else ""
    # An anonymised order has neither (both empty): nothing typed may match an empty value.
    email_ok = _same(credential.casefold(), stored_email or "\x00") and bool(stored_email)
    postcode_ok = _same(normalise_postcode(credential), stored_postcode or "\x00") and bool(stored_postcode)
    return order if order and (email_ok or postcode_ok) else None


def order_lines(session: Session, order_id: int) -> list[OrderLine]:
    return list(session.exec(select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line_no)))


def returned_quantities(session: Session, order_id: int) -> dict[int, int]:
    """Units already claimed per order line by returns that are still alive."""
    rows = session.exec(
        select(ReturnLine.order_line_id, sa.func.sum(ReturnLine.quantity))
        .join(Return, Return.id == ReturnLine.return_id)
        .where(Return.order_id == order_id, Return.status.not_in(INACTIVE_STATUSES))
        .group_by(ReturnLine.order_line_id)
    ).all()
    return {line_id: int(total or 0) for line_id, total in rows}


def order_eligibility(
    session: Session, order: Order, merchant: MerchantPolicy, today: date
) -> dict[int, policy.LineEligibility]:
    rules = policy_rules(merchant)
    returned = returned_quantities(session, order.id)
    return {
        line.id: policy.line_eligibility(
            policy.LineFacts(line.id, line.sku, line.category, line.quantity, line.returnable),
            rules,
            returned.get(line.id, 0),
            order.delivered_at,
            today,
        )
        for line in order_lines(session, order.id)
    }


@dataclass(frozen=True)
class ReturnRequest:
    order_id: int
    lines: Sequence[policy.RequestedLine]
    resolution: str
    language: str
    form_nonce: str
    actor: str = "consumer"


def idempotency_key(order_id: int, nonce: str) -> str:
    return hashlib.sha256(f"{order_id}:{nonce}".encode()).hexdigest()


def register_return(session: Session, request: ReturnRequest, today: date) -> Return:
    """Validate and create the return in one transaction; the same form twice gives the same return.

    The order row is written first so that concurrent registrations for one order queue up
    (row lock on PostgreSQL, the write lock on SQLite) and each sees the others' quantities.
    """
    key = idempotency_key(request.order_id, request.form_nonce)
    existing = session.exec(select(Return).where(Return.idempotency_key == key)).first()
    if existing:
        return existing
    session.exec(sa.update(Order).where(Order.id == request.order_id).values(updated_at=utcnow()))
    existing = session.exec(select(Return).where(Return.idempotency_key == key)).first()
    if existing:
        return existing
    order = session.get(Order, request.order_id)
    if order is None:
        raise ReturnError("order_not_found")
    merchant = get_policy(session)
    eligibility = order_eligibility(session, order, merchant, today)
    chosen, errors = policy.validate_selection(request.lines, eligibility, policy_rules(merchant), request.resolution)
    if errors:
        raise ReturnError("invalid_selection", errors)
    pending = policy.needs_approval(chosen, eligibility)
    ret = Return(
        rma=_unused_rma(session),
        order_id=order.id,
        status="pending_approval" if pending else "registered",
        status_reason=policy.OUTSIDE_WINDOW if pending else "",
        resolution=request.resolution,
        language=request.language,
        status_token=identifiers.new_status_token(),
        idempotency_key=key,
        is_norway=order.country == "NO",
    )
    session.add(ret)
    session.flush()
    for line in chosen:
        session.add(
            ReturnLine(
                return_id=ret.id,
                order_line_id=line.line_id,
                quantity=line.quantity,
                reason=line.reason,
                comment=line.comment,
                resolution=request.resolution,
            )
        )
    record_event(session, ret, "return.registered", request.actor, {
        "lines": [{"order_line_id": c.line_id, "quantity": c.quantity, "reason": c.reason} for c in chosen],
        "resolution": request.resolution,
    })
    if ret.is_norway:
        from portal.norway.customs_match import match_return  # here: customs_match imports this module

        match_return(session, ret, today)  # flushes the lines; flags lines, never the header status
    _announce_registration(session, ret, order, chosen)
    if pending:
        record_event(session, ret, "return.pending_approval", "system", {"reason": policy.OUTSIDE_WINDOW})
    else:
        advance(session, ret, "label_issued", "system", "label.issued")
    session.flush()
    return ret


def _announce_registration(session: Session, ret: Return, order: Order, chosen: Sequence[policy.ValidatedLine]) -> None:
    """The shop's systems hear about the new return through the outbox, in this same transaction."""
    from portal.outbox.service import enqueue_webhook_event  # here: keeps the service importable on its own

    enqueue_webhook_event(session, "return.registered", {
        "rma": ret.rma, "order_number": order.number, "status": ret.status, "resolution": ret.resolution,
        "lines": [{"order_line_id": c.line_id, "quantity": c.quantity, "reason": c.reason} for c in chosen],
    }, unique=f"return:{ret.id}", return_id=ret.id)


def _unused_rma(session: Session) -> str:
    for _ in range(20):
        rma = identifiers.new_rma()
        if session.exec(select(Return.id).where(Return.rma == rma)).first() is None:
            return rma
    raise RuntimeError("could not find a free RMA number")  # 1e9 space: practically unreachable


def record_event(session: Session, ret: Return, type_: str, actor: str, data: dict | None = None,
                 at: datetime | None = None) -> ReturnEvent:
    event = ReturnEvent(return_id=ret.id, type=type_, actor=actor, data=data or {}, at=at or utcnow())
    session.add(event)
    ret.updated_at = event.at
    if "ignored_state" in event.data:
        return event  # a late or backward event (see advance): on the timeline, but nobody is notified
    from portal.notify.hooks import on_return_event  # here: portal.notify imports this module

    on_return_event(session, ret, type_, event.at)  # same transaction: the outbox row commits with the event
    return event


def advance(session: Session, ret: Return, target: str, actor: str, event_type: str,
            data: dict | None = None, at: datetime | None = None) -> bool:
    """Move the header state forward and record why; a backward move is recorded but ignored."""
    moved = can_advance(ret.status, target)
    payload = dict(data or {}, **({"from": ret.status, "to": target} if moved else {"ignored_state": target}))
    if moved:
        ret.status = target
    record_event(session, ret, event_type, actor, payload, at)
    return moved


def cancel_return(session: Session, ret: Return, actor: str = "consumer") -> None:
    if not advance(session, ret, "cancelled", actor, "return.cancelled"):
        raise ReturnError("cannot_cancel")


def return_by_status_link(session: Session, rma: str, token: str) -> Return | None:
    """Look up by RMA, then compare the secret in constant time (pretix-style)."""
    rma = identifiers.normalise_rma(rma)
    if not identifiers.is_valid_rma(rma) or len(token) > 64:
        return None
    ret = session.exec(select(Return).where(Return.rma == rma)).first()
    if ret is None:
        identifiers.tokens_equal(token, "x" * 32)  # same work whether or not the RMA exists
        return None
    return ret if identifiers.tokens_equal(token, ret.status_token) else None


def return_lines_with_order_lines(session: Session, return_id: int) -> list[tuple[ReturnLine, OrderLine]]:
    return list(
        session.exec(
            select(ReturnLine, OrderLine)
            .join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
            .where(ReturnLine.return_id == return_id)
            .order_by(OrderLine.line_no)
        ).all()
    )


def events_of(session: Session, return_id: int) -> list[ReturnEvent]:
    return list(session.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id).order_by(ReturnEvent.at, ReturnEvent.id)))


def returns_by_order(session: Session, order_id: int) -> dict[int, list[ReturnLine]]:
    grouped: dict[int, list[ReturnLine]] = defaultdict(list)
    for line in session.exec(select(ReturnLine).join(Return).where(Return.order_id == order_id)):
        grouped[line.return_id].append(line)
    return grouped


def last_drop_off_day(created_at: datetime, settings: Settings) -> date:
    """The label's last day (merchant's time zone): registration day + RETURN_EXPIRY_DAYS. A return whose
    parcel was not sent by then expires the day after (portal.returns.expiry)."""
    return created_at.astimezone(ZoneInfo(settings.timezone)).date() + timedelta(days=settings.return_expiry_days)


def drop_off_deadline(ret: Return, settings: Settings) -> date | None:
    """The last drop-off day while it still matters (label not used yet), else None."""
    if ret.status not in EXPIRABLE:
        return None
    return last_drop_off_day(ret.created_at, settings)


def find_order_by_number(session: Session, number: str) -> Order | None:
    number = number.strip().upper()
    if not number or len(number) > 40:
        return None
    return session.exec(select(Order).where(sa.func.upper(Order.number) == number)).first()


def active_returns_of(session: Session, order_id: int) -> list[Return]:
    return list(session.exec(
        select(Return).where(Return.order_id == order_id, Return.status.not_in(INACTIVE_STATUSES)).order_by(Return.id)
    ))

"""Refunds and exchanges on the staff side: the itemised calculation, issuing, payment results, lists.

What is refunded comes from inspection: the ACCEPTED received quantity of each return line.
Units of a line with a recorded :class:`~portal.models.Exchange` are settled as an exchange
(only a cheaper replacement's difference is paid back); the rest of the line follows its
resolution (refund or store credit; an exchange line without a recorded replacement is a
like-for-like exchange worth nothing).

What earlier refunds of the same order (any return, any state) settled is read from their
stored breakdowns and folded with :meth:`refunds.PriorRefunds.including`, so the pure
calculator never pays a unit, a line or the delivery twice. A failed refund still claims its
units: it is retried or marked paid, never issued a second time.

Issuing is safe against double clicks and concurrent staff: the return row is written first
(row lock on PostgreSQL, the write lock on SQLite), the form carries the refund sequence it was
rendered for, and ``Refund.idempotency_key = f"{return.id}:{sequence}"`` is unique.

Every state change writes the return's timeline (the audit log) and its outbound webhook in
the same transaction (transactional outbox).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.numbers import get_currency_precision
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from portal.i18n import staff_text
from portal.models import Exchange, Order, OrderLine, Refund, Return, ReturnEvent, ReturnLine, utcnow
from portal.outbox.service import enqueue_webhook_event
from portal.returns import refunds, service
from portal.returns.refund_estimate import priced_order
from portal.staff.accounts import StaffPrincipal
from portal.staff.common import VersionConflict, staff_event
from portal.staff.vocabulary import term
from portal.numbers import is_digits

UNPAID_STATES = ("pending", "due", "requested")  # waiting for the shop to pay
REFUND_STATES = (*UNPAID_STATES, "issued", "failed")
REFUNDABLE_RESOLUTIONS = ("refund", "store_credit")
DUE_SOON_DAYS = 3
RECENT_DAYS = 14
MAX_REFERENCE = 100
MAX_REASON = 500
# Events that show the goods are here, for returns whose arrival time was not stamped on the header.
ARRIVAL_EVENTS = ("parcel.arrived", "return.arrived", "return.received", "parcel.received", "return.inspected")


# How many units of a line can still be exchanged (the message for an accepted line, and for one not inspected yet).
_ONLY_ACCEPTED = staff_text("Only %(available)s unit(s) of %(sku)s can still be exchanged (%(base)s returned and accepted, "
                            "%(settled)s already exchanged or refunded).")
_ONLY_RETURNED = staff_text("Only %(available)s unit(s) of %(sku)s can still be exchanged (%(base)s returned, "
                            "%(settled)s already exchanged or refunded).")


class RefundError(Exception):
    """A request refused for its input (HTTP 400): `fields` maps form fields to messages."""

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class RefundConflict(Exception):
    """A request that clashes with the current state (HTTP 409): already issued, not failed, ..."""


class RefundNotFound(LookupError):
    """No refund with that id (HTTP 404)."""


# --- money input ---------------------------------------------------------------------------------

_AMOUNT = re.compile(r"^\d{1,12}([.,]\d+)?$")


def parse_money(text: str, currency: str) -> int:
    """'120', '120.50' or '120,50' in major units → minor units; ValueError with a message otherwise."""
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    if not _AMOUNT.match(cleaned):
        raise ValueError(staff_text("Enter an amount like 120.50 (%(currency)s).", currency=currency))
    digits = get_currency_precision(currency)
    try:
        amount = Decimal(cleaned.replace(",", "."))
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes this
        raise ValueError(staff_text("Enter an amount like 120.50 (%(currency)s).", currency=currency)) from exc
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(staff_text("%(currency)s has %(digits)s decimals; %(amount)s has more.", currency=currency,
                                    digits=digits, amount=text.strip()))
    return int(minor)


def format_major(amount_minor: int, currency: str) -> str:
    """Minor units → the plain text a money field shows back ('120.50')."""
    digits = get_currency_precision(currency)
    return f"{Decimal(amount_minor).scaleb(-digits):.{digits}f}"


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeductionChoice:
    """What staff chose to deduct: the merchant's return-label fee and a diminished value."""

    return_fee: bool = False
    diminished_minor: int = 0
    diminished_reason: str = ""
    diminished_line_id: int | None = None  # order line id; None: the whole return


@dataclass(frozen=True)
class ExchangeInput:
    return_line_id: int
    replacement_sku: str
    replacement_name: str
    quantity: int
    unit_price_minor: int


# --- the plan: everything the refund page shows ----------------------------------------------------


@dataclass
class LineView:
    return_line: ReturnLine
    order_line: OrderLine
    accepted: int
    exchanges: list[Exchange]


@dataclass
class RefundPlan:
    ret: Return
    order: Order
    lines: list[LineView]
    refunds: list[Refund]  # of this return, oldest first
    exchanges: list[Exchange]
    entries: list[refunds.ReturnedQuantity]
    deductions: DeductionChoice
    fee_minor: int  # the merchant's return-label fee in the order's currency
    breakdown: refunds.RefundBreakdown | None
    error: str  # why nothing can be calculated (inconsistent data), shown to staff
    due_date: date | None
    due_explanation: str
    method: str
    sequence: int
    failed_refund: Refund | None
    pending_inspection: int  # lines not inspected yet

    @property
    def currency(self) -> str:
        return self.order.currency

    @property
    def total_minor(self) -> int:
        return self.breakdown.total_minor if self.breakdown else 0

    @property
    def can_issue(self) -> bool:
        return self.breakdown is not None and self.total_minor > 0 and self.failed_refund is None and not self.error


def local_today(tz: str, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(ZoneInfo(tz)).date()


def breakdown_from_dict(data: dict) -> refunds.RefundBreakdown:
    """A stored ``RefundBreakdown.to_dict()`` back as the calculator's object."""
    items = tuple(
        refunds.RefundItem(
            kind=item["kind"],
            line_id=item.get("line_id"),
            description=item.get("description", ""),
            quantity=item.get("quantity"),
            amount_minor=int(item.get("amount_minor", 0)),
            vat_rate=None if item.get("vat_rate") is None else Decimal(str(item["vat_rate"])),
            vat_minor=int(item.get("vat_minor", 0)),
            resolution=item.get("resolution"),
            customer_owes_minor=int(item.get("customer_owes_minor", 0)),
        )
        for item in data.get("items", [])
    )
    return refunds.RefundBreakdown(currency=data.get("currency", ""), items=items,
                                   total_minor=int(data.get("total_minor", sum(i.amount_minor for i in items))))


def order_refunds(db: Session, order_id: int) -> list[Refund]:
    return list(db.exec(
        select(Refund).join(Return, Return.id == Refund.return_id).where(Return.order_id == order_id).order_by(Refund.id)
    ))


def prior_refunds(stored: list[Refund]) -> refunds.PriorRefunds:
    """What the given refunds settled (every state: a failed refund is retried, not replaced)."""
    prior = refunds.PriorRefunds()
    for refund in stored:
        if refund.breakdown:
            prior = prior.including(breakdown_from_dict(refund.breakdown))
    return prior


def _covered(stored: list[Refund]) -> tuple[dict[int, int], dict[int, int]]:
    """Units per order line already settled by these refunds: (refunded/credited, exchanged)."""
    line_units: dict[int, int] = defaultdict(int)
    exchanged_units: dict[int, int] = defaultdict(int)
    for refund in stored:
        for item in (refund.breakdown or {}).get("items", []):
            if item.get("line_id") is None or not item.get("quantity"):
                continue
            if item["kind"] == "line":
                line_units[item["line_id"]] += int(item["quantity"])
            elif item["kind"] == "exchange_difference":
                exchanged_units[item["line_id"]] += int(item["quantity"])
    return line_units, exchanged_units


def accepted_quantity(line: ReturnLine) -> int:
    if line.acceptance != "accepted":
        return 0
    return max(0, min(line.received_quantity, line.quantity))


def _entries(lines: list[LineView], covered_line: dict[int, int], covered_exchange: dict[int, int]) -> list[refunds.ReturnedQuantity]:
    """What this return still has to settle: accepted units not covered by its earlier refunds."""
    covered_line, covered_exchange = defaultdict(int, covered_line), defaultdict(int, covered_exchange)
    entries: list[refunds.ReturnedQuantity] = []
    for view in lines:
        line_id = view.order_line.id
        left = view.accepted
        for exchange in view.exchanges:
            quantity = min(exchange.quantity, left)
            if quantity <= 0:
                break
            left -= quantity
            skip = min(quantity, covered_exchange[line_id])
            covered_exchange[line_id] -= skip
            if quantity - skip:
                entries.append(refunds.ReturnedQuantity(line_id, quantity - skip, "exchange", exchange.unit_price_minor))
        if left > 0:
            resolution = view.return_line.resolution if view.return_line.resolution in REFUNDABLE_RESOLUTIONS else "exchange"
            counter = covered_exchange if resolution == "exchange" else covered_line
            skip = min(left, counter[line_id])
            counter[line_id] -= skip
            if left - skip:
                entries.append(refunds.ReturnedQuantity(line_id, left - skip, resolution))
    return entries


def _deductions(choice: DeductionChoice, fee_minor: int) -> list[refunds.Deduction]:
    found = []
    if choice.return_fee and fee_minor > 0:
        found.append(refunds.Deduction("return_shipping", fee_minor, "Return label fee"))
    if choice.diminished_minor > 0:
        found.append(refunds.Deduction("diminished_value", choice.diminished_minor, choice.diminished_reason.strip(),
                                       choice.diminished_line_id))
    return found


def fee_for(db: Session, order: Order) -> int:
    return int(service.get_policy(db).return_fee_minor.get(order.currency, 0) or 0)


def default_deductions(db: Session, ret: Return) -> DeductionChoice:
    """The return-label fee is deducted by default, once per return, never for exchanges."""
    order = db.get(Order, ret.order_id)
    already = any(
        item.get("kind") == "deduction" and item.get("description", "").startswith("Return shipping fee")
        for refund in refunds_of(db, ret.id) for item in (refund.breakdown or {}).get("items", [])
    )
    return DeductionChoice(return_fee=fee_for(db, order) > 0 and ret.resolution != "exchange" and not already)


def refunds_of(db: Session, return_id: int) -> list[Refund]:
    return list(db.exec(select(Refund).where(Refund.return_id == return_id).order_by(Refund.id)))


def exchanges_of(db: Session, return_id: int) -> list[Exchange]:
    return list(db.exec(
        select(Exchange).where(Exchange.return_id == return_id, Exchange.state != "cancelled").order_by(Exchange.id)
    ))


def next_sequence(stored_for_return: list[Refund]) -> int:
    return sum(1 for refund in stored_for_return if refund.state != "failed") + 1


def due_date_for(db: Session, ret: Return, tz: str, goods_here: bool) -> tuple[date | None, str]:
    """The legal due date (refunds.legal_due_date) from the withdrawal, arrival and proof of sending.

    When the goods were received but the header has no arrival time, the first arrival or
    inspection event stands in for it (so the date does not wait for evidence already there).
    """
    arrived = ret.arrived_at
    note = ""
    if arrived is None and ret.proof_of_sending_at is None and goods_here:
        arrived = db.exec(
            select(sa.func.min(ReturnEvent.at)).where(ReturnEvent.return_id == ret.id, ReturnEvent.type.in_(ARRIVAL_EVENTS))
        ).first()
        if arrived is None:
            arrived, note = utcnow(), " (no arrival time recorded: counted from today)"
    due, explanation = refunds.legal_due_date(ret.created_at, arrived, ret.proof_of_sending_at, tz)
    return due, explanation + note


def build_plan(db: Session, ret: Return, choice: DeductionChoice | None, tz: str) -> RefundPlan:
    """The refund this return would bring now, itemised, with the chosen (or default) deductions."""
    order = db.get(Order, ret.order_id)
    all_exchanges = exchanges_of(db, ret.id)
    by_line: dict[int, list[Exchange]] = defaultdict(list)
    for exchange in all_exchanges:
        by_line[exchange.return_line_id].append(exchange)
    lines = [LineView(rl, ol, accepted_quantity(rl), by_line.get(rl.id, []))
             for rl, ol in service.return_lines_with_order_lines(db, ret.id)]
    stored_order = order_refunds(db, order.id)
    stored_return = [r for r in stored_order if r.return_id == ret.id]
    covered_line, covered_exchange = _covered(stored_return)
    entries = _entries(lines, covered_line, covered_exchange)
    choice = choice if choice is not None else default_deductions(db, ret)
    fee = fee_for(db, order)
    breakdown, error = None, ""
    if entries:
        try:
            breakdown = refunds.calculate_refund(
                priced_order(order, service.order_lines(db, order.id)), entries, _deductions(choice, fee),
                prior_refunds(stored_order),
            )
        except ValueError as exc:
            error = str(exc)
    due, explanation = due_date_for(db, ret, tz, goods_here=any(v.return_line.received_quantity > 0 for v in lines))
    return RefundPlan(
        ret=ret, order=order, lines=lines, refunds=stored_return, exchanges=all_exchanges, entries=entries,
        deductions=choice, fee_minor=fee, breakdown=breakdown, error=error, due_date=due, due_explanation=explanation,
        method="store_credit" if ret.resolution == "store_credit" else "original_payment",
        sequence=next_sequence(stored_return),
        failed_refund=next((r for r in stored_return if r.state == "failed"), None),
        pending_inspection=sum(1 for v in lines if v.return_line.acceptance == "pending"),
    )


def parse_deductions(form: dict[str, str], plan: RefundPlan) -> DeductionChoice:
    """The deduction fields of the refund form; RefundError with a message per field."""
    currency = plan.currency
    errors: dict[str, str] = {}
    amount_text = form.get("diminished_amount", "").strip()
    reason = form.get("diminished_reason", "").strip()
    line_text = form.get("diminished_line", "").strip()
    amount = 0
    if amount_text:
        try:
            amount = parse_money(amount_text, currency)
        except ValueError as exc:
            errors["diminished_amount"] = exc.args[0]
    if amount > 0 and not reason:
        errors["diminished_reason"] = staff_text("Say why the value is diminished (the customer sees this on the refund).")
    if len(reason) > MAX_REASON:
        errors["diminished_reason"] = staff_text("Keep the reason under %(limit)s characters.", limit=MAX_REASON)
    line_id = None
    if line_text:
        allowed = {v.order_line.id for v in plan.lines if v.accepted > 0}
        if not is_digits(line_text) or int(line_text) not in allowed:
            errors["diminished_line"] = staff_text("Choose one of the accepted lines of this return, or the whole return.")
        else:
            line_id = int(line_text)
    if errors:
        raise RefundError(staff_text("Check the deductions."), errors)
    return DeductionChoice(return_fee=form.get("return_fee") in ("1", "on", "yes", "true"),
                           diminished_minor=amount, diminished_reason=reason if amount else "",
                           diminished_line_id=line_id if amount else None)


# --- issuing ---------------------------------------------------------------------------------------


def _lock_return(db: Session, ret: Return) -> None:
    """Write the return row first: concurrent staff actions on it queue here and then see each other."""
    db.exec(sa.update(Return).where(Return.id == ret.id).values(updated_at=utcnow()))
    db.refresh(ret)


def _bump(db: Session, ret: Return) -> None:
    result = db.exec(sa.update(Return).where(Return.id == ret.id, Return.version == ret.version)
                     .values(version=ret.version + 1))
    if result.rowcount != 1:  # pragma: no cover - the row is locked by _lock_return
        raise VersionConflict(detail=staff_text("Someone else changed return %(rma)s at the same time. Reload and try again.",
                                         rma=ret.rma))
    ret.version += 1


def _check_version(ret: Return, submitted: str | None) -> None:
    if str(submitted or "").strip() != str(ret.version):
        raise VersionConflict(detail=staff_text(
            "Someone else changed return %(rma)s after you opened it (for example the inspection). "
            "Reload the page and check the refund again.", rma=ret.rma
        ))


def refund_payload(refund: Refund, ret: Return, order: Order) -> dict:
    return {
        "refund_id": refund.id,
        "rma": ret.rma,
        "order_number": order.number,
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "method": refund.method,
        "state": refund.state,
        "due_date": refund.due_date.isoformat() if refund.due_date else None,
        "attempt": refund.attempts,
        "items": (refund.breakdown or {}).get("items", []),
    }


def issue_refund(db: Session, ret: Return, staff: StaffPrincipal, choice: DeductionChoice, *, sequence: str | None,
                 version: str | None, shown_total: str | None, tz: str) -> Refund:
    """Create the refund for what is accepted and unsettled, in one transaction with its event and webhook.

    Raises RefundConflict (409) when a refund was issued since the form was rendered (double
    click, a colleague), VersionConflict (409) when the return changed, RefundError (400) when
    there is nothing to refund or the amount differs from the one staff saw.
    """
    _lock_return(db, ret)
    stored = refunds_of(db, ret.id)
    current = next_sequence(stored)
    if str(sequence or "").strip() != str(current):
        if any(r.state == "failed" for r in stored):
            raise RefundConflict(staff_text("A refund of this return failed: retry it or mark it paid instead of issuing a new one."))
        raise RefundConflict(staff_text("A refund for return %(rma)s was already issued after you opened the page. "
                                        "Nothing was paid twice; check the refunds below.", rma=ret.rma))
    _check_version(ret, version)
    plan = build_plan(db, ret, choice, tz)
    if plan.failed_refund is not None:
        raise RefundConflict(staff_text("A refund of this return failed: retry it or mark it paid instead of issuing a new one."))
    if choice.diminished_line_id is not None and choice.diminished_line_id not in {e.line_id for e in plan.entries}:
        raise RefundError(staff_text("Check the deductions."), {"diminished_line": staff_text("Nothing is left to refund on this line.")})
    if plan.error:
        raise RefundError(staff_text("The refund cannot be calculated: %(problem)s", problem=plan.error))
    if plan.breakdown is None or plan.total_minor <= 0:
        raise RefundError(_nothing_to_refund(plan))
    if str(shown_total or "").strip() != str(plan.total_minor):
        raise RefundError(staff_text("The deductions changed the amount. Check the new calculation below and issue again."),
                          {"form": "recalculated"})
    now = utcnow()
    refund = Refund(
        return_id=ret.id, amount_minor=plan.total_minor, currency=plan.currency, method=plan.method, state="requested",
        due_date=plan.due_date, breakdown=plan.breakdown.to_dict(), idempotency_key=f"{ret.id}:{current}",
        requested_by=staff.email, requested_at=now, attempts=1,
    )
    try:
        with db.begin_nested():
            db.add(refund)
    except IntegrityError as exc:  # a concurrent click won the same sequence
        raise RefundConflict(staff_text("A refund for return %(rma)s was already issued. Nothing was paid twice.",
                                        rma=ret.rma)) from exc
    _bump(db, ret)
    staff_event(db, ret, staff, "refund.requested", before={"refunds": len(stored)},
                after={"refund_id": refund.id, "amount_minor": refund.amount_minor, "currency": refund.currency},
                refund_id=refund.id, amount_minor=refund.amount_minor, currency=refund.currency, method=refund.method,
                due_date=refund.due_date.isoformat() if refund.due_date else None)
    if _fully_settled(db, ret, plan, refund):
        service.advance(db, ret, "resolved", staff.email, "return.resolved", {"refund_id": refund.id})
    enqueue_webhook_event(db, "refund.requested", refund_payload(refund, ret, plan.order),
                          unique=f"refund:{refund.id}", return_id=ret.id)
    db.flush()
    return refund


def _nothing_to_refund(plan: RefundPlan) -> str:
    if not any(v.accepted for v in plan.lines):
        if plan.pending_inspection:
            return staff_text("Nothing to refund yet: no line of this return has been accepted at inspection.")
        return staff_text("Nothing to refund: no line of this return was accepted at inspection.")
    if not plan.entries:
        return staff_text("Nothing left to refund: every accepted item of this return is already refunded.")
    return staff_text("Nothing to refund: the refund comes to 0 (like-for-like exchanges, or deductions take it all). No refund was created.")


def _fully_settled(db: Session, ret: Return, plan: RefundPlan, new: Refund) -> bool:
    """Every line inspected and fully received (or rejected), and every accepted unit covered by refunds."""
    if plan.pending_inspection:
        return False
    if any(v.return_line.acceptance == "accepted" and v.accepted < v.return_line.quantity for v in plan.lines):
        return False  # units still on their way: the return is not done
    covered_line, covered_exchange = _covered([*plan.refunds, new])
    return not _entries(plan.lines, covered_line, covered_exchange)


# --- payment results: the shop's callback, manual payment, retries ------------------------------------


def get_refund(db: Session, refund_id: int) -> tuple[Refund, Return, Order]:
    refund = db.get(Refund, refund_id)
    if refund is None:
        raise RefundNotFound(staff_text("No refund with id %(id)s.", id=refund_id))
    ret = db.get(Return, refund.return_id)
    return refund, ret, db.get(Order, ret.order_id)


def _swap_state(db: Session, refund: Refund, from_states: tuple[str, ...], **values) -> bool:
    """Compare-and-set on the refund's state: of two concurrent updates exactly one wins."""
    result = db.exec(sa.update(Refund).where(Refund.id == refund.id, Refund.state.in_(from_states)).values(**values))
    db.refresh(refund)
    return result.rowcount == 1


@dataclass(frozen=True)
class CallbackResult:
    refund: Refund
    changed: bool


def record_payment(db: Session, refund_id: int, reference: str | None, actor: str,
                   staff: StaffPrincipal | None = None) -> CallbackResult:
    """The refund was paid (shop callback "completed", or staff marking it paid by hand).

    Idempotent: paying an issued refund again changes nothing and records nothing.
    """
    refund, ret, order = get_refund(db, refund_id)
    reference = (reference or "").strip()[:MAX_REFERENCE] or None
    if refund.state == "issued":
        return CallbackResult(refund, False)
    before = {"state": refund.state, "external_ref": refund.external_ref}
    now = utcnow()
    if not _swap_state(db, refund, (*UNPAID_STATES, "failed"), state="issued", issued_at=now,
                       external_ref=reference or refund.external_ref, failure_reason=""):
        if refund.state == "issued":  # a concurrent callback got there first
            return CallbackResult(refund, False)
        raise RefundConflict(staff_text("Refund %(id)s is %(state)s; it cannot be marked paid.", id=refund.id,
                                        state=term("refund_state", refund.state)))  # pragma: no cover
    data = {"refund_id": refund.id, "amount_minor": refund.amount_minor, "currency": refund.currency,
            "external_ref": refund.external_ref}
    if staff is not None:
        staff_event(db, ret, staff, "refund.issued", before=before,
                    after={"state": "issued", "external_ref": refund.external_ref}, manual=True, **data)
    else:
        service.record_event(db, ret, "refund.issued", actor, data)
    enqueue_webhook_event(db, "refund.issued", refund_payload(refund, ret, order), unique=f"refund:{refund.id}",
                          return_id=ret.id)
    db.flush()
    return CallbackResult(refund, True)


def record_failure(db: Session, refund_id: int, reason: str | None, actor: str) -> CallbackResult:
    """The shop could not pay the refund. Same failure twice: nothing changes. A paid refund stays paid (409)."""
    refund, ret, _order = get_refund(db, refund_id)
    reason = (reason or "").strip()[:MAX_REASON] or "The shop reported the payment as failed."
    if refund.state == "failed":
        return CallbackResult(refund, False)
    if refund.state == "issued":
        raise RefundConflict(staff_text("Refund %(id)s is already paid; a failure can no longer be recorded.", id=refund.id))
    if not _swap_state(db, refund, UNPAID_STATES, state="failed", failure_reason=reason):
        if refund.state == "failed":
            return CallbackResult(refund, False)
        raise RefundConflict(staff_text("Refund %(id)s is already paid; a failure can no longer be recorded.", id=refund.id))
    service.record_event(db, ret, "refund.failed", actor, {
        "refund_id": refund.id, "amount_minor": refund.amount_minor, "currency": refund.currency, "reason": reason,
        "attempt": refund.attempts,
    })
    db.flush()
    return CallbackResult(refund, True)


def mark_paid(db: Session, refund_id: int, staff: StaffPrincipal, reference: str) -> Refund:
    reference = reference.strip()
    if not reference:
        raise RefundError(staff_text("Enter the payment reference."), {"reference": staff_text("Enter the payment reference (bank or PSP id).")})
    if len(reference) > MAX_REFERENCE:
        raise RefundError(staff_text("The reference is too long."), {"reference": staff_text("At most %(limit)s characters.", limit=MAX_REFERENCE)})
    refund, _ret, _order = get_refund(db, refund_id)
    if refund.state == "issued":
        raise RefundConflict(staff_text("Refund %(id)s is already paid (reference %(reference)s).", id=refund.id,
                                        reference=refund.external_ref or staff_text("none")))
    return record_payment(db, refund_id, reference, staff.email, staff=staff).refund


def retry_refund(db: Session, refund_id: int, staff: StaffPrincipal) -> Refund:
    """A failed refund goes back to the shop: state requested, one more attempt, the webhook sent again."""
    refund, ret, order = get_refund(db, refund_id)
    if refund.state != "failed":
        raise RefundConflict(staff_text("Refund %(id)s is %(state)s; only a failed refund can be retried.", id=refund.id,
                                        state=term("refund_state", refund.state)))
    failure = refund.failure_reason
    attempt = refund.attempts + 1
    if not _swap_state(db, refund, ("failed",), state="requested", attempts=attempt, failure_reason="",
                       requested_by=staff.email, requested_at=utcnow()):
        raise RefundConflict(staff_text("Refund %(id)s was retried by someone else at the same time.", id=refund.id))
    staff_event(db, ret, staff, "refund.retried", before={"state": "failed", "failure_reason": failure},
                after={"state": "requested", "attempts": attempt}, refund_id=refund.id)
    enqueue_webhook_event(db, "refund.requested", refund_payload(refund, ret, order),
                          unique=f"refund:{refund.id}:attempt:{attempt}", return_id=ret.id)
    db.flush()
    return refund


# --- exchanges -------------------------------------------------------------------------------------


def parse_exchange(form: dict[str, str], currency: str) -> ExchangeInput:
    errors: dict[str, str] = {}
    line_text = form.get("return_line_id", "").strip()
    sku = form.get("replacement_sku", "").strip()
    name = form.get("replacement_name", "").strip()
    quantity_text = form.get("quantity", "").strip()
    price_text = form.get("unit_price", "").strip()
    if not is_digits(line_text):
        errors["return_line_id"] = staff_text("Choose the returned line this replaces.")
    if not sku or len(sku) > 64:
        errors["replacement_sku"] = staff_text("Enter the replacement's SKU (at most 64 characters).")
    if not name or len(name) > 200:
        errors["replacement_name"] = staff_text("Enter the replacement's name (at most 200 characters).")
    quantity = 0
    if not is_digits(quantity_text) or not 1 <= int(quantity_text) <= 1000:
        errors["quantity"] = staff_text("Enter a whole number of units, at least 1.")
    else:
        quantity = int(quantity_text)
    price = 0
    try:
        price = parse_money(price_text, currency)
    except ValueError as exc:
        errors["unit_price"] = exc.args[0]
    if errors:
        raise RefundError(staff_text("Check the exchange."), errors)
    return ExchangeInput(int(line_text), sku, name, quantity, price)


def record_exchange(db: Session, ret: Return, staff: StaffPrincipal, data: ExchangeInput, *, version: str | None,
                    tz: str) -> Exchange:
    """Record the replacement for returned units; the refund later pays back a cheaper one's difference."""
    _lock_return(db, ret)
    _check_version(ret, version)
    plan = build_plan(db, ret, DeductionChoice(), tz)
    view = next((v for v in plan.lines if v.return_line.id == data.return_line_id), None)
    if view is None:
        raise RefundError(staff_text("Check the exchange."), {"return_line_id": staff_text("That line is not part of this return.")})
    order_line = view.order_line
    base = view.accepted if view.return_line.acceptance != "pending" else view.return_line.quantity
    covered_line, covered_exchange = _covered(plan.refunds)
    exchanged = sum(e.quantity for e in view.exchanges)
    settled = covered_line.get(order_line.id, 0) + max(exchanged, covered_exchange.get(order_line.id, 0))
    available = base - settled
    if view.return_line.acceptance == "rejected":
        raise RefundError(staff_text("Check the exchange."), {"return_line_id": staff_text("This line was rejected at inspection.")})
    if data.quantity > available:
        raise RefundError(staff_text("Check the exchange."), {
            "quantity": staff_text(_ONLY_ACCEPTED if view.return_line.acceptance == "accepted" else _ONLY_RETURNED,
                                   available=max(0, available), sku=order_line.sku, base=base, settled=settled)})
    priced = priced_order(plan.order, service.order_lines(db, plan.order.id))
    net_paid = refunds.line_net_paid(priced)[order_line.id]
    prior = prior_refunds(order_refunds(db, plan.order.id))
    first_unit = min(prior.units_settled(order_line.id) + max(0, exchanged - covered_exchange.get(order_line.id, 0)),
                     order_line.quantity - data.quantity)
    paid = refunds.units_value(net_paid, order_line.quantity, max(0, first_unit), data.quantity)
    exchange = Exchange(
        return_id=ret.id, return_line_id=view.return_line.id, replacement_sku=data.replacement_sku,
        replacement_name=data.replacement_name, quantity=data.quantity, unit_price_minor=data.unit_price_minor,
        price_difference_minor=paid - data.unit_price_minor * data.quantity, currency=plan.currency,
        created_by=staff.email,
    )
    db.add(exchange)
    db.flush()
    _bump(db, ret)
    after = {"exchange_id": exchange.id, "return_line_id": exchange.return_line_id, "sku": order_line.sku,
             "replacement_sku": exchange.replacement_sku, "quantity": exchange.quantity,
             "unit_price_minor": exchange.unit_price_minor, "price_difference_minor": exchange.price_difference_minor,
             "currency": exchange.currency}
    staff_event(db, ret, staff, "exchange.requested", before={}, after=after, exchange_id=exchange.id)
    enqueue_webhook_event(db, "exchange.requested", {
        **after, "replacement_name": exchange.replacement_name, "rma": ret.rma, "order_number": plan.order.number,
        "paid_minor": paid,
    }, unique=f"exchange:{exchange.id}", return_id=ret.id)
    db.flush()
    return exchange


# --- lists -----------------------------------------------------------------------------------------


@dataclass
class RefundRow:
    refund: Refund
    ret: Return
    order: Order


@dataclass
class AwaitingRow:
    ret: Return
    order: Order
    due_date: date | None
    explanation: str


@dataclass
class RefundLists:
    today: date
    overdue: list[RefundRow] = field(default_factory=list)
    due_soon: list[RefundRow] = field(default_factory=list)
    failed: list[RefundRow] = field(default_factory=list)
    recent: list[RefundRow] = field(default_factory=list)
    awaiting: list[AwaitingRow] = field(default_factory=list)


def refund_lists(db: Session, tz: str, now: datetime | None = None, limit: int = 200) -> RefundLists:
    """Overdue, due within 3 days, failed, recently paid; and inspected returns with no refund yet."""
    now = now or utcnow()
    today = local_today(tz, now)
    lists = RefundLists(today=today)
    base = select(Refund, Return, Order).join(Return, Return.id == Refund.return_id).join(Order, Order.id == Return.order_id)

    def rows(query) -> list[RefundRow]:
        return [RefundRow(r, ret, o) for r, ret, o in db.exec(query.limit(limit)).all()]

    lists.overdue = rows(base.where(Refund.state != "issued", Refund.due_date.is_not(None), Refund.due_date < today)
                         .order_by(Refund.due_date, Refund.id))
    lists.due_soon = rows(base.where(Refund.state.in_(UNPAID_STATES), Refund.due_date >= today,
                                     Refund.due_date <= today + timedelta(days=DUE_SOON_DAYS))
                          .order_by(Refund.due_date, Refund.id))
    lists.failed = rows(base.where(Refund.state == "failed").order_by(Refund.due_date, Refund.id))
    lists.recent = rows(base.where(Refund.state == "issued", Refund.issued_at >= now - timedelta(days=RECENT_DAYS))
                        .order_by(Refund.issued_at.desc(), Refund.id.desc()))
    waiting = db.exec(
        select(Return, Order).join(Order, Order.id == Return.order_id)
        .where(Return.status == "inspected", ~sa.exists().where(Refund.return_id == Return.id))
        .order_by(Return.created_at).limit(limit)
    ).all()
    for ret, order in waiting:
        due, explanation = due_date_for(db, ret, tz, goods_here=True)
        lists.awaiting.append(AwaitingRow(ret, order, due, explanation))
    lists.awaiting.sort(key=lambda row: (row.due_date or date.max, row.ret.id))
    return lists

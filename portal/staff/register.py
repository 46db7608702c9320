"""Support registers a return on a customer's behalf: the consumer's rules, the staff member as actor."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session

from portal.config import SUPPORTED_LANGUAGES
from portal.i18n import COUNTRY_LANGUAGE, staff_text
from portal.models import Customer, Order, OrderLine, Return
from portal.returns import policy, service
from portal.staff.accounts import StaffPrincipal
from portal.numbers import is_digits

# English for staff; the codes come from portal.returns.policy / service.
MESSAGES = {
    "quantity_not_number": staff_text("Enter the quantity as a whole number."),
    "quantity_too_many": staff_text("That is more than can still be returned for this line."),
    "line_not_returnable": staff_text("This line cannot be returned."),
    "reason_missing": staff_text("Choose a reason for this line."),
    "comment_too_long": staff_text("The comment is too long (at most 1000 characters)."),
    "resolution_invalid": staff_text("Choose one of the offered resolutions."),
    "nothing_chosen": staff_text("Enter a quantity for at least one line."),
    "unknown_line": staff_text("The form did not match the order. Reload the page and try again."),
    "form_expired": staff_text("The form expired. Reload the page and try again."),
    "order_not_found": staff_text("The order does not exist."),
    "language_invalid": staff_text("Choose one of the offered languages."),
}


def message_for(code: str) -> str:
    return MESSAGES.get(code) or staff_text("Check this field.")


@dataclass(frozen=True)
class RegisterForm:
    order: Order
    customer: Customer
    lines: list[OrderLine]
    eligibility: dict[int, policy.LineEligibility]
    reasons: tuple[str, ...]
    resolutions: tuple[str, ...]
    default_language: str
    existing: list[Return]
    outside_window: bool
    form_nonce: str


def default_language(order: Order, customer: Customer) -> str:
    if customer.language in SUPPORTED_LANGUAGES:
        return customer.language
    return COUNTRY_LANGUAGE.get(order.country, "en")


def register_form(session: Session, order: Order, today: date, nonce: str | None = None) -> RegisterForm:
    merchant = service.get_policy(session)
    rules = service.policy_rules(merchant)
    eligibility = service.order_eligibility(session, order, merchant, today)
    customer = session.get(Customer, order.customer_id)
    return RegisterForm(
        order=order, customer=customer, lines=service.order_lines(session, order.id), eligibility=eligibility,
        reasons=rules.reasons, resolutions=rules.resolutions, default_language=default_language(order, customer),
        existing=service.active_returns_of(session, order.id),
        outside_window=any(e.needs_approval for e in eligibility.values()),
        form_nonce=nonce or secrets.token_urlsafe(16),
    )


def _text(data: Mapping, name: str, limit: int) -> str:
    value = data.get(name, "")
    if isinstance(value, list):
        return ""
    return str(value).replace("\x00", "")[:limit]  # NUL is not storable in PostgreSQL text


def register_on_behalf(session: Session, order: Order, staff: StaffPrincipal, data: Mapping, today: date) -> Return:
    """Validate the form like the consumer page does and register the return with the staff member as actor.

    Raises service.ReturnError with field codes (translated by `message_for`).
    """
    line_ids = [line.id for line in service.order_lines(session, order.id)]
    for key in data:
        if key.startswith("qty_") and (not is_digits(key[4:]) or int(key[4:]) not in line_ids):
            raise service.ReturnError("unknown_line", {"form": "unknown_line"})
    language = _text(data, "language", 5)
    if language not in SUPPORTED_LANGUAGES:
        raise service.ReturnError("language_invalid", {"language": "language_invalid"})
    nonce = _text(data, "form_nonce", 64)
    if len(nonce) < 16:
        raise service.ReturnError("form_expired", {"form": "form_expired"})
    requested = [
        policy.RequestedLine(line_id, _text(data, f"qty_{line_id}", 6), _text(data, f"reason_{line_id}", 40),
                             _text(data, f"comment_{line_id}", 5000))
        for line_id in line_ids
    ]
    return service.register_return(session, service.ReturnRequest(
        order_id=order.id, lines=requested, resolution=_text(data, "resolution", 20), language=language,
        form_nonce=nonce, actor=staff.email,
    ), today)

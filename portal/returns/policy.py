"""Which order lines a consumer may return, and how many. Pure: no database, no web."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from portal.numbers import is_digits

# Codes rather than text: the pages translate them.
NOT_RETURNABLE_ITEM = "not_returnable_item"
NOT_RETURNABLE_CATEGORY = "not_returnable_category"
ALL_RETURNED = "all_returned"
NOT_DELIVERED = "not_delivered"
OUTSIDE_WINDOW = "outside_window"


@dataclass(frozen=True)
class PolicyRules:
    return_window_days: int
    non_returnable_categories: frozenset[str]
    non_returnable_skus: frozenset[str]
    resolutions: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class LineFacts:
    line_id: int
    sku: str
    category: str
    quantity: int
    returnable: bool


@dataclass(frozen=True)
class LineEligibility:
    line_id: int
    max_quantity: int  # how many the consumer may still return
    blocked_reason: str | None  # a code when the line cannot be chosen at all
    needs_approval: bool  # outside the window: allowed, but waits for the merchant

    @property
    def selectable(self) -> bool:
        return self.blocked_reason is None and self.max_quantity > 0


def window_deadline(delivered_at: datetime | None, window_days: int) -> date | None:
    return None if delivered_at is None else delivered_at.date() + timedelta(days=window_days)


def line_eligibility(
    line: LineFacts,
    rules: PolicyRules,
    already_returned: int,
    delivered_at: datetime | None,
    today: date,
) -> LineEligibility:
    remaining = max(line.quantity - already_returned, 0)
    blocked = None
    if not line.returnable or line.sku in rules.non_returnable_skus:
        blocked = NOT_RETURNABLE_ITEM
    elif line.category and line.category in rules.non_returnable_categories:
        blocked = NOT_RETURNABLE_CATEGORY
    elif remaining == 0:
        blocked = ALL_RETURNED
    deadline = window_deadline(delivered_at, rules.return_window_days)
    outside = deadline is not None and today > deadline
    return LineEligibility(line.line_id, 0 if blocked else remaining, blocked, outside)


@dataclass(frozen=True)
class RequestedLine:
    line_id: int
    quantity_text: str
    reason: str
    comment: str


@dataclass(frozen=True)
class ValidatedLine:
    line_id: int
    quantity: int
    reason: str
    comment: str


MAX_COMMENT = 1000


def validate_selection(
    requested: Sequence[RequestedLine],
    eligibility: Mapping[int, LineEligibility],
    rules: PolicyRules,
    resolution: str,
) -> tuple[list[ValidatedLine], dict[str, str]]:
    """Check the consumer's choices; return the clean lines and errors keyed by form field.

    Error values are message codes the page translates. A line with an empty quantity or 0
    is simply not chosen; at least one line must be.
    """
    errors: dict[str, str] = {}
    chosen: list[ValidatedLine] = []
    for req in requested:
        elig = eligibility.get(req.line_id)
        field = f"qty_{req.line_id}"
        if elig is None:
            errors["form"] = "unknown_line"
            continue
        text = req.quantity_text.strip()
        if text in ("", "0"):
            continue
        if not is_digits(text):
            errors[field] = "quantity_not_number"
            continue
        qty = int(text)
        if not elig.selectable:
            errors[field] = "line_not_returnable"
            continue
        if qty > elig.max_quantity:
            errors[field] = "quantity_too_many"
            continue
        if req.reason not in rules.reasons:
            errors[f"reason_{req.line_id}"] = "reason_missing"
            continue
        if len(req.comment) > MAX_COMMENT:
            errors[f"comment_{req.line_id}"] = "comment_too_long"
            continue
        chosen.append(ValidatedLine(req.line_id, qty, req.reason, req.comment.strip()))
    if resolution not in rules.resolutions:
        errors["resolution"] = "resolution_invalid"
    if not chosen and not errors:
        errors["form"] = "nothing_chosen"
    return chosen, errors


def needs_approval(chosen: Sequence[ValidatedLine], eligibility: Mapping[int, LineEligibility]) -> bool:
    return any(eligibility[line.line_id].needs_approval for line in chosen)

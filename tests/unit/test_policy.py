from datetime import date, datetime, timezone

from portal.returns import lifecycle, policy

RULES = policy.PolicyRules(30, frozenset({"giftcard"}), frozenset({"SKU-X"}), ("refund", "exchange"), ("too_small", "other"))
DELIVERED = datetime(2026, 10, 1, 12, tzinfo=timezone.utc)


def facts(**kw):
    base = dict(line_id=1, sku="TS-1", category="clothing", quantity=3, returnable=True)
    return policy.LineFacts(**{**base, **kw})


def test_window_is_counted_from_delivery_and_the_last_day_is_inside():
    inside = policy.line_eligibility(facts(), RULES, 0, DELIVERED, date(2026, 10, 31))
    outside = policy.line_eligibility(facts(), RULES, 0, DELIVERED, date(2026, 11, 1))
    assert inside.selectable and not inside.needs_approval
    assert outside.selectable and outside.needs_approval  # allowed, but waits for the merchant


def test_not_delivered_yet_is_not_outside_the_window():
    assert not policy.line_eligibility(facts(), RULES, 0, None, date(2030, 1, 1)).needs_approval


def test_blocked_lines_carry_their_reason():
    assert policy.line_eligibility(facts(returnable=False), RULES, 0, DELIVERED, date(2026, 10, 2)).blocked_reason == policy.NOT_RETURNABLE_ITEM
    assert policy.line_eligibility(facts(sku="SKU-X"), RULES, 0, DELIVERED, date(2026, 10, 2)).blocked_reason == policy.NOT_RETURNABLE_ITEM
    assert policy.line_eligibility(facts(category="giftcard"), RULES, 0, DELIVERED, date(2026, 10, 2)).blocked_reason == policy.NOT_RETURNABLE_CATEGORY
    done = policy.line_eligibility(facts(), RULES, 3, DELIVERED, date(2026, 10, 2))
    assert done.blocked_reason == policy.ALL_RETURNED and not done.selectable


def test_remaining_quantity_is_bought_minus_returned():
    assert policy.line_eligibility(facts(), RULES, 1, DELIVERED, date(2026, 10, 2)).max_quantity == 2


def _validate(qty: str, reason="too_small", resolution="refund", comment=""):
    elig = {1: policy.line_eligibility(facts(), RULES, 1, DELIVERED, date(2026, 10, 2))}
    return policy.validate_selection([policy.RequestedLine(1, qty, reason, comment)], elig, RULES, resolution)


def test_validate_selection_cases():
    assert _validate("2") == ([policy.ValidatedLine(1, 2, "too_small", "")], {})
    assert _validate("3")[1] == {"qty_1": "quantity_too_many"}
    assert _validate("x")[1] == {"qty_1": "quantity_not_number"}
    assert _validate("-1")[1] == {"qty_1": "quantity_not_number"}
    assert _validate("1.5")[1] == {"qty_1": "quantity_not_number"}
    assert _validate("0")[1] == {"form": "nothing_chosen"}
    assert _validate("")[1] == {"form": "nothing_chosen"}
    assert _validate("1", reason="")[1] == {"reason_1": "reason_missing"}
    assert _validate("1", resolution="store_credit")[1] == {"resolution": "resolution_invalid"}
    assert _validate("1", comment="x" * 1001)[1] == {"comment_1": "comment_too_long"}


def test_unknown_line_is_a_form_error():
    _, errors = policy.validate_selection([policy.RequestedLine(9, "1", "other", "")], {}, RULES, "refund")
    assert errors == {"form": "unknown_line"}


def test_lifecycle_only_moves_forward():
    assert lifecycle.can_advance("label_issued", "dropped_off")
    assert lifecycle.can_advance("in_transit", "arrived")
    assert not lifecycle.can_advance("arrived", "in_transit")
    assert lifecycle.can_advance("label_issued", "cancelled")
    assert not lifecycle.can_advance("in_transit", "cancelled")
    assert not lifecycle.can_advance("cancelled", "label_issued")
    assert lifecycle.can_advance("pending_approval", "rejected")
    assert not lifecycle.can_advance("label_issued", "rejected")

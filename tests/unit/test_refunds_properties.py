"""Properties of the refund calculator over random orders and random sequences of returns.

Totals are checked against figures computed here from the raw order (list
prices, discounts, shipping), not against the module's own helpers.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.returns.refunds import (
    Deduction,
    PricedOrder,
    PricedOrderLine,
    PriorRefunds,
    RefundBreakdown,
    ReturnedQuantity,
    calculate_refund,
    order_discount_shares,
    vat_summary,
)

NORDIC_RATES = [Decimal(r) for r in ("0.25", "0.255", "0.24", "0.15", "0.14", "0.12", "0.10", "0.06", "0")]
MAX_RETURNS = 4


@st.composite
def orders(draw) -> PricedOrder:
    lines = []
    for line_id in range(1, draw(st.integers(1, 6)) + 1):
        quantity = draw(st.integers(1, 5))
        unit_price = draw(st.integers(1, 500_000))
        line_discount = draw(st.integers(0, quantity * unit_price))
        rate = draw(st.sampled_from(NORDIC_RATES))
        lines.append(PricedOrderLine(line_id, f"SKU-{line_id}", quantity, unit_price, line_discount, rate))
    value_after_line_discounts = sum(line.value_after_line_discount_minor for line in lines)
    return PricedOrder(
        currency=draw(st.sampled_from(["SEK", "NOK", "EUR", "DKK"])),
        lines=tuple(lines),
        order_discount_minor=draw(st.integers(0, value_after_line_discounts)),
        shipping_paid_minor=draw(st.integers(0, 20_000)),
        standard_shipping_minor=draw(st.integers(0, 20_000)),
        shipping_vat_rate=draw(st.none() | st.sampled_from(NORDIC_RATES)),
    )


@dataclass(frozen=True)
class ReturnPlan:
    order: PricedOrder
    returns: list[list[ReturnedQuantity]]
    deductions: list[list[Deduction]]


@st.composite
def return_plans(draw, resolutions=("refund", "exchange", "store_credit"), with_deductions=True, return_all=False):
    """An order and a sequence of returns: every unit goes to one return step (or stays kept)."""
    order = draw(orders())
    steps = draw(st.integers(1, MAX_RETURNS))
    step_choices = st.integers(0, steps - 1) if return_all else st.none() | st.integers(0, steps - 1)
    returns: list[list[ReturnedQuantity]] = [[] for _ in range(steps)]
    for line in order.lines:
        units_by_step_and_resolution: dict[tuple[int, str], int] = defaultdict(int)
        for _ in range(line.quantity):
            step = draw(step_choices)
            if step is not None:
                units_by_step_and_resolution[(step, draw(st.sampled_from(resolutions)))] += 1
        for (step, resolution), quantity in sorted(units_by_step_and_resolution.items()):
            price = draw(st.none() | st.integers(0, 600_000)) if resolution == "exchange" else None
            returns[step].append(ReturnedQuantity(line.line_id, quantity, resolution, price))
    deductions = [
        draw(st.lists(deductions_for(returned), max_size=2)) if with_deductions and returned else []
        for returned in returns
    ]
    return ReturnPlan(order, returns, deductions)


def deductions_for(returned: list[ReturnedQuantity]):
    return st.builds(
        Deduction,
        kind=st.sampled_from(["return_shipping", "diminished_value", "restocking"]),
        amount_minor=st.integers(0, 300_000),
        reason=st.just("inspected"),
        line_id=st.none() | st.sampled_from(sorted({r.line_id for r in returned})),
    )


def run(plan: ReturnPlan) -> list[RefundBreakdown]:
    prior = PriorRefunds()
    breakdowns = []
    for returned, deductions in zip(plan.returns, plan.deductions):
        breakdown = calculate_refund(plan.order, returned, deductions, prior)
        breakdowns.append(breakdown)
        prior = prior.including(breakdown)
    return breakdowns


def lines_net_paid(order: PricedOrder) -> int:
    list_value = sum(line.unit_price_minor * line.quantity for line in order.lines)
    return list_value - sum(line.line_discount_minor for line in order.lines) - order.order_discount_minor


def refundable_shipping(order: PricedOrder) -> int:
    return min(order.shipping_paid_minor, order.standard_shipping_minor)


@settings(max_examples=300, deadline=None)
@given(return_plans())
def test_refunds_never_exceed_what_was_paid_and_totals_are_never_negative(plan):
    breakdowns = run(plan)
    # (c) every total >= 0, and equals its items
    for breakdown in breakdowns:
        assert breakdown.total_minor >= 0
        assert breakdown.total_minor == sum(item.amount_minor for item in breakdown.items)
        assert all(item.amount_minor >= 0 for item in breakdown.items if item.kind != "deduction")
        assert all(item.amount_minor <= 0 for item in breakdown.items if item.kind == "deduction")
        # priors kept with PriorRefunds.including are consistent: the unit allocation alone
        # stays within what is unrefunded, the safety limits never have to step in
        assert not any("still unrefunded" in item.description for item in breakdown.items)
    # (a) never more than the lines' net paid plus refundable shipping
    assert sum(b.total_minor for b in breakdowns) <= lines_net_paid(plan.order) + refundable_shipping(plan.order)
    # (d) per line, credited never exceeds what was paid for the line
    shares = order_discount_shares(plan.order)
    credited = defaultdict(int)
    for breakdown in breakdowns:
        for item in breakdown.items:
            if item.kind in ("line", "exchange_difference"):
                credited[item.line_id] += item.amount_minor
    for line in plan.order.lines:
        assert credited[line.line_id] <= line.value_after_line_discount_minor - shares[line.line_id]
    # shipping at most once, and only standard delivery
    shipping = sum(i.amount_minor for b in breakdowns for i in b.items if i.kind == "shipping")
    assert shipping in (0, refundable_shipping(plan.order))


@settings(max_examples=300, deadline=None)
@given(return_plans(resolutions=("refund", "store_credit"), with_deductions=False, return_all=True))
def test_returning_everything_refunds_exactly_net_paid_plus_standard_shipping(plan):
    breakdowns = run(plan)
    # (b) rounding neither loses nor creates a minor unit, whatever the split into returns
    assert sum(b.total_minor for b in breakdowns) == lines_net_paid(plan.order) + refundable_shipping(plan.order)
    # shipping comes with the return that completes the withdrawal, the last one that returns anything
    completing = max(step for step, returned in enumerate(plan.returns) if returned)
    shipping_steps = {step for step, b in enumerate(breakdowns) for i in b.items if i.kind == "shipping"}
    assert shipping_steps <= {completing}
    # the VAT summary covers every minor unit: per rate it is the VAT of the net amount at that rate
    for breakdown in breakdowns:
        summary = vat_summary(breakdown)
        assert all(vat >= 0 for vat in summary.values())
        assert sum(summary.values()) <= breakdown.total_minor


@settings(max_examples=300, deadline=None)
@given(return_plans(with_deductions=False))
def test_sequence_is_independent_of_how_units_are_split_over_returns(plan):
    """Refunded units of a line are worth the same in total whether returned at once or bit by bit."""
    breakdowns = run(plan)
    per_line_sequence = defaultdict(int)
    per_line_units = defaultdict(int)
    for breakdown in breakdowns:
        for item in breakdown.items:
            if item.kind == "line":
                per_line_sequence[item.line_id] += item.amount_minor
                per_line_units[item.line_id] += item.quantity
    # with refunds only in front, the same units returned at once are worth the same
    if all(r.resolution != "exchange" for returned in plan.returns for r in returned):
        at_once = calculate_refund(
            plan.order, [ReturnedQuantity(line_id, units, "refund") for line_id, units in per_line_units.items()]
        )
        for item in at_once.items:
            if item.kind == "line":
                assert item.amount_minor == per_line_sequence[item.line_id]


@settings(max_examples=300, deadline=None)
@given(orders())
def test_order_discount_shares_are_within_one_minor_unit_of_exact_proportion(order):
    shares = order_discount_shares(order)
    assert sum(shares.values()) == order.order_discount_minor
    weights = {line.line_id: line.value_after_line_discount_minor for line in order.lines}
    total_weight = sum(weights.values())
    for line_id, share in shares.items():
        exact = Fraction(order.order_discount_minor * weights[line_id], total_weight) if total_weight else Fraction(0)
        assert abs(share - exact) < 1
        assert share <= weights[line_id]

"""Worked examples for the refund calculator, with figures computed by hand."""

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from portal.returns.refunds import (
    Deduction,
    PricedOrder,
    PricedOrderLine,
    PriorRefunds,
    ReturnedQuantity,
    allocate_largest_remainder,
    calculate_refund,
    legal_due_date,
    line_net_paid,
    order_discount_shares,
    order_total_paid,
    vat_summary,
)

SE_STANDARD, SE_FOOD, SE_BOOKS = Decimal("0.25"), Decimal("0.12"), Decimal("0.06")
FI_STANDARD, FI_FOOD = Decimal("0.255"), Decimal("0.14")
NO_STANDARD = Decimal("0.25")


def swedish_order(shipping_paid: int = 4900, standard_shipping: int = 4900) -> PricedOrder:
    """2 jackets at 400.00, coffee 300.00 - 50.00 line discount, 3 books at 100.00; 100.00 voucher."""
    return PricedOrder(
        currency="SEK",
        lines=(
            PricedOrderLine(1, "JACKET", 2, 40000, 0, SE_STANDARD),
            PricedOrderLine(2, "COFFEE", 1, 30000, 5000, SE_FOOD),
            PricedOrderLine(3, "BOOK", 3, 10000, 0, SE_BOOKS),
        ),
        order_discount_minor=10000,
        shipping_paid_minor=shipping_paid,
        standard_shipping_minor=standard_shipping,
    )


def single_line_order(
    quantity: int = 1, unit_price: int = 49900, line_discount: int = 0, currency: str = "SEK", shipping: int = 0
) -> PricedOrder:
    return PricedOrder(
        currency=currency,
        lines=(PricedOrderLine(1, "SHOE-42", quantity, unit_price, line_discount, SE_STANDARD),),
        order_discount_minor=0,
        shipping_paid_minor=shipping,
        standard_shipping_minor=shipping,
    )


def everything(order: PricedOrder, resolution: str = "refund") -> list[ReturnedQuantity]:
    return [ReturnedQuantity(line.line_id, line.quantity, resolution) for line in order.lines]


def items_of(breakdown, kind):
    return [item for item in breakdown.items if item.kind == kind]


# --- discount proration --------------------------------------------------------------------


def test_order_discount_prorated_by_value_after_line_discount_with_largest_remainder():
    # weights 80000 / 25000 / 30000 of 135000: exact shares 5925.93, 1851.85, 2222.22;
    # floors 5925 + 1851 + 2222 = 9998, the two leftover öre go to the largest remainders.
    order = swedish_order()
    assert order_discount_shares(order) == {1: 5926, 2: 1852, 3: 2222}
    assert line_net_paid(order) == {1: 74074, 2: 23148, 3: 27778}
    assert sum(line_net_paid(order).values()) == 135000 - 10000
    assert order_total_paid(order) == 125000 + 4900


def test_allocate_largest_remainder_sums_exactly_and_breaks_ties_by_position():
    assert allocate_largest_remainder(10000, [1, 1, 1]) == [3334, 3333, 3333]
    assert allocate_largest_remainder(5, [0, 3, 0, 3]) == [0, 3, 0, 2]
    assert allocate_largest_remainder(0, [0, 0]) == [0, 0]
    with pytest.raises(ValueError, match="all zero"):
        allocate_largest_remainder(1, [0, 0])


def test_full_return_refunds_net_lines_and_standard_delivery_split_over_vat_rates():
    order = swedish_order()
    breakdown = calculate_refund(order, everything(order))

    lines = items_of(breakdown, "line")
    assert [(i.line_id, i.quantity, i.amount_minor, i.vat_minor) for i in lines] == [
        (1, 2, 74074, 14815),  # 74074 * 0.25 / 1.25 = 14814.8
        (2, 1, 23148, 2480),  # 23148 * 0.12 / 1.12 = 2480.14
        (3, 3, 27778, 1572),  # 27778 * 0.06 / 1.06 = 1572.34
    ]
    # 49.00 delivery follows the goods: split 74074 : 23148 : 27778 -> 29.04 / 9.07 / 10.89
    shipping = items_of(breakdown, "shipping")
    assert [(i.vat_rate, i.amount_minor, i.vat_minor) for i in shipping] == [
        (SE_STANDARD, 2904, 581),
        (SE_FOOD, 907, 97),
        (SE_BOOKS, 1089, 62),
    ]
    assert breakdown.total_minor == 125000 + 4900
    assert breakdown.currency == "SEK"
    # per rate on the net amount: 76978 @25%, 24055 @12%, 28867 @6%
    assert vat_summary(breakdown) == {SE_STANDARD: 15396, SE_FOOD: 2577, SE_BOOKS: 1634}


def test_finnish_rates_with_explicit_shipping_vat_rate():
    order = PricedOrder(
        currency="EUR",
        lines=(
            PricedOrderLine(1, "LAMP", 1, 12990, 0, FI_STANDARD),
            PricedOrderLine(2, "TEA", 2, 450, 0, FI_FOOD),
        ),
        order_discount_minor=0,
        shipping_paid_minor=590,
        standard_shipping_minor=590,
        shipping_vat_rate=FI_STANDARD,
    )
    breakdown = calculate_refund(order, everything(order))
    assert [(i.kind, i.amount_minor, i.vat_minor) for i in breakdown.items] == [
        ("line", 12990, 2639),  # 12990 * 0.255 / 1.255 = 2639.40
        ("line", 900, 111),  # 900 * 0.14 / 1.14 = 110.53
        ("shipping", 590, 120),  # one item at the stated rate: 119.88
    ]
    assert breakdown.total_minor == 14480
    assert vat_summary(breakdown) == {FI_STANDARD: 2759, FI_FOOD: 111}  # 13580 @25.5% = 2759.4


# --- shipping ----------------------------------------------------------------------------------


def test_partial_return_refunds_no_shipping():
    order = swedish_order()
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "refund")])
    assert items_of(breakdown, "shipping") == []
    assert breakdown.total_minor == 37037  # half of 74074
    assert vat_summary(breakdown) == {SE_STANDARD: 7407}


def test_shipping_refunded_with_the_return_that_completes_the_withdrawal():
    order = swedish_order()
    first = calculate_refund(order, [ReturnedQuantity(1, 1, "refund"), ReturnedQuantity(3, 2, "refund")])
    assert items_of(first, "shipping") == []
    # 27778 over 3 books: 9260, 9259, 9259
    assert first.total_minor == 37037 + 9260 + 9259

    prior = PriorRefunds().including(first)
    assert prior.per_line_units == {1: 1, 3: 2}
    assert prior.per_line_minor == {1: 37037, 3: 18519}
    assert prior.total_refunded_minor == first.total_minor

    second = calculate_refund(
        order,
        [ReturnedQuantity(1, 1, "refund"), ReturnedQuantity(2, 1, "refund"), ReturnedQuantity(3, 1, "refund")],
        prior=prior,
    )
    assert sum(i.amount_minor for i in items_of(second, "shipping")) == 4900
    assert first.total_minor + second.total_minor == 125000 + 4900


def test_only_standard_delivery_is_refunded_not_express():
    order = single_line_order(shipping=0)
    order = PricedOrder(order.currency, order.lines, 0, shipping_paid_minor=9900, standard_shipping_minor=4900)
    breakdown = calculate_refund(order, everything(order))
    [shipping] = items_of(breakdown, "shipping")
    assert shipping.amount_minor == 4900
    assert "express/extra delivery charge of 50.00 SEK not refunded" in shipping.description
    assert breakdown.total_minor == 49900 + 4900


def test_shipping_never_refunded_twice():
    order = single_line_order(quantity=2, unit_price=10000, shipping=4900)
    prior = PriorRefunds(
        per_line_units={1: 1}, per_line_minor={1: 10000}, shipping_refunded_minor=4900, total_refunded_minor=14900
    )
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=prior)
    assert items_of(breakdown, "shipping") == []
    assert breakdown.total_minor == 10000


def test_exchanged_units_are_not_withdrawn_so_no_shipping():
    order = swedish_order()
    returned = [
        ReturnedQuantity(1, 2, "refund"),
        ReturnedQuantity(2, 1, "exchange"),
        ReturnedQuantity(3, 3, "store_credit"),
    ]
    breakdown = calculate_refund(order, returned)
    assert items_of(breakdown, "shipping") == []
    assert breakdown.total_minor == 74074 + 27778


# --- exchanges and store credit -----------------------------------------------------------------


def test_exchange_for_cheaper_replacement_refunds_the_difference():
    order = single_line_order(unit_price=79900)
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "exchange", exchange_price_minor=59900)])
    [item] = breakdown.items
    assert item.kind == "exchange_difference"
    assert (item.amount_minor, item.vat_minor, item.customer_owes_minor) == (20000, 4000, 0)
    assert "difference refunded" in item.description
    assert breakdown.total_minor == 20000


def test_exchange_for_dearer_replacement_refunds_nothing_and_records_what_is_owed():
    # paid 800.00 - 80.00 line discount = 720.00; the replacement costs 750.00
    order = single_line_order(unit_price=80000, line_discount=8000)
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "exchange", exchange_price_minor=75000)])
    [item] = breakdown.items
    assert (item.amount_minor, item.customer_owes_minor) == (0, 3000)
    assert "customer pays difference of 30.00 SEK" in item.description
    assert breakdown.total_minor == 0
    assert breakdown.customer_owes_minor == 3000


def test_like_for_like_exchange_refunds_nothing():
    order = single_line_order(quantity=2)
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 2, "exchange")])
    [item] = breakdown.items
    assert (item.amount_minor, item.customer_owes_minor, item.quantity) == (0, 0, 2)
    assert "like for like" in item.description
    prior = PriorRefunds().including(breakdown)
    assert prior.per_line_exchanged_units == {1: 2}
    assert prior.per_line_units == {}
    with pytest.raises(ValueError, match="2 already exchanged, 0 left"):
        calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=prior)


def test_store_credit_is_included_in_total_and_says_so():
    order = single_line_order()
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "store_credit")])
    [item] = breakdown.items
    assert item.resolution == "store_credit"
    assert "store credit" in item.description
    assert breakdown.total_minor == 49900


# --- deductions ---------------------------------------------------------------------------------


def test_deductions_are_negative_items_with_their_reasons():
    order = single_line_order(unit_price=49900)
    breakdown = calculate_refund(
        order,
        [ReturnedQuantity(1, 1, "refund")],
        [
            Deduction("return_shipping", 5900, "Prepaid return label"),
            Deduction("diminished_value", 10000, "Tags removed, worn outdoors", line_id=1),
        ],
    )
    deductions = items_of(breakdown, "deduction")
    assert [(d.amount_minor, d.vat_minor, d.line_id) for d in deductions] == [
        (-5900, -1180, None),  # whole-return deduction, at the rate of what it draws on
        (-10000, -2000, 1),
    ]
    assert deductions[0].description == "Return shipping fee: Prepaid return label"
    assert deductions[1].description == "Diminished value: Tags removed, worn outdoors"
    assert breakdown.total_minor == 49900 - 15900
    assert vat_summary(breakdown) == {SE_STANDARD: 6800}  # 34000 * 0.2


def test_deduction_larger_than_refund_is_capped_and_says_so():
    order = single_line_order(unit_price=5000)
    breakdown = calculate_refund(
        order,
        [ReturnedQuantity(1, 1, "refund")],
        [Deduction("restocking", 8000, "Opened hygiene packaging"), Deduction("return_shipping", 5900, "Label")],
    )
    first, second = items_of(breakdown, "deduction")
    assert first.amount_minor == -5000
    assert "capped at 50.00 SEK of 80.00 SEK" in first.description
    assert second.amount_minor == 0
    assert "not applied" in second.description
    assert breakdown.total_minor == 0


def test_line_deduction_is_capped_at_that_lines_refund():
    order = PricedOrder(
        "SEK",
        (PricedOrderLine(1, "SOCKS", 1, 10000, 0, SE_STANDARD), PricedOrderLine(2, "BOOTS", 1, 50000, 0, SE_STANDARD)),
        0,
        0,
        0,
    )
    breakdown = calculate_refund(
        order, everything(order), [Deduction("diminished_value", 20000, "Worn", line_id=1)]
    )
    [deduction] = items_of(breakdown, "deduction")
    assert deduction.amount_minor == -10000
    assert "this line's refund cannot go below zero" in deduction.description
    assert breakdown.total_minor == 50000


# --- several returns of one order -----------------------------------------------------------------


def test_100_over_3_units_in_three_returns_sums_to_exactly_100():
    # 3 x 35.00 with a 5.00 line discount: 100.00 net over 3 units
    order = single_line_order(quantity=3, unit_price=3500, line_discount=500, currency="NOK")
    prior = PriorRefunds()
    amounts = []
    for _ in range(3):
        breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=prior)
        amounts.append(breakdown.total_minor)
        prior = prior.including(breakdown)
    assert amounts == [3334, 3333, 3333]
    assert sum(amounts) == 10000
    assert prior.per_line_units == {1: 3}
    with pytest.raises(ValueError, match="3 already refunded, 0 already exchanged, 0 left"):
        calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=prior)


def test_two_then_one_unit_also_sums_to_exactly_100():
    order = single_line_order(quantity=3, unit_price=3500, line_discount=500)
    first = calculate_refund(order, [ReturnedQuantity(1, 2, "refund")])
    second = calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=PriorRefunds().including(first))
    assert (first.total_minor, second.total_minor) == (6667, 3333)


def test_credits_limited_to_what_is_still_unrefunded_on_the_order():
    # 50.00 goodwill was paid outside the calculation and counted in total_refunded_minor
    order = single_line_order(quantity=2, unit_price=10000)
    prior = PriorRefunds(per_line_units={1: 1}, per_line_minor={1: 10000}, total_refunded_minor=15000)
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=prior)
    [item] = breakdown.items
    assert item.amount_minor == 5000
    assert "only 50.00 SEK is still unrefunded on the order" in item.description
    assert breakdown.total_minor == 5000


def test_line_credit_limited_to_what_is_still_unrefunded_on_the_line():
    order = single_line_order(quantity=2, unit_price=10000)
    prior = PriorRefunds(per_line_units={1: 1}, per_line_minor={1: 16000}, total_refunded_minor=16000)
    breakdown = calculate_refund(order, [ReturnedQuantity(1, 1, "refund")], prior=prior)
    assert breakdown.total_minor == 4000
    assert "limited to 40.00 SEK still unrefunded on this line" in breakdown.items[0].description


# --- refusing bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "deductions", "message"),
    [
        ([ReturnedQuantity(1, -1, "refund")], [], "returned quantity must be at least 1"),
        ([ReturnedQuantity(1, 0, "refund")], [], "returned quantity must be at least 1"),
        ([ReturnedQuantity(9, 1, "refund")], [], r"returned line 9 is not in the order \(lines: \[1, 2, 3\]\)"),
        ([ReturnedQuantity(1, 3, "refund")], [], r"line 1 \(JACKET\): cannot return 3 units; 2 bought"),
        ([ReturnedQuantity(1, 1, "refund"), ReturnedQuantity(1, 2, "store_credit")], [], "1 left in this return"),
        ([ReturnedQuantity(1, 1, "refund", exchange_price_minor=100)], [], "only for exchanges"),
        ([ReturnedQuantity(1, 1, "exchange", exchange_price_minor=-1)], [], "exchange price must not be negative"),
        ([ReturnedQuantity(1, 1, "repair")], [], "unknown resolution 'repair'"),
        ([ReturnedQuantity(1, 1, "refund")], [Deduction("restocking", -100, "x")], "amount must not be negative"),
        ([ReturnedQuantity(1, 1, "refund")], [Deduction("restocking", 100, "  ")], "a reason is required"),
        (
            [ReturnedQuantity(1, 1, "refund")],
            [Deduction("restocking", 100, "x", line_id=7)],
            "line 7 is not in the order",
        ),
        ([ReturnedQuantity(1, 1, "refund")], [Deduction("restocking", 100, "x", line_id=2)], "not part of this return"),
        ([ReturnedQuantity(1, 1, "refund")], [Deduction("penalty", 100, "x")], "unknown deduction kind"),
    ],
)
def test_invalid_returns_and_deductions_are_refused(returned, deductions, message):
    with pytest.raises(ValueError, match=message):
        calculate_refund(swedish_order(), returned, deductions)


def test_quantity_beyond_what_prior_returns_left_is_refused():
    prior = PriorRefunds(per_line_units={3: 2}, per_line_minor={3: 18519}, total_refunded_minor=18519)
    with pytest.raises(ValueError, match=r"line 3 \(BOOK\): cannot return 2 units; 3 bought, 2 already refunded"):
        calculate_refund(swedish_order(), [ReturnedQuantity(3, 2, "refund")], prior=prior)


@pytest.mark.parametrize(
    ("line", "order_discount", "shipping_paid", "message"),
    [
        (PricedOrderLine(1, "A", 1, -100, 0, SE_STANDARD), 0, 0, "unit price must not be negative"),
        (PricedOrderLine(1, "A", 0, 100, 0, SE_STANDARD), 0, 0, "quantity bought must be at least 1"),
        (PricedOrderLine(1, "A", 2, 100, 201, SE_STANDARD), 0, 0, "line discount 201 must be between 0 and .* 200"),
        (PricedOrderLine(1, "A", 2, 100, -1, SE_STANDARD), 0, 0, "line discount -1"),
        (PricedOrderLine(1, "A", 2, 100, 50, SE_STANDARD), 151, 0, "order discount 151 .* after line discounts 150"),
        (PricedOrderLine(1, "A", 2, 100, 0, SE_STANDARD), -5, 0, "order discount -5"),
        (PricedOrderLine(1, "A", 2, 100, 0, SE_STANDARD), 0, -1, "shipping amounts must not be negative"),
        (PricedOrderLine(1, "A", 2, 100, 0, Decimal("-0.25")), 0, 0, "VAT rate must be a non-negative"),
    ],
)
def test_invalid_orders_are_refused(line, order_discount, shipping_paid, message):
    order = PricedOrder("SEK", (line,), order_discount, shipping_paid, 0)
    with pytest.raises(ValueError, match=message):
        calculate_refund(order, [ReturnedQuantity(1, 1, "refund")])


def test_duplicate_line_ids_unknown_prior_lines_and_float_rates_are_refused():
    line = PricedOrderLine(1, "A", 1, 100, 0, SE_STANDARD)
    with pytest.raises(ValueError, match="line id 1 appears more than once"):
        calculate_refund(PricedOrder("SEK", (line, line), 0, 0, 0), [])
    with pytest.raises(ValueError, match="per_line_units refers to line 5"):
        calculate_refund(PricedOrder("SEK", (line,), 0, 0, 0), [], prior=PriorRefunds(per_line_units={5: 1}))
    with pytest.raises(ValueError, match="currency must be an ISO 4217 code"):
        calculate_refund(PricedOrder("kr", (line,), 0, 0, 0), [])
    with pytest.raises(TypeError, match="must be a Decimal, got float"):
        calculate_refund(PricedOrder("SEK", (PricedOrderLine(1, "A", 1, 100, 0, 0.25),), 0, 0, 0), [])


def test_breakdown_serialises_to_json_ready_dict():
    order = single_line_order(unit_price=79900)
    data = calculate_refund(order, [ReturnedQuantity(1, 1, "exchange", exchange_price_minor=99900)]).to_dict()
    assert data["total_minor"] == 0
    assert data["customer_owes_minor"] == 20000
    assert data["items"][0]["vat_rate"] == "0.25"
    assert data["vat"] == {"0.25": 0}


# --- legal due date ---------------------------------------------------------------------------------

UTC = timezone.utc


def test_due_14_days_after_withdrawal_when_goods_arrive_earlier():
    due, why = legal_due_date(
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC), datetime(2024, 3, 5, 9, 0, tzinfo=UTC), None
    )
    assert due == date(2024, 3, 15)
    assert why == "14 days after the withdrawal on 2024-03-01; the goods arrived on 2024-03-05"


def test_due_on_arrival_when_goods_arrive_after_the_14_days():
    due, why = legal_due_date(
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC), datetime(2024, 3, 20, 9, 0, tzinfo=UTC), None
    )
    assert due == date(2024, 3, 20)
    assert why.startswith("the goods arrived on 2024-03-20, after the 14 days")


def test_proof_of_sending_counts_when_earlier_than_arrival():
    due, why = legal_due_date(
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 3, 22, 9, 0, tzinfo=UTC),
        datetime(2024, 3, 18, 15, 0, tzinfo=UTC),
    )
    assert due == date(2024, 3, 18)
    assert "proof of sending was shown on 2024-03-18" in why


def test_due_date_not_fixed_without_goods_or_proof():
    due, why = legal_due_date(datetime(2024, 3, 1, 10, 0, tzinfo=UTC), None, None)
    assert due is None
    assert why == "waiting for the goods or proof of sending; at the earliest 2024-03-15"


def test_dates_are_taken_in_the_merchant_time_zone():
    # 23:30 UTC on 1 March is 00:30 on 2 March in Stockholm, 23:30 on 1 March in London
    withdrawn = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    arrived = datetime(2024, 3, 2, 8, 0, tzinfo=UTC)
    assert legal_due_date(withdrawn, arrived, None)[0] == date(2024, 3, 16)
    assert legal_due_date(withdrawn, arrived, None, tz="Europe/London")[0] == date(2024, 3, 15)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="withdrawn_at must be a time-zone-aware datetime"):
        legal_due_date(datetime(2024, 3, 1, 10, 0), None, None)
    with pytest.raises(ValueError, match="goods_arrived_at must be"):
        legal_due_date(datetime(2024, 3, 1, 10, 0, tzinfo=UTC), datetime(2024, 3, 5), None)

"""Refund calculation for returns, and the legal refund due date.

Pure code: stdlib and dataclasses only, no database, no web framework. Money is
integer minor units in the order's currency; VAT rates are ``Decimal``.

The calculation is itemised so that staff and the consumer see how the total
came about: one item per returned line (refund, store credit or exchange
difference), the standard delivery when the whole order is withdrawn, and every
deduction with its reason.

Rounding never loses or creates a minor unit:

* the order-level discount is prorated over the lines by their value after line
  discounts, with the largest-remainder method, so the shares add up exactly;
* a line's net paid amount is spread over its units the same way and the units
  are consumed in a fixed order (the first units carry the extra minor units:
  100.00 over 3 units is 33.34, 33.33, 33.33), so any sequence of partial returns
  of a whole line pays exactly the line's net paid amount.

What earlier returns of the same order already settled comes in as
:class:`PriorRefunds`; :meth:`PriorRefunds.including` folds a new breakdown into
it, which is how a caller keeps it up to date.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

Resolution = Literal["refund", "exchange", "store_credit"]
DeductionKind = Literal["return_shipping", "diminished_value", "restocking"]
ItemKind = Literal["line", "shipping", "deduction", "exchange_difference"]

RESOLUTIONS: frozenset[str] = frozenset({"refund", "exchange", "store_credit"})
DEDUCTION_KINDS: frozenset[str] = frozenset({"return_shipping", "diminished_value", "restocking"})

# Consumer Rights Directive 2011/83/EU art. 13(1): reimburse within 14 days.
WITHDRAWAL_REFUND_DAYS = 14


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PricedOrderLine:
    line_id: int
    sku: str
    quantity: int  # bought
    unit_price_minor: int  # VAT-inclusive list price per unit
    line_discount_minor: int  # total discount on the whole line (all units), >= 0
    vat_rate: Decimal  # e.g. Decimal("0.25")

    @property
    def value_after_line_discount_minor(self) -> int:
        return self.unit_price_minor * self.quantity - self.line_discount_minor


@dataclass(frozen=True)
class PricedOrder:
    currency: str
    lines: tuple[PricedOrderLine, ...]
    order_discount_minor: int  # voucher, prorated over the lines by their net value
    shipping_paid_minor: int  # what the customer paid for delivery
    standard_shipping_minor: int  # cheapest standard delivery; refunded at most this
    # VAT rate of the delivery as invoiced. None: delivery follows the goods and is
    # split over their VAT rates in proportion to the lines' net paid amounts.
    shipping_vat_rate: Decimal | None = None

    @property
    def refundable_shipping_minor(self) -> int:
        """Standard delivery: the part of the delivery charge that a full withdrawal refunds."""
        return min(self.shipping_paid_minor, self.standard_shipping_minor)


@dataclass(frozen=True)
class ReturnedQuantity:
    line_id: int
    quantity: int
    resolution: Resolution
    # Unit price charged for the replacement of an exchange. None: like-for-like
    # exchange (same item, other size/colour), nothing to settle.
    exchange_price_minor: int | None = None


@dataclass(frozen=True)
class Deduction:
    kind: DeductionKind
    amount_minor: int  # positive; shown as a negative item
    reason: str
    line_id: int | None = None  # None: applies to the whole return


@dataclass(frozen=True)
class PriorRefunds:
    """What earlier returns of the same order already settled.

    ``per_line_units``: units withdrawn (refunded or store credit) per line_id.
    ``per_line_exchanged_units``: units returned for exchange per line_id; they
    can not be returned again and do not count as withdrawn.
    ``per_line_minor``: money credited per line_id (line refunds and exchange
    differences), before deductions.
    ``total_refunded_minor``: everything paid out for the order, after deductions.
    """

    per_line_units: Mapping[int, int] = field(default_factory=dict)
    per_line_minor: Mapping[int, int] = field(default_factory=dict)
    shipping_refunded_minor: int = 0
    total_refunded_minor: int = 0
    per_line_exchanged_units: Mapping[int, int] = field(default_factory=dict)

    def units_settled(self, line_id: int) -> int:
        return self.per_line_units.get(line_id, 0) + self.per_line_exchanged_units.get(line_id, 0)

    def including(self, breakdown: RefundBreakdown) -> PriorRefunds:
        """These prior refunds plus the given breakdown, for the order's next return."""
        units = dict(self.per_line_units)
        exchanged = dict(self.per_line_exchanged_units)
        minor = dict(self.per_line_minor)
        shipping = self.shipping_refunded_minor
        for item in breakdown.items:
            if item.kind in ("line", "exchange_difference"):
                assert item.line_id is not None and item.quantity is not None
                settled = units if item.kind == "line" else exchanged
                settled[item.line_id] = settled.get(item.line_id, 0) + item.quantity
                minor[item.line_id] = minor.get(item.line_id, 0) + item.amount_minor
            elif item.kind == "shipping":
                shipping += item.amount_minor
        return PriorRefunds(
            per_line_units=units,
            per_line_minor=minor,
            shipping_refunded_minor=shipping,
            total_refunded_minor=self.total_refunded_minor + breakdown.total_minor,
            per_line_exchanged_units=exchanged,
        )


# --- output --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundItem:
    kind: ItemKind
    line_id: int | None
    description: str
    quantity: int | None
    amount_minor: int  # negative for deductions
    vat_rate: Decimal | None
    vat_minor: int  # VAT contained in amount_minor, same sign
    resolution: Resolution | None = None  # for line and exchange_difference items
    # A dearer exchange replacement: what the customer still has to pay. It is
    # collected elsewhere and never offset against this refund.
    customer_owes_minor: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "line_id": self.line_id,
            "description": self.description,
            "quantity": self.quantity,
            "amount_minor": self.amount_minor,
            "vat_rate": None if self.vat_rate is None else str(self.vat_rate),
            "vat_minor": self.vat_minor,
            "resolution": self.resolution,
            "customer_owes_minor": self.customer_owes_minor,
        }


@dataclass(frozen=True)
class RefundBreakdown:
    currency: str
    items: tuple[RefundItem, ...]
    total_minor: int

    @property
    def customer_owes_minor(self) -> int:
        return sum(item.customer_owes_minor for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (Decimal rates as strings), e.g. for storing with a Refund."""
        return {
            "currency": self.currency,
            "total_minor": self.total_minor,
            "customer_owes_minor": self.customer_owes_minor,
            "items": [item.to_dict() for item in self.items],
            "vat": {str(rate): vat for rate, vat in vat_summary(self).items()},
        }


# --- allocation helpers ----------------------------------------------------------------------


def allocate_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` that sum exactly to it.

    Each part is its exact share rounded down or up; the minor units left after
    rounding down go to the largest fractional remainders, ties to the earlier
    weight, so the result is deterministic.
    """
    if total < 0:
        raise ValueError(f"cannot allocate a negative amount ({total})")
    if any(weight < 0 for weight in weights):
        raise ValueError(f"allocation weights must not be negative: {list(weights)}")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total == 0:
            return [0] * len(weights)
        raise ValueError(f"cannot allocate {total} over weights that are all zero")
    parts = [total * weight // weight_sum for weight in weights]
    remainders = [total * weight % weight_sum for weight in weights]
    leftover = total - sum(parts)
    by_largest_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_largest_remainder[:leftover]:
        parts[index] += 1
    return parts


def order_discount_shares(order: PricedOrder) -> dict[int, int]:
    """The order discount prorated per line_id by value after line discounts."""
    _validate_order(order)
    weights = [line.value_after_line_discount_minor for line in order.lines]
    shares = allocate_largest_remainder(order.order_discount_minor, weights)
    return {line.line_id: share for line, share in zip(order.lines, shares)}


def line_net_paid(order: PricedOrder) -> dict[int, int]:
    """What the customer paid per line_id: list price x quantity - line discount - order discount share."""
    shares = order_discount_shares(order)
    return {line.line_id: line.value_after_line_discount_minor - shares[line.line_id] for line in order.lines}


def order_total_paid(order: PricedOrder) -> int:
    """Everything the customer paid: the lines' net paid amounts plus the delivery charge."""
    return sum(line_net_paid(order).values()) + order.shipping_paid_minor


def units_value(line_net_minor: int, quantity: int, first_unit: int, count: int) -> int:
    """Net paid for units ``first_unit`` .. ``first_unit + count - 1`` (0-based) of a line.

    The line's net paid is spread over its units by largest remainder; with equal
    weights that gives every unit the floor share and the first ``net % quantity``
    units one extra minor unit. Units are consumed in that order across returns.
    """
    if not 0 <= first_unit <= first_unit + count <= quantity:
        raise ValueError(f"units {first_unit}..{first_unit + count - 1} outside a line of {quantity} units")
    return _units_paid_through(line_net_minor, quantity, first_unit + count) - _units_paid_through(
        line_net_minor, quantity, first_unit
    )


def _units_paid_through(line_net_minor: int, quantity: int, units: int) -> int:
    base, extra = divmod(line_net_minor, quantity)
    return base * units + min(units, extra)


def vat_included(amount_minor: int, rate: Decimal) -> int:
    """VAT contained in a VAT-inclusive amount, rounded half away from zero."""
    vat = Decimal(amount_minor) * rate / (1 + rate)
    return int(vat.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def vat_summary(breakdown: RefundBreakdown) -> dict[Decimal, int]:
    """VAT included in the refund, per rate, highest rate first.

    Computed once per rate on the net amount refunded at that rate (credits minus
    deductions), as on a credit note; it can differ by a minor unit from the sum
    of the per-item VAT figures, which are rounded one by one.
    """
    net_by_rate: dict[Decimal, int] = defaultdict(int)
    for item in breakdown.items:
        if item.vat_rate is not None:
            net_by_rate[item.vat_rate] += item.amount_minor
    return {rate: vat_included(net_by_rate[rate], rate) for rate in sorted(net_by_rate, reverse=True)}


# --- the calculation ---------------------------------------------------------------------------


def calculate_refund(
    order: PricedOrder,
    returned: Sequence[ReturnedQuantity],
    deductions: Sequence[Deduction] = (),
    prior: PriorRefunds | None = None,
) -> RefundBreakdown:
    """Itemised refund for one return of ``order``.

    * Each returned quantity takes the next unsettled units of its line and is
      worth their net paid amount (see :func:`units_value`). Refund and store
      credit pay it; an exchange pays the difference to a cheaper replacement or
      records what the customer owes for a dearer one.
    * Standard delivery is refunded once, with the return after which every unit
      of every line is withdrawn (exchanged units are not withdrawn).
    * Line credits never exceed what is still unrefunded on the line, and all
      credits together never exceed what is still unrefunded on the order.
    * Deductions are negative items with their reason, capped so that neither the
      total nor a line (for a line deduction) goes below zero.

    Raises ValueError on inconsistent input: negative amounts or quantities,
    unknown line ids, or more units than are left to return on a line.
    """
    prior = prior if prior is not None else PriorRefunds()
    lines = _validate_order(order)
    _validate_prior(prior, lines)
    net_paid = line_net_paid(order)
    currency = order.currency

    settled_units = {line_id: prior.units_settled(line_id) for line_id in lines}
    withdrawn_units = {line_id: prior.per_line_units.get(line_id, 0) for line_id in lines}
    credited_minor = {line_id: prior.per_line_minor.get(line_id, 0) for line_id in lines}

    items: list[RefundItem] = []
    for entry in returned:
        line = _validated_entry(entry, lines, prior, settled_units)
        paid_for_units = units_value(net_paid[line.line_id], line.quantity, settled_units[line.line_id], entry.quantity)
        unrefunded_on_line = max(0, net_paid[line.line_id] - credited_minor[line.line_id])
        if entry.resolution == "exchange":
            item = _exchange_item(line, entry, paid_for_units, unrefunded_on_line, currency)
        else:
            item = _line_item(line, entry, paid_for_units, unrefunded_on_line, currency)
            withdrawn_units[line.line_id] += entry.quantity
        settled_units[line.line_id] += entry.quantity
        credited_minor[line.line_id] += item.amount_minor
        items.append(item)

    whole_order_withdrawn = all(withdrawn_units[line_id] == line.quantity for line_id, line in lines.items())
    if whole_order_withdrawn:
        items.extend(_shipping_items(order, net_paid, prior))

    unrefunded_on_order = order_total_paid(order) - prior.total_refunded_minor
    items = _limit_credits(items, unrefunded_on_order, currency)
    items.extend(_deduction_items(deductions, items, lines, currency))
    return RefundBreakdown(currency=currency, items=tuple(items), total_minor=sum(i.amount_minor for i in items))


def _line_item(
    line: PricedOrderLine, entry: ReturnedQuantity, paid_for_units: int, unrefunded_on_line: int, currency: str
) -> RefundItem:
    amount = min(paid_for_units, unrefunded_on_line)
    method = "store credit" if entry.resolution == "store_credit" else "refund"
    description = f"{_units_label(line, entry.quantity)}: {method}"
    if amount < paid_for_units:
        description += f" (limited to {_money(amount, currency)} still unrefunded on this line)"
    return RefundItem(
        kind="line",
        line_id=line.line_id,
        description=description,
        quantity=entry.quantity,
        amount_minor=amount,
        vat_rate=line.vat_rate,
        vat_minor=vat_included(amount, line.vat_rate),
        resolution=entry.resolution,
    )


def _exchange_item(
    line: PricedOrderLine, entry: ReturnedQuantity, paid_for_units: int, unrefunded_on_line: int, currency: str
) -> RefundItem:
    """Exchange: pay back a cheaper replacement's difference, record a dearer one's as owed.

    The comparison is with what the customer actually paid for the returned
    units (after discounts), so a discount is not paid out twice.
    """
    label = _units_label(line, entry.quantity)
    refund, owes = 0, 0
    if entry.exchange_price_minor is None:
        description = f"{label}: exchanged like for like, nothing to refund"
    else:
        replacement = entry.exchange_price_minor * entry.quantity
        priced = f"replacement {_money(replacement, currency)}, paid {_money(paid_for_units, currency)}"
        if replacement < paid_for_units:
            refund = min(paid_for_units - replacement, unrefunded_on_line)
            description = f"{label}: exchanged ({priced}), difference refunded"
            if refund < paid_for_units - replacement:
                description += f" (limited to {_money(refund, currency)} still unrefunded on this line)"
        elif replacement > paid_for_units:
            owes = replacement - paid_for_units
            description = f"{label}: exchanged ({priced}), customer pays difference of {_money(owes, currency)}"
        else:
            description = f"{label}: exchanged at the same price, nothing to refund"
    return RefundItem(
        kind="exchange_difference",
        line_id=line.line_id,
        description=description,
        quantity=entry.quantity,
        amount_minor=refund,
        vat_rate=line.vat_rate,
        vat_minor=vat_included(refund, line.vat_rate),
        resolution="exchange",
        customer_owes_minor=owes,
    )


def _shipping_items(order: PricedOrder, net_paid: Mapping[int, int], prior: PriorRefunds) -> list[RefundItem]:
    amount = max(0, order.refundable_shipping_minor - prior.shipping_refunded_minor)
    if amount == 0:
        return []
    description = "Standard delivery (whole order withdrawn)"
    extra = order.shipping_paid_minor - order.standard_shipping_minor
    if extra > 0:
        description += f"; express/extra delivery charge of {_money(extra, order.currency)} not refunded"
    if order.shipping_vat_rate is not None:
        parts = [(order.shipping_vat_rate, amount)]
    else:
        goods_by_rate: dict[Decimal, int] = defaultdict(int)
        for line in order.lines:
            goods_by_rate[line.vat_rate] += net_paid[line.line_id]
        parts = _split_by_rate(amount, goods_by_rate)
    multiple_rates = len(parts) > 1
    return [
        RefundItem(
            kind="shipping",
            line_id=None,
            description=f"{description} (part at VAT {_percent(rate)})" if multiple_rates else description,
            quantity=None,
            amount_minor=part,
            vat_rate=rate,
            vat_minor=vat_included(part, rate),
        )
        for rate, part in parts
    ]


def _limit_credits(items: list[RefundItem], unrefunded_on_order: int, currency: str) -> list[RefundItem]:
    """Reduce credits to what is still unrefunded on the order: shipping first, then later lines.

    With consistent prior refunds this never bites (line and shipping limits
    already keep within it); it guards against refunds recorded outside this
    calculation, e.g. goodwill payments counted in total_refunded_minor.
    """
    excess = sum(item.amount_minor for item in items) - max(0, unrefunded_on_order)
    if excess <= 0:
        return items
    limited = list(items)
    for index in sorted(range(len(limited)), key=lambda i: (limited[i].kind != "shipping", -i)):
        item = limited[index]
        cut = min(excess, item.amount_minor)
        if cut == 0:
            continue
        amount = item.amount_minor - cut
        limited[index] = replace(
            item,
            amount_minor=amount,
            vat_minor=vat_included(amount, item.vat_rate) if item.vat_rate is not None else 0,
            description=f"{item.description} (reduced by {_money(cut, currency)}: "
            f"only {_money(max(0, unrefunded_on_order), currency)} is still unrefunded on the order)",
        )
        excess -= cut
        if excess == 0:
            break
    return limited


def _deduction_items(
    deductions: Sequence[Deduction], credits: Sequence[RefundItem], lines: Mapping[int, PricedOrderLine], currency: str
) -> list[RefundItem]:
    """Deductions as negative items, each capped so nothing it draws on goes below zero.

    A line deduction draws on that line's credit in this return; a deduction for
    the whole return is split over the VAT rates of what is left to draw on.
    """
    left_total = sum(item.amount_minor for item in credits)
    left_by_line: dict[int, int] = defaultdict(int)
    left_by_rate: dict[Decimal, int] = defaultdict(int)
    for item in credits:
        if item.line_id is not None:
            left_by_line[item.line_id] += item.amount_minor
        if item.vat_rate is not None:
            left_by_rate[item.vat_rate] += item.amount_minor
    returned_line_ids = {item.line_id for item in credits if item.kind in ("line", "exchange_difference")}

    items: list[RefundItem] = []
    for deduction in deductions:
        _validate_deduction(deduction, lines, returned_line_ids)
        if deduction.line_id is not None:
            rate = lines[deduction.line_id].vat_rate
            cap = min(left_total, left_by_line[deduction.line_id], left_by_rate[rate])
            applied = min(deduction.amount_minor, cap)
            parts = [(rate, applied)]
            left_by_line[deduction.line_id] -= applied
        else:
            applied = min(deduction.amount_minor, left_total)
            parts = _split_by_rate(applied, left_by_rate) if applied else [(_main_rate(left_by_rate, lines), 0)]
        left_total -= applied
        for rate, part in parts:
            left_by_rate[rate] -= part
        description = _deduction_description(deduction, applied, currency)
        multiple_rates = len(parts) > 1
        items.extend(
            RefundItem(
                kind="deduction",
                line_id=deduction.line_id,
                description=f"{description} (part at VAT {_percent(rate)})" if multiple_rates else description,
                quantity=None,
                amount_minor=-part,
                vat_rate=rate,
                vat_minor=-vat_included(part, rate),
            )
            for rate, part in parts
        )
    return items


_DEDUCTION_LABELS = {
    "return_shipping": "Return shipping fee",
    "diminished_value": "Diminished value",
    "restocking": "Restocking fee",
}


def _deduction_description(deduction: Deduction, applied: int, currency: str) -> str:
    description = f"{_DEDUCTION_LABELS[deduction.kind]}: {deduction.reason.strip()}"
    if applied == 0 and deduction.amount_minor > 0:
        return f"{description} (not applied: nothing left to deduct from, the refund cannot go below zero)"
    if applied < deduction.amount_minor:
        target = "this line's refund" if deduction.line_id is not None else "the refund"
        return (
            f"{description} (capped at {_money(applied, currency)} of {_money(deduction.amount_minor, currency)}: "
            f"{target} cannot go below zero)"
        )
    return description


def _split_by_rate(amount: int, weights_by_rate: Mapping[Decimal, int]) -> list[tuple[Decimal, int]]:
    """Split an amount over VAT rates in proportion to the weights, highest rate first; drops empty parts."""
    rates = sorted((rate for rate, weight in weights_by_rate.items() if weight > 0), reverse=True)
    if not rates:
        return [(max(weights_by_rate, default=Decimal(0)), amount)]
    parts = allocate_largest_remainder(amount, [weights_by_rate[rate] for rate in rates])
    return [(rate, part) for rate, part in zip(rates, parts) if part > 0] or [(rates[0], 0)]


def _main_rate(weights_by_rate: Mapping[Decimal, int], lines: Mapping[int, PricedOrderLine]) -> Decimal:
    if weights_by_rate:
        return max(weights_by_rate, key=lambda rate: (weights_by_rate[rate], rate))
    return max(line.vat_rate for line in lines.values())


# --- validation --------------------------------------------------------------------------------


def _validate_order(order: PricedOrder) -> dict[int, PricedOrderLine]:
    if not order.lines:
        raise ValueError("order has no lines")
    if len(order.currency) != 3 or not order.currency.isalpha() or not order.currency.isupper():
        raise ValueError(f"currency must be an ISO 4217 code like 'SEK', got {order.currency!r}")
    lines: dict[int, PricedOrderLine] = {}
    for line in order.lines:
        if line.line_id in lines:
            raise ValueError(f"line id {line.line_id} appears more than once in the order")
        if line.quantity < 1:
            raise ValueError(f"line {line.line_id}: quantity bought must be at least 1, got {line.quantity}")
        if line.unit_price_minor < 0:
            raise ValueError(f"line {line.line_id}: unit price must not be negative, got {line.unit_price_minor}")
        if not 0 <= line.line_discount_minor <= line.unit_price_minor * line.quantity:
            raise ValueError(
                f"line {line.line_id}: line discount {line.line_discount_minor} must be between 0 and "
                f"the line's value {line.unit_price_minor * line.quantity}"
            )
        _validate_rate(line.vat_rate, f"line {line.line_id}: VAT rate")
        lines[line.line_id] = line
    value = sum(line.value_after_line_discount_minor for line in order.lines)
    if not 0 <= order.order_discount_minor <= value:
        raise ValueError(
            f"order discount {order.order_discount_minor} must be between 0 and "
            f"the lines' value after line discounts {value}"
        )
    if order.shipping_paid_minor < 0 or order.standard_shipping_minor < 0:
        raise ValueError(
            f"shipping amounts must not be negative (paid {order.shipping_paid_minor}, "
            f"standard {order.standard_shipping_minor})"
        )
    if order.shipping_vat_rate is not None:
        _validate_rate(order.shipping_vat_rate, "shipping VAT rate")
    return lines


def _validate_rate(rate: Decimal, what: str) -> None:
    if not isinstance(rate, Decimal):
        raise TypeError(f"{what} must be a Decimal, got {type(rate).__name__}")
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"{what} must be a non-negative number, got {rate}")


def _validate_prior(prior: PriorRefunds, lines: Mapping[int, PricedOrderLine]) -> None:
    for name in ("per_line_units", "per_line_minor", "per_line_exchanged_units"):
        for line_id, value in getattr(prior, name).items():
            if line_id not in lines:
                raise ValueError(f"prior refunds: {name} refers to line {line_id}, which is not in the order")
            if value < 0:
                raise ValueError(f"prior refunds: {name}[{line_id}] must not be negative, got {value}")
    for line_id, line in lines.items():
        if prior.units_settled(line_id) > line.quantity:
            raise ValueError(
                f"prior refunds: line {line_id} has {prior.units_settled(line_id)} units settled "
                f"but only {line.quantity} were bought"
            )
    if prior.shipping_refunded_minor < 0 or prior.total_refunded_minor < 0:
        raise ValueError("prior refunds: shipping_refunded_minor and total_refunded_minor must not be negative")


def _validated_entry(
    entry: ReturnedQuantity,
    lines: Mapping[int, PricedOrderLine],
    prior: PriorRefunds,
    settled_units: Mapping[int, int],
) -> PricedOrderLine:
    line = lines.get(entry.line_id)
    if line is None:
        raise ValueError(f"returned line {entry.line_id} is not in the order (lines: {sorted(lines)})")
    if entry.resolution not in RESOLUTIONS:
        raise ValueError(f"line {entry.line_id}: unknown resolution {entry.resolution!r}")
    if entry.quantity < 1:
        raise ValueError(f"line {entry.line_id}: returned quantity must be at least 1, got {entry.quantity}")
    if entry.exchange_price_minor is not None:
        if entry.resolution != "exchange":
            raise ValueError(f"line {entry.line_id}: exchange_price_minor is only for exchanges")
        if entry.exchange_price_minor < 0:
            raise ValueError(f"line {entry.line_id}: exchange price must not be negative")
    left = line.quantity - settled_units[line.line_id]
    if entry.quantity > left:
        raise ValueError(
            f"line {line.line_id} ({line.sku}): cannot return {entry.quantity} units; {line.quantity} bought, "
            f"{prior.per_line_units.get(line.line_id, 0)} already refunded, "
            f"{prior.per_line_exchanged_units.get(line.line_id, 0)} already exchanged, {left} left in this return"
        )
    return line


def _validate_deduction(
    deduction: Deduction, lines: Mapping[int, PricedOrderLine], returned_line_ids: set[int | None]
) -> None:
    if deduction.kind not in DEDUCTION_KINDS:
        raise ValueError(f"unknown deduction kind {deduction.kind!r}")
    if deduction.amount_minor < 0:
        raise ValueError(f"deduction {deduction.kind}: amount must not be negative, got {deduction.amount_minor}")
    if not deduction.reason.strip():
        raise ValueError(f"deduction {deduction.kind}: a reason is required")
    if deduction.line_id is not None:
        if deduction.line_id not in lines:
            raise ValueError(f"deduction {deduction.kind}: line {deduction.line_id} is not in the order")
        if deduction.line_id not in returned_line_ids:
            raise ValueError(f"deduction {deduction.kind}: line {deduction.line_id} is not part of this return")


# --- formatting --------------------------------------------------------------------------------

# ISO 4217 currencies without minor units that a Nordic shop may sell in.
_ZERO_DECIMAL_CURRENCIES = frozenset({"ISK", "JPY", "KRW", "CLP", "HUF"})


def _money(amount_minor: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL_CURRENCIES:
        return f"{amount_minor} {currency}"
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d} {currency}"


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def _units_label(line: PricedOrderLine, quantity: int) -> str:
    return f"{line.sku} x{quantity} of {line.quantity} (line {line.line_id})"


# --- legal due date ----------------------------------------------------------------------------


def legal_due_date(
    withdrawn_at: datetime,
    goods_arrived_at: datetime | None,
    proof_of_sending_at: datetime | None,
    tz: str = "Europe/Stockholm",
) -> tuple[date | None, str]:
    """The last day on which the refund may be paid, and a short English explanation.

    Reading of the rule (Consumer Rights Directive 2011/83/EU art. 13, as in the
    Swedish distansavtalslagen, Norwegian angrerettloven, Finnish
    kuluttajansuojalaki): the trader reimburses within 14 days of the day the
    withdrawal is registered, and may withhold the reimbursement until the goods
    are back or the consumer has shown proof of sending them (here: the first
    carrier scan), whichever comes first. So:

    * the 14 days run from the day after the withdrawal (the day itself does not
      count, Regulation 1182/71), so the refund is due on withdrawal date + 14;
    * once goods or proof exist, due = the later of that date and the earlier of
      arrival and proof;
    * with neither yet, the date is not fixed: ``(None, reason)`` with the
      earliest possible due date in the reason.

    Dates are calendar dates in the merchant's time zone ``tz``. Not modelled:
    when the trader offered to collect the goods, there is no right to withhold.
    """
    zone = ZoneInfo(tz)
    withdrawal_day = _local_date(withdrawn_at, zone, "withdrawn_at")
    fourteen_days = withdrawal_day + timedelta(days=WITHDRAWAL_REFUND_DAYS)
    evidence = [
        (_local_date(moment, zone, name), label)
        for moment, name, label in (
            (goods_arrived_at, "goods_arrived_at", "the goods arrived"),
            (proof_of_sending_at, "proof_of_sending_at", "proof of sending was shown"),
        )
        if moment is not None
    ]
    if not evidence:
        return None, f"waiting for the goods or proof of sending; at the earliest {fourteen_days.isoformat()}"
    evidence_day, what = min(evidence, key=lambda pair: pair[0])
    if evidence_day <= fourteen_days:
        return fourteen_days, (
            f"14 days after the withdrawal on {withdrawal_day.isoformat()}; "
            f"{what} on {evidence_day.isoformat()}"
        )
    return evidence_day, (
        f"{what} on {evidence_day.isoformat()}, after the 14 days from the withdrawal on "
        f"{withdrawal_day.isoformat()} ended; the refund could be withheld until then"
    )


def _local_date(moment: datetime, zone: ZoneInfo, name: str) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(zone).date()

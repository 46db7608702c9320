"""Adapts the stored order and returns to the pure refund calculator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, select

from portal.models import Order, OrderLine, Return, ReturnLine
from portal.returns import refunds, service


@dataclass(frozen=True)
class RefundEstimate:
    breakdown: refunds.RefundBreakdown
    due_date: date | None
    due_explanation: str
    earliest_due: date | None


def priced_order(order: Order, lines: list[OrderLine]) -> refunds.PricedOrder:
    return refunds.PricedOrder(
        currency=order.currency,
        lines=tuple(
            refunds.PricedOrderLine(
                line_id=l.id, sku=l.sku, quantity=l.quantity, unit_price_minor=l.unit_price_minor,
                line_discount_minor=l.discount_minor, vat_rate=l.vat_rate,
            )
            for l in lines
        ),
        order_discount_minor=order.order_discount_minor,
        shipping_paid_minor=order.shipping_paid_minor,
        standard_shipping_minor=order.standard_shipping_minor,
    )


def _returned(lines: list[ReturnLine]) -> list[refunds.ReturnedQuantity]:
    return [refunds.ReturnedQuantity(line_id=l.order_line_id, quantity=l.quantity, resolution=l.resolution) for l in lines]


def _merge_prior(prior: refunds.PriorRefunds, lines: list[ReturnLine], breakdown: refunds.RefundBreakdown) -> refunds.PriorRefunds:
    units = dict(prior.per_line_units)
    minor = dict(prior.per_line_minor)
    for l in lines:
        if l.resolution != "exchange":
            units[l.order_line_id] = units.get(l.order_line_id, 0) + l.quantity
    shipping = prior.shipping_refunded_minor
    for item in breakdown.items:
        if item.kind == "line" and item.line_id is not None:
            minor[item.line_id] = minor.get(item.line_id, 0) + item.amount_minor
        elif item.kind == "shipping":
            shipping += item.amount_minor
    return refunds.PriorRefunds(
        per_line_units=units, per_line_minor=minor, shipping_refunded_minor=shipping,
        total_refunded_minor=prior.total_refunded_minor + breakdown.total_minor,
    )


def deductions_for(ret: Return, order: Order, fee_by_currency: dict) -> list[refunds.Deduction]:
    fee = int(fee_by_currency.get(order.currency, 0) or 0)
    if fee <= 0 or ret.resolution == "exchange":
        return []
    return [refunds.Deduction(kind="return_shipping", amount_minor=fee, reason="Return label fee")]


def estimate_refund(session: Session, ret: Return, order: Order, tz: str) -> RefundEstimate:
    """The refund this return should bring, after what earlier returns of the order took."""
    merchant = service.get_policy(session)
    priced = priced_order(order, service.order_lines(session, order.id))
    earlier = session.exec(
        select(Return).where(
            Return.order_id == order.id, Return.id < ret.id, Return.status.not_in(service.INACTIVE_STATUSES)
        ).order_by(Return.id)
    ).all()
    prior = refunds.PriorRefunds(per_line_units={}, per_line_minor={}, shipping_refunded_minor=0, total_refunded_minor=0)
    for other in earlier:
        other_lines = _lines_of(session, other.id)
        other_breakdown = refunds.calculate_refund(priced, _returned(other_lines), deductions_for(other, order, merchant.return_fee_minor), prior)
        prior = _merge_prior(prior, other_lines, other_breakdown)
    breakdown = refunds.calculate_refund(
        priced, _returned(_lines_of(session, ret.id)), deductions_for(ret, order, merchant.return_fee_minor), prior
    )
    due, explanation = refunds.legal_due_date(ret.created_at, ret.arrived_at, ret.proof_of_sending_at, tz)
    earliest = refunds.legal_due_date(ret.created_at, ret.created_at, None, tz)[0]
    return RefundEstimate(breakdown, due, explanation, earliest)


def _lines_of(session: Session, return_id: int) -> list[ReturnLine]:
    return list(session.exec(select(ReturnLine).where(ReturnLine.return_id == return_id)))

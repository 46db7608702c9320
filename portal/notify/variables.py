"""The documented template variables and how they are built from a return, in the template's language."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlmodel import Session, select

from portal.brand.cache import display_phone, version_of
from portal.config import Settings
from portal.i18n import local_date, money
from portal.models import Customer, Order, Refund, Return
from portal.returns import exchange_shipment, service
from portal.returns.refund_estimate import estimate_refund

# name -> what it holds (shown to merchants in the editor; anything else is refused on save)
VARIABLES: dict[str, str] = {
    "first_name": "Customer's first name",
    "last_name": "Customer's last name",
    "rma": "Return number (RMA)",
    "order_number": "Order number",
    "status_link": "Link to the return's status page",
    "refund_amount": "Refund amount, formatted with currency (issued refund, else the estimate)",
    "refund_expected_date": "Date the refund is due (legal due date)",
    "drop_off_deadline": "Last day to drop the parcel off (empty when no longer relevant)",
    "return_window_end": "Last day of the return window",
    "merchant_name": "Shop name",
    "support_email": "Shop support e-mail address",
    "support_phone": "Shop support phone number, e.g. +46 8 123 456 78 (empty if none)",
    "support_url": "Shop help page address (empty if none)",
    "logo_url": "Address of the shop's logo image (empty if none)",
    "brand_colour": "Shop brand colour as #rrggbb",
    "carrier_name": "Carrier name",
    "return_status": "Return status code (registered, label_issued, arrived, …)",
    "tracking_number": "Parcel tracking number (empty if none)",
    "country": "Order country (ISO code)",
    "items": "Returned items: list of {name, quantity, reason}",
    "exchange_tracking_number": "Tracking number of the replacement parcel (empty until the exchange is shipped)",
    "exchange_items": "Replacement items sent: list of {name, sku, quantity} (empty until the exchange is shipped)",
    "days": "The rule's offset in days (time-based rules)",
}


def build_variables(session: Session, ret: Return, language: str, settings: Settings, *, days: int = 0) -> dict:
    order = session.get(Order, ret.order_id)
    customer = session.get(Customer, order.customer_id)
    merchant = service.get_policy(session)
    tz = settings.timezone
    refunds = list(session.exec(select(Refund).where(Refund.return_id == ret.id).order_by(Refund.id)))
    amount_minor, currency, due = None, order.currency, None
    if refunds:
        latest = refunds[-1]
        amount_minor, currency, due = latest.amount_minor, latest.currency, latest.due_date
    if amount_minor is None or due is None:
        if ret.status not in service.INACTIVE_STATUSES:
            estimate = estimate_refund(session, ret, order, tz)
            if amount_minor is None:
                amount_minor = estimate.breakdown.total_minor
            if due is None:
                due = estimate.due_date or estimate.earliest_due
    shipment = exchange_shipment.latest_shipment(session, ret.id)
    window_end: date | None = None
    if order.delivered_at is not None:
        window_end = (order.delivered_at + timedelta(days=merchant.return_window_days)).date()
    return {
        "first_name": customer.first_name if customer else "",
        "last_name": customer.last_name if customer else "",
        "rma": ret.rma,
        "order_number": order.number,
        "status_link": f"{settings.base_url}/r/{ret.rma}/{ret.status_token}",
        "refund_amount": money(amount_minor, currency, language) if amount_minor is not None else "",
        "refund_expected_date": local_date(due, language, tz) if due else "",
        "drop_off_deadline": local_date(service.drop_off_deadline(ret, settings), language, tz),
        "return_window_end": local_date(window_end, language, tz),
        "merchant_name": merchant.merchant_name,
        "support_email": merchant.support_email,
        "support_phone": display_phone(merchant.support_phone),
        "support_url": merchant.support_url,
        "logo_url": f"{settings.base_url}/brand/logo?v={version_of(merchant.logo_updated_at)}" if merchant.logo_content_type else "",
        "brand_colour": merchant.brand_colour,
        "carrier_name": merchant.carrier_name,
        "return_status": ret.status,
        "tracking_number": ret.tracking_number or "",
        "country": order.country,
        "items": [
            {"name": ol.name, "quantity": rl.quantity, "reason": rl.reason}
            for rl, ol in service.return_lines_with_order_lines(session, ret.id)
        ],
        "exchange_tracking_number": shipment.tracking_number if shipment else "",
        "exchange_items": list(shipment.items) if shipment else [],
        "days": days,
    }


def sample_variables() -> dict:
    """Placeholder values used to check a template renders when no return is at hand."""
    return {name: ("" if name != "items" else [{"name": "T-shirt", "quantity": 1, "reason": "too_small"}])
            for name in VARIABLES} | {"days": 3, "exchange_items": [{"name": "T-shirt", "sku": "TS-101", "quantity": 1}]}

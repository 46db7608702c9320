"""The back-office names of stored codes (statuses, reasons, states, …), in the `staff` catalogue.

The English names are the codes as staff have always read them ("label issued"); pages show them with the
`term` filter (`{{ ret.status | term("status") }}`), messages in Python with `term(kind, code)`.
An unknown code is shown as it is, with spaces for underscores.
"""

from __future__ import annotations

from portal.i18n import StaffText, staff_text

TERMS: dict[str, dict[str, StaffText]] = {
    "status": {
        "pending_approval": staff_text("pending approval"),
        "registered": staff_text("registered"),
        "label_issued": staff_text("label issued"),
        "dropped_off": staff_text("dropped off"),
        "in_transit": staff_text("in transit"),
        "at_consolidation": staff_text("at consolidation"),
        "collected": staff_text("collected"),
        "customs_cleared": staff_text("customs cleared"),
        "arrived": staff_text("arrived"),
        "inspected": staff_text("inspected"),
        "resolved": staff_text("resolved"),
        "closed": staff_text("closed"),
        "cancelled": staff_text("cancelled"),
        "expired": staff_text("expired"),
        "rejected": staff_text("rejected"),
        "needs_attention": staff_text("needs attention"),
    },
    "reason": {
        "too_small": staff_text("too small"),
        "too_large": staff_text("too large"),
        "not_as_described": staff_text("not as described"),
        "damaged": staff_text("damaged"),
        "wrong_item": staff_text("wrong item"),
        "changed_mind": staff_text("changed mind"),
        "quality": staff_text("quality"),
        "other": staff_text("other"),
    },
    "resolution": {
        "refund": staff_text("refund"),
        "exchange": staff_text("exchange"),
        "store_credit": staff_text("store credit"),
    },
    "method": {  # how the parcel is sent back, and how a refund is paid
        "drop_off": staff_text("drop off"),
        "original_payment": staff_text("original payment"),
        "store_credit": staff_text("store credit"),
    },
    "condition": {
        "as_new": staff_text("as new"),
        "opened": staff_text("opened"),
        "damaged": staff_text("damaged"),
        "wrong_item": staff_text("wrong item"),
        "missing": staff_text("missing"),
    },
    "acceptance": {
        "pending": staff_text("pending"),
        "accepted": staff_text("accepted"),
        "rejected": staff_text("rejected"),
    },
    "disposition": {
        "restock": staff_text("restock"),
        "discard": staff_text("discard"),
        "repair": staff_text("repair"),
    },
    "refund_state": {
        "pending": staff_text("pending"),
        "due": staff_text("due"),
        "requested": staff_text("requested"),
        "issued": staff_text("issued"),
        "failed": staff_text("failed"),
    },
    "exchange_state": {
        "requested": staff_text("requested"),
        "shipped": staff_text("shipped"),
        "cancelled": staff_text("cancelled"),
    },
    "delivery_state": {  # outbox messages: webhooks, e-mail, SMS
        "pending": staff_text("pending"),
        "sending": staff_text("sending"),
        "sent": staff_text("sent"),
        "failed": staff_text("failed"),
        "dead": staff_text("dead"),
    },
    "channel": {
        "email": staff_text("e-mail"),
        "sms": staff_text("SMS"),
        "webhook": staff_text("webhook"),
    },
    "audience": {
        "customer": staff_text("customer"),
        "internal": staff_text("internal"),
    },
    "collection_state": {
        "planned": staff_text("planned"),
        "frozen": staff_text("frozen"),
        "collected": staff_text("collected"),
        "declared": staff_text("declared"),
        "released": staff_text("released"),
    },
    "role": {
        "admin": staff_text("admin"),
        "warehouse": staff_text("warehouse"),
        "support": staff_text("support"),
    },
    "blocked": {  # why an order line cannot be returned
        "not_returnable_item": staff_text("not returnable item"),
        "not_returnable_category": staff_text("not returnable category"),
        "all_returned": staff_text("all returned"),
    },
}


def term(kind: str, code: str | None) -> str:
    """The name of a code, as a StaffText when it is known (so it is shown in the staff user's language)."""
    if not code:
        return ""
    return TERMS.get(kind, {}).get(code) or code.replace("_", " ")

"""msgspec Structs for /api/v1: they validate requests and document the OpenAPI schema at /schema."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Optional

import msgspec
from msgspec import Meta

Minor = Annotated[int, Meta(ge=0, le=10**12, description="amount in minor units (öre, cent)")]
Country = Annotated[str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217")]
Qty = Annotated[int, Meta(ge=1, le=100000)]


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern="^[^@\\s]+@[^@\\s]+$")]
    first_name: Annotated[str, Meta(min_length=1, max_length=100)]
    last_name: Annotated[str, Meta(min_length=1, max_length=100)]
    street: Annotated[str, Meta(min_length=1, max_length=200)]
    postcode: Annotated[str, Meta(min_length=1, max_length=16)]
    city: Annotated[str, Meta(min_length=1, max_length=100)]
    country: Country
    phone: Optional[Annotated[str, Meta(max_length=32)]] = None
    language: Annotated[str, Meta(pattern="^(sv|nb|da|fi|en)$")] = "sv"


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    line_no: Annotated[int, Meta(ge=1, le=10000)]
    sku: Annotated[str, Meta(min_length=1, max_length=64)]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    quantity: Qty
    unit_price_minor: Minor
    vat_rate: Annotated[str, Meta(pattern="^(0|0?\\.[0-9]{1,4})$", description='decimal as a string, e.g. "0.25"')]
    category: Annotated[str, Meta(max_length=64)] = ""
    discount_minor: Minor = 0
    returnable: bool = True
    hs_code: Optional[Annotated[str, Meta(pattern="^[0-9]{6,10}$")]] = None
    origin_country: Optional[Country] = None
    net_weight_grams: Optional[Annotated[int, Meta(ge=0, le=10**7)]] = None


class ExportLineIn(msgspec.Struct, forbid_unknown_fields=True):
    goods_item_number: Annotated[int, Meta(ge=1, le=999)]
    line_no: Annotated[int, Meta(ge=1, le=10000, description="the order line this item declares")]
    cn_code: Annotated[str, Meta(pattern="^[0-9]{8}$")]
    quantity: Qty
    unit_value_minor: Minor
    origin: Country
    net_weight_grams: Annotated[int, Meta(ge=0, le=10**7)]
    description: Optional[Annotated[str, Meta(max_length=200)]] = None
    agricultural: bool = False


class ExportDeclarationIn(msgspec.Struct, forbid_unknown_fields=True):
    mrn: Annotated[str, Meta(min_length=1, max_length=40)]
    export_date: date
    exporter_eori: Annotated[str, Meta(min_length=3, max_length=17)]
    invoice_number: Annotated[str, Meta(min_length=1, max_length=40)]
    invoice_date: date
    currency: Currency
    lines: Annotated[list[ExportLineIn], Meta(min_length=1, max_length=500)]
    entry_route: Annotated[str, Meta(pattern="^(voec|simplified|ordinary)$")] = "voec"
    voec_number: Optional[Annotated[str, Meta(max_length=20)]] = None


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    customer: CustomerIn
    currency: Currency
    placed_at: datetime
    lines: Annotated[list[OrderLineIn], Meta(min_length=1, max_length=500)]
    country: Optional[Country] = None  # defaults to the customer's country
    delivered_at: Optional[datetime] = None
    shipping_paid_minor: Minor = 0
    standard_shipping_minor: Minor = 0
    order_discount_minor: Minor = 0
    export_declaration: Optional[ExportDeclarationIn] = None


class OrderOut(msgspec.Struct):
    number: str
    id: int
    created: bool
    changed: bool
    lines: int
    export_declaration_mrn: Optional[str] = None
    personal_data_withheld: Annotated[bool, Meta(description=(
        "true when the order's customer was anonymised under the retention policy: the order was updated, "
        "the personal data sent with it was not stored"))] = False


class BulkIn(msgspec.Struct):
    orders: Annotated[list[dict[str, Any]], Meta(min_length=1, max_length=1000,
                      description="each item is an order (the PUT /api/v1/orders/{number} body) plus its 'number'")]


class FieldError(msgspec.Struct):
    field: str
    message: str


class BulkItemResult(msgspec.Struct):
    index: int
    number: Optional[str]
    status: int
    created: bool = False
    changed: bool = False
    personal_data_withheld: bool = False
    errors: list[FieldError] = []


class BulkOut(msgspec.Struct):
    accepted: int
    rejected: int
    results: list[BulkItemResult]


class ReturnLineIn(msgspec.Struct, forbid_unknown_fields=True):
    line_no: Annotated[int, Meta(ge=1, le=10000)]
    quantity: Qty
    reason: Annotated[str, Meta(min_length=1, max_length=40)]
    comment: Annotated[str, Meta(max_length=1000)] = ""


class ReturnIn(msgspec.Struct, forbid_unknown_fields=True):
    order_number: Annotated[str, Meta(min_length=1, max_length=40)]
    lines: Annotated[list[ReturnLineIn], Meta(min_length=1, max_length=500)]
    idempotency_key: Annotated[str, Meta(min_length=8, max_length=64, description="the same key twice gives the same return")]
    resolution: Annotated[str, Meta(pattern="^(refund|exchange|store_credit)$")] = "refund"
    language: Annotated[str, Meta(pattern="^(sv|nb|da|fi|en)$")] = "sv"


class ReturnSummary(msgspec.Struct):
    id: int
    rma: str
    order_number: str
    status: str
    resolution: str
    method: str
    tracking_number: Optional[str]
    is_norway: bool
    created_at: datetime
    updated_at: datetime
    proof_of_sending_at: Optional[datetime]
    arrived_at: Optional[datetime]


class ReturnLineOut(msgspec.Struct):
    line_no: int
    sku: str
    name: str
    quantity: int
    reason: str
    comment: str
    received_quantity: int
    condition: Optional[str]
    acceptance: str
    disposition: Optional[str]


class EventOut(msgspec.Struct):
    type: str
    at: datetime
    actor: str
    data: dict[str, Any]


class RefundOut(msgspec.Struct):
    id: int
    amount_minor: int
    currency: str
    method: str
    state: str
    due_date: Optional[date]
    issued_at: Optional[datetime]


class ReturnDetail(msgspec.Struct):
    summary: ReturnSummary
    lines: list[ReturnLineOut]
    events: list[EventOut]
    refunds: list[RefundOut]


class ReturnPage(msgspec.Struct):
    items: list[ReturnSummary]
    next_cursor: Optional[str]

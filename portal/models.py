"""Database tables. Money is integer minor units plus an ISO currency; times are UTC."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores UTC, always hands back an aware UTC datetime (SQLite drops the zone otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store aware UTC datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Optional[datetime], dialect: Any) -> Optional[datetime]:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def json_column() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def json_list_column() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


# --- Customers and orders ---------------------------------------------------------------


class Customer(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(index=True, max_length=254)
    phone: Optional[str] = Field(default=None, index=True, max_length=32)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    language: str = Field(default="sv", max_length=5)
    street: str = Field(max_length=200)
    postcode: str = Field(max_length=16)
    city: str = Field(max_length=100)
    country: str = Field(max_length=2)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    anonymised_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)  # GDPR retention

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    id: Optional[int] = Field(default=None, primary_key=True)
    number: str = Field(unique=True, index=True, max_length=40)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    email: str = Field(max_length=254)
    postcode: str = Field(max_length=16)
    country: str = Field(max_length=2)
    currency: str = Field(max_length=3)
    placed_at: datetime = Field(sa_type=UTCDateTime, index=True)
    delivered_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    shipping_paid_minor: int = 0
    standard_shipping_minor: int = 0
    order_discount_minor: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (sa.UniqueConstraint("order_id", "line_no"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    line_no: int
    sku: str = Field(max_length=64, index=True)
    name: str = Field(max_length=200)
    category: str = Field(default="", max_length=64)
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0
    vat_rate: Decimal = Field(default=Decimal("0.25"), sa_column=Column(sa.Numeric(6, 4), nullable=False))
    returnable: bool = True
    hs_code: Optional[str] = Field(default=None, max_length=10)
    origin_country: Optional[str] = Field(default=None, max_length=2)
    net_weight_grams: Optional[int] = None


# --- Merchant policy ---------------------------------------------------------------------


class MerchantPolicy(SQLModel, table=True):
    """The one merchant this portal serves: return policy, addresses, and brand."""

    __tablename__ = "merchant_policy"
    id: Optional[int] = Field(default=None, primary_key=True)
    merchant_name: str = Field(default="Nordic Shop AB", max_length=50)
    return_window_days: int = 30
    non_returnable_categories: list = json_list_column()
    non_returnable_skus: list = json_list_column()
    refund_methods: list = json_list_column()  # "refund", "exchange", "store_credit"
    return_reasons: list = json_list_column()  # reason codes, texts come from the catalogues
    return_fee_minor: dict = json_column()  # currency -> fee deducted for a return label
    support_email: str = Field(default="support@example.com", max_length=254)
    carrier_name: str = Field(default="PostNord", max_length=50)
    return_address: dict = json_column()  # name, street_lines, postcode, city, country
    norway_consolidation_address: dict = json_column()
    exporter_eori: str = Field(default="", max_length=17)
    voec_number: Optional[str] = Field(default=None, max_length=20)
    brand_colour: str = Field(default="#1f4e79", max_length=7)  # header and buttons; white text on it
    support_phone: str = Field(default="", max_length=32)
    support_url: str = Field(default="", max_length=300)
    logo: Optional[bytes] = Field(default=None, sa_column=Column(sa.LargeBinary, nullable=True))
    logo_content_type: str = Field(default="", max_length=40)
    logo_updated_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- Returns -------------------------------------------------------------------------------


class Return(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    rma: str = Field(unique=True, index=True, max_length=16)
    order_id: int = Field(foreign_key="orders.id", index=True)
    status: str = Field(default="registered", index=True, max_length=24)
    status_reason: str = Field(default="", max_length=500)
    method: str = Field(default="drop_off", max_length=20)
    resolution: str = Field(default="refund", max_length=20)
    language: str = Field(default="sv", max_length=5)
    status_token: str = Field(unique=True, index=True, max_length=64)
    idempotency_key: str = Field(unique=True, max_length=64)
    tracking_number: Optional[str] = Field(default=None, index=True, max_length=40)
    is_norway: bool = False
    version: int = 1  # optimistic concurrency for staff actions
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    proof_of_sending_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    arrived_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class ReturnLine(SQLModel, table=True):
    __tablename__ = "return_line"
    id: Optional[int] = Field(default=None, primary_key=True)
    return_id: int = Field(foreign_key="return.id", index=True)
    order_line_id: int = Field(foreign_key="order_line.id", index=True)
    quantity: int
    reason: str = Field(max_length=40)
    comment: str = Field(default="", max_length=1000)
    resolution: str = Field(default="refund", max_length=20)
    received_quantity: int = 0
    condition: Optional[str] = Field(default=None, max_length=20)
    acceptance: str = Field(default="pending", max_length=12)
    rejection_reason: str = Field(default="", max_length=500)
    disposition: Optional[str] = Field(default=None, max_length=12)


class ReturnEvent(SQLModel, table=True):
    """Append-only timeline: the status page, audit log and notifications all read it."""

    __tablename__ = "return_event"
    id: Optional[int] = Field(default=None, primary_key=True)
    return_id: int = Field(foreign_key="return.id", index=True)
    type: str = Field(max_length=40)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(default="system", max_length=120)
    data: dict = json_column()


class Refund(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    return_id: int = Field(foreign_key="return.id", index=True)
    amount_minor: int
    currency: str = Field(max_length=3)
    method: str = Field(default="original_payment", max_length=20)
    state: str = Field(default="pending", index=True, max_length=12)
    due_date: Optional[date] = None
    issued_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime, index=True)
    external_ref: Optional[str] = Field(default=None, max_length=100)
    breakdown: dict = json_column()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # One refund per (return, sequence): a second concurrent "issue" for the same return collides here.
    idempotency_key: Optional[str] = Field(default=None, unique=True, max_length=64)
    requested_by: Optional[str] = Field(default=None, max_length=120)
    requested_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    failure_reason: str = Field(default="", max_length=500)
    attempts: int = 0


class StoredDocument(SQLModel, table=True):
    """A rendered document (label PDF, ZPL, manifest), cached by the fingerprint of its data."""

    __tablename__ = "stored_document"
    __table_args__ = (sa.UniqueConstraint("owner", "kind"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    owner: str = Field(max_length=64)  # e.g. "return:42"
    kind: str = Field(max_length=24)  # e.g. "label-a4"
    fingerprint: str = Field(max_length=64)
    media_type: str = Field(max_length=64)
    content: Optional[bytes] = Field(default=None, sa_column=Column(sa.LargeBinary, nullable=True))
    path: Optional[str] = Field(default=None, max_length=500)
    size: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- Norway: export declarations -----------------------------------------------------------


class ExportDeclaration(SQLModel, table=True):
    __tablename__ = "export_declaration"
    id: Optional[int] = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    mrn: str = Field(unique=True, index=True, max_length=18)
    export_date: date
    exporter_eori: str = Field(max_length=17)
    invoice_number: str = Field(max_length=40)
    invoice_date: date
    currency: str = Field(max_length=3)
    entry_route: str = Field(default="voec", max_length=12)  # voec | simplified | ordinary
    voec_number: Optional[str] = Field(default=None, max_length=20)


class ExportLine(SQLModel, table=True):
    __tablename__ = "export_line"
    __table_args__ = (sa.UniqueConstraint("declaration_id", "goods_item_number"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    declaration_id: int = Field(foreign_key="export_declaration.id", index=True)
    goods_item_number: int
    order_line_id: int = Field(foreign_key="order_line.id", index=True)
    cn_code: str = Field(max_length=8)
    description: str = Field(max_length=200)
    quantity: int
    unit_value_minor: int
    origin_country: str = Field(max_length=2)
    net_weight_grams: int
    agricultural: bool = False


# --- Infrastructure -------------------------------------------------------------------------


class KeyValue(SQLModel, table=True):
    """Shared store for server-side sessions and rate limits, so several processes agree."""

    __tablename__ = "kv_store"
    key: str = Field(primary_key=True, max_length=255)
    value: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    expires_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime, index=True)


class RateLimitBucket(SQLModel, table=True):
    """Fixed-window counters shared by every process (login, order lookup, status links)."""

    __tablename__ = "rate_limit_bucket"
    key: str = Field(primary_key=True, max_length=255)
    window_start: int = Field(primary_key=True)  # epoch seconds
    hits: int = 0


# --- Norway: customs match per return line -------------------------------------------------


class ReturnLineCustoms(SQLModel, table=True):
    """A Norwegian return line matched to the export goods item(s) it left on, and the relief verdict.

    allocations: [{"goods_item_number": int, "quantity": int}] on `mrn`; results: every
    returned-goods-relief rule as {"ok", "code", "reason"} (reasons are for staff only).
    """

    __tablename__ = "return_line_customs"
    id: Optional[int] = Field(default=None, primary_key=True)
    return_line_id: int = Field(foreign_key="return_line.id", unique=True, index=True)
    declaration_id: Optional[int] = Field(default=None, foreign_key="export_declaration.id", index=True)
    mrn: Optional[str] = Field(default=None, max_length=18)
    allocations: list = json_list_column()
    relief: Optional[str] = Field(default=None, max_length=3)  # "F01" or None
    procedure: str = Field(default="6110", max_length=4)
    needs_attention: bool = False
    results: list = json_list_column()
    assessed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- Staff, audit, exchanges, outbox -------------------------------------------------------


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"
    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=254)
    name: str = Field(max_length=120)
    role: str = Field(max_length=12)  # admin | warehouse | support
    password_hash: str = Field(max_length=200)
    language: str = Field(default="en", max_length=5)  # back-office language: en | sv
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """Staff actions that are not about one return (users, settings, logins). Return actions go on its timeline."""

    __tablename__ = "audit_entry"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=254)
    action: str = Field(max_length=60, index=True)
    target: str = Field(default="", max_length=120)
    before: dict = json_column()
    after: dict = json_column()
    client_ip: str = Field(default="", max_length=64)


class Exchange(SQLModel, table=True):
    """A replacement the shop sends for a returned line; the price difference is settled on the refund."""

    id: Optional[int] = Field(default=None, primary_key=True)
    return_id: int = Field(foreign_key="return.id", index=True)
    return_line_id: int = Field(foreign_key="return_line.id", index=True)
    replacement_sku: str = Field(max_length=64)
    replacement_name: str = Field(max_length=200)
    quantity: int
    unit_price_minor: int
    price_difference_minor: int  # positive: the customer gets money back; negative: the customer owes
    currency: str = Field(max_length=3)
    state: str = Field(default="requested", max_length=12)  # requested | shipped | cancelled
    external_ref: Optional[str] = Field(default=None, max_length=100)
    created_by: str = Field(max_length=120)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"
    id: Optional[int] = Field(default=None, primary_key=True)
    url: str = Field(max_length=500)
    secret: str = Field(max_length=128)
    event_types: list = json_list_column()
    active: bool = True
    description: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OutboxMessage(SQLModel, table=True):
    """Transactional outbox: written with the change that caused it, sent by a dispatcher, never twice."""

    __tablename__ = "outbox_message"
    # The dispatcher's claim: due rows of one state, so its cost follows the batch, not the backlog.
    __table_args__ = (sa.Index("ix_outbox_message_state_due", "state", "next_attempt_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=200)
    channel: str = Field(max_length=12, index=True)  # webhook | email | sms
    destination: str = Field(max_length=500)  # URL, e-mail address or E.164 number
    endpoint_id: Optional[int] = Field(default=None, foreign_key="webhook_endpoint.id")
    return_id: Optional[int] = Field(default=None, foreign_key="return.id", index=True)
    event_type: str = Field(max_length=60)
    payload: dict = json_column()
    state: str = Field(default="pending", max_length=12, index=True)  # pending | sending | sent | failed | dead
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    last_error: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


# --- Norway: collections, exchange rates, settings -----------------------------------------


class Collection(SQLModel, table=True):
    """A consolidated pickup of Norwegian returns and its (frozen) customs manifest.

    state: planned -> frozen -> collected -> declared -> released. cutoff_at is set (and unique)
    for the collections the cut-off job creates, so running the job twice creates one collection.
    manifest holds customs.documents.manifest_to_json() text once frozen.
    """

    __tablename__ = "collection"
    id: Optional[int] = Field(default=None, primary_key=True)
    reference: str = Field(unique=True, index=True, max_length=32)  # e.g. NO-2026-11-24-A
    planned_for: datetime = Field(sa_type=UTCDateTime)
    cutoff_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime, unique=True)
    state: str = Field(default="planned", index=True, max_length=12)
    import_mrn: Optional[str] = Field(default=None, max_length=18)
    manifest: Optional[str] = Field(default=None, sa_column=Column(sa.Text, nullable=True))
    manifest_error: str = Field(default="", max_length=1000)
    version: int = 1  # optimistic concurrency for staff actions
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    frozen_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    collected_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    declared_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    released_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    created_by: str = Field(default="system", max_length=254)


class CollectionItem(SQLModel, table=True):
    """A return in a collection; moving it out sets removed_at. A return is in at most one collection at a time."""

    __tablename__ = "collection_item"
    __table_args__ = (
        sa.Index(
            "uq_collection_item_active_return", "return_id", unique=True,
            postgresql_where=sa.text("removed_at IS NULL"), sqlite_where=sa.text("removed_at IS NULL"),
        ),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    collection_id: int = Field(foreign_key="collection.id", index=True)
    return_id: int = Field(foreign_key="return.id", index=True)
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    added_by: str = Field(default="system", max_length=254)
    removed_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    removed_by: Optional[str] = Field(default=None, max_length=254)


class ExchangeRate(SQLModel, table=True):
    """Units of `currency` per 1 EUR on `rate_date`, as the ECB publishes them; source "manual" overrides."""

    __tablename__ = "exchange_rate"
    __table_args__ = (
        sa.UniqueConstraint("currency", "rate_date", "source"),
        sa.Index("ix_exchange_rate_currency_date", "currency", "rate_date"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    currency: str = Field(max_length=3)
    rate_date: date
    rate: Decimal = Field(sa_column=Column(sa.Numeric(18, 10), nullable=False))
    source: str = Field(max_length=40)
    fetched_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(default="system", max_length=254)


class NorwaySettings(SQLModel, table=True):
    """Collection schedule and storage terms at the Norwegian consolidation point (one row)."""

    __tablename__ = "norway_settings"
    id: Optional[int] = Field(default=None, primary_key=True)
    weekdays: list = Field(default_factory=lambda: [1, 4], sa_column=Column(JSON, nullable=False))  # 0 = Monday
    cutoff: str = Field(default="12:00", max_length=5)  # local wall-clock HH:MM
    timezone: str = Field(default="Europe/Oslo", max_length=64)
    free_storage_days: int = 5
    fee_per_day_minor: int = 5000
    fee_currency: str = Field(default="NOK", max_length=3)
    alert_email: str = Field(default="", max_length=254)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = Field(default="system", max_length=254)


# --- Notifications ---------------------------------------------------------------------------


class NotificationRule(SQLModel, table=True):
    """Trigger + channels + audience + conditions; inactive until activated, optionally within dates."""

    __tablename__ = "notification_rule"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    trigger: str = Field(max_length=60, index=True)  # e.g. return.registered, refund.issued, time.label_unused
    channels: list = json_list_column()  # ["email"], ["sms"], ["email", "sms"]
    audience: str = Field(default="customer", max_length=12)  # customer | internal
    internal_recipients: list = json_list_column()  # e-mail addresses / E.164 numbers for internal rules
    conditions: dict = json_column()  # {"country": [...], "resolution": [...], "reason": [...]}
    offset_days: int = 0  # time-based triggers: N days after/before the reference date
    marketing: bool = False  # marketing content needs the customer's consent
    active: bool = False
    starts_on: Optional[date] = None
    ends_on: Optional[date] = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NotificationTemplate(SQLModel, table=True):
    __tablename__ = "notification_template"
    __table_args__ = (sa.UniqueConstraint("rule_id", "language"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    rule_id: int = Field(foreign_key="notification_rule.id", index=True)
    language: str = Field(max_length=5)
    subject: str = Field(default="", max_length=200)
    body_text: str = Field(default="", sa_column=Column(sa.Text, nullable=False, server_default=""))
    body_html: str = Field(default="", sa_column=Column(sa.Text, nullable=False, server_default=""))
    sms_text: str = Field(default="", max_length=1600)


class Consent(SQLModel, table=True):
    __tablename__ = "consent"
    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    channel: str = Field(max_length=12)  # email | sms
    purpose: str = Field(default="marketing", max_length=20)
    granted: bool
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    source: str = Field(default="", max_length=120)


class DeliveryEvent(SQLModel, table=True):
    """What happened to one outbox message: queued, deferred, suppressed, sent, delivered, failed…"""

    __tablename__ = "delivery_event"
    id: Optional[int] = Field(default=None, primary_key=True)
    outbox_id: Optional[int] = Field(default=None, foreign_key="outbox_message.id", index=True)
    return_id: Optional[int] = Field(default=None, foreign_key="return.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str = Field(max_length=20)
    provider_message_id: Optional[str] = Field(default=None, max_length=120, index=True)
    detail: dict = json_column()


# --- Integrations ---------------------------------------------------------------------------


class ApiKey(SQLModel, table=True):
    """Shown once; stored as a SHA-256 of the secret part (192 random bits), looked up by prefix."""

    __tablename__ = "api_key"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    prefix: str = Field(unique=True, index=True, max_length=16)
    key_hash: str = Field(max_length=64)
    scopes: list = json_list_column()  # orders:write, returns:read, returns:write
    created_by: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    revoked_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)


class CarrierEvent(SQLModel, table=True):
    """A raw carrier scan, stored as received; idempotent on (carrier, event_id)."""

    __tablename__ = "carrier_event"
    __table_args__ = (sa.UniqueConstraint("carrier", "event_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    carrier: str = Field(max_length=30)
    event_id: str = Field(max_length=120)
    tracking_number: str = Field(max_length=40, index=True)
    return_id: Optional[int] = Field(default=None, foreign_key="return.id", index=True)
    code: str = Field(max_length=40)
    mapped_state: Optional[str] = Field(default=None, max_length=24)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    raw: dict = json_column()

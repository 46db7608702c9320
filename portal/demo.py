"""Realistic demo data: a dozen orders across SE, NO, DK and FI. Loading twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlmodel import Session, select

from customs.mrn import make_mrn
from portal.models import Customer, ExportDeclaration, ExportLine, MerchantPolicy, Order, OrderLine
from portal.returns.service import DEFAULT_REASONS, DEFAULT_RESOLUTIONS

EXPORTER_EORI = "SE5566778899"
DEMO_BRAND_COLOUR = "#2e5e3e"  # forest green: white text on it has a contrast of 7.5:1


@dataclass(frozen=True)
class DemoLine:
    sku: str
    name: str
    category: str
    quantity: int
    unit_price_minor: int
    discount_minor: int = 0
    returnable: bool = True
    cn_code: str = "61091000"
    weight_g: int = 200


@dataclass(frozen=True)
class DemoOrder:
    number: str
    first: str
    last: str
    email: str
    phone: str
    street: str
    postcode: str
    city: str
    country: str
    currency: str
    language: str
    delivered_days_ago: int
    shipping_minor: int
    order_discount_minor: int
    vat: str
    lines: tuple[DemoLine, ...]


TSHIRT = ("TS-100", "Organic cotton T-shirt", "clothing")
HOODIE = ("HD-200", "Merino hoodie", "clothing")
JEANS = ("JN-300", "Straight jeans", "clothing")
SOCKS = ("SK-400", "Wool socks, 3-pack", "underwear")
JACKET = ("JK-500", "Rain jacket", "outerwear")
GIFT = ("GC-900", "Gift card", "giftcard")
BOOTS = ("BT-600", "Leather boots", "shoes")

DEMO_ORDERS: tuple[DemoOrder, ...] = (
    DemoOrder("SE-1001", "Anna", "Svensson", "anna.svensson@example.se", "+46701234567", "Storgatan 12", "114 55", "Stockholm", "SE", "SEK", "sv", 5, 4900, 0, "0.25",
              (DemoLine(*TSHIRT, 2, 29900), DemoLine(*HOODIE, 1, 119900, 12000), DemoLine(*SOCKS, 1, 14900))),
    DemoOrder("SE-1002", "Erik", "Lindqvist", "erik.lindqvist@example.se", "+46709876543", "Kungsgatan 3", "411 19", "Göteborg", "SE", "SEK", "sv", 12, 0, 10000, "0.25",
              (DemoLine(*JEANS, 1, 89900), DemoLine(*JACKET, 1, 149900), DemoLine(*GIFT, 1, 50000, returnable=False))),
    DemoOrder("SE-1003", "Maja", "Berg", "maja.berg@example.se", "+46731112233", "Drottninggatan 40", "252 21", "Helsingborg", "SE", "SEK", "sv", 60, 4900, 0, "0.25",
              (DemoLine(*BOOTS, 1, 179900),)),
    DemoOrder("NO-2001", "Ola", "Nordmann", "ola.nordmann@example.no", "+4791234567", "Karl Johans gate 22", "0159", "Oslo", "NO", "NOK", "nb", 4, 9900, 0, "0.25",
              (DemoLine(*HOODIE, 1, 139900, cn_code="61102010", weight_g=450), DemoLine(*TSHIRT, 3, 34900, cn_code="61091000", weight_g=180))),
    DemoOrder("NO-2002", "Kari", "Hansen", "kari.hansen@example.no", "+4792345678", "Bryggen 5", "5003", "Bergen", "NO", "NOK", "nb", 9, 9900, 5000, "0.25",
              (DemoLine(*JACKET, 1, 179900, cn_code="62019300", weight_g=700), DemoLine(*SOCKS, 2, 17900, cn_code="61159500", weight_g=120))),
    DemoOrder("NO-2003", "Nils", "Johansen", "nils.johansen@example.no", "+4793456789", "Storgata 8", "9008", "Tromsø", "NO", "NOK", "nb", 20, 9900, 0, "0.25",
              (DemoLine(*BOOTS, 1, 219900, cn_code="64035900", weight_g=1300), DemoLine(*JEANS, 2, 104900, cn_code="62034231", weight_g=650))),
    DemoOrder("DK-3001", "Freja", "Nielsen", "freja.nielsen@example.dk", "+4520123456", "Strøget 15", "1160", "København K", "DK", "DKK", "da", 3, 3900, 0, "0.25",
              (DemoLine(*TSHIRT, 1, 24900), DemoLine(*JEANS, 1, 69900))),
    DemoOrder("DK-3002", "Mads", "Jensen", "mads.jensen@example.dk", "+4521234567", "Vestergade 4", "8000", "Aarhus C", "DK", "DKK", "da", 15, 3900, 5000, "0.25",
              (DemoLine(*HOODIE, 1, 89900), DemoLine(*SOCKS, 3, 9900))),
    DemoOrder("FI-4001", "Aino", "Virtanen", "aino.virtanen@example.fi", "+358401234567", "Mannerheimintie 10", "00100", "Helsinki", "FI", "EUR", "fi", 6, 590, 0, "0.255",
              (DemoLine(*JACKET, 1, 17900), DemoLine(*TSHIRT, 2, 2990, 500))),
    DemoOrder("FI-4002", "Eero", "Korhonen", "eero.korhonen@example.fi", "+358409876543", "Hämeenkatu 20", "33200", "Tampere", "FI", "EUR", "fi", 25, 590, 1000, "0.255",
              (DemoLine(*BOOTS, 1, 18900), DemoLine(*GIFT, 1, 5000, returnable=False))),
    DemoOrder("SE-1004", "Oskar", "Nyström", "oskar.nystrom@example.se", "+46705556677", "Vasagatan 7", "753 20", "Uppsala", "SE", "SEK", "en", 2, 4900, 0, "0.25",
              (DemoLine(*SOCKS, 4, 14900), DemoLine(*TSHIRT, 1, 29900))),
    DemoOrder("NO-2004", "Ingrid", "Berg", "ingrid.berg@example.no", "+4794567890", "Olav Tryggvasons gate 1", "7011", "Trondheim", "NO", "NOK", "nb", 7, 9900, 0, "0.25",
              (DemoLine(*JEANS, 1, 104900, cn_code="62034231", weight_g=650),)),
)


def demo_policy() -> MerchantPolicy:
    return MerchantPolicy(
        merchant_name="Nordic Outdoor AB",
        return_window_days=30,
        non_returnable_categories=["giftcard"],
        non_returnable_skus=[],
        refund_methods=list(DEFAULT_RESOLUTIONS),
        return_reasons=list(DEFAULT_REASONS),
        return_fee_minor={"SEK": 0, "NOK": 0, "DKK": 0, "EUR": 0},
        support_email="kundservice@nordicoutdoor.example",
        carrier_name="PostNord",
        return_address={"name": "Nordic Outdoor AB – Returns", "street_lines": ["Lagervägen 4"], "postcode": "136 50", "city": "Haninge", "country": "SE"},
        norway_consolidation_address={"name": "Nordic Outdoor AB c/o PostNord Retur", "street_lines": ["Returterminalen", "Alnabruveien 15"], "postcode": "1081", "city": "Oslo", "country": "NO"},
        exporter_eori=EXPORTER_EORI,
        voec_number="VOEC2034567",
        brand_colour=DEMO_BRAND_COLOUR,
        support_phone="+46812345678",
        support_url="https://nordicoutdoor.example/help",
        logo=demo_logo(),
        logo_content_type="image/png",
        logo_updated_at=datetime.now(timezone.utc),
    )


def demo_logo() -> bytes:
    """A small PNG drawn on the spot (two peaks and a sun), so the demo shows a logo everywhere."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (360, 120), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((250, 8, 306, 64), fill=(232, 163, 23, 255))
    draw.polygon([(0, 118), (120, 10), (240, 118)], fill=(46, 94, 62, 255))
    draw.polygon([(150, 118), (250, 36), (350, 118)], fill=(31, 78, 121, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


DEMO_STAFF = (
    ("admin@demo.example", "Astrid Admin", "admin"),
    ("warehouse@demo.example", "Wilma Warehouse", "warehouse"),
    ("support@demo.example", "Sven Support", "support"),
)
DEMO_STAFF_PASSWORD = "demo-password-123"  # printed by `make run`; demo only, never in production


def load_demo_staff(session: Session) -> int:
    from portal.models import StaffUser
    from portal.staff.accounts import create_staff

    added = 0
    for email, name, role in DEMO_STAFF:
        if session.exec(select(StaffUser.id).where(StaffUser.email == email)).first() is None:
            create_staff(session, email, name, role, DEMO_STAFF_PASSWORD, actor="demo")
            added += 1
    return added


def load_demo(session: Session, now: datetime | None = None) -> int:
    """Insert what is missing; returns the number of orders added."""
    now = now or datetime.now(timezone.utc)
    if session.exec(select(MerchantPolicy)).first() is None:
        session.add(demo_policy())
    added = 0
    for demo in DEMO_ORDERS:
        if session.exec(select(Order.id).where(Order.number == demo.number)).first() is None:
            _add_order(session, demo, now)
            added += 1
    session.flush()
    return added


def _add_order(session: Session, demo: DemoOrder, now: datetime) -> None:
    customer = Customer(email=demo.email, phone=demo.phone, first_name=demo.first, last_name=demo.last, language=demo.language,
                        street=demo.street, postcode=demo.postcode, city=demo.city, country=demo.country)
    session.add(customer)
    session.flush()
    delivered = now - timedelta(days=demo.delivered_days_ago)
    order = Order(number=demo.number, customer_id=customer.id, email=demo.email, postcode=demo.postcode, country=demo.country,
                  currency=demo.currency, placed_at=delivered - timedelta(days=3), delivered_at=delivered,
                  shipping_paid_minor=demo.shipping_minor, standard_shipping_minor=demo.shipping_minor,
                  order_discount_minor=demo.order_discount_minor)
    session.add(order)
    session.flush()
    lines = []
    for no, line in enumerate(demo.lines, start=1):
        row = OrderLine(order_id=order.id, line_no=no, sku=line.sku, name=line.name, category=line.category,
                        quantity=line.quantity, unit_price_minor=line.unit_price_minor, discount_minor=line.discount_minor,
                        vat_rate=Decimal(demo.vat), returnable=line.returnable, hs_code=line.cn_code, origin_country="PT",
                        net_weight_grams=line.weight_g)
        session.add(row)
        lines.append((row, line))
    session.flush()
    if demo.country == "NO":
        _add_export_declaration(session, order, lines)


def _add_export_declaration(session: Session, order: Order, lines: list[tuple[OrderLine, DemoLine]]) -> None:
    export_date = order.placed_at.date()
    serial = f"{order.number.replace('-', '')}EXP".ljust(12, "0")[:12]
    declaration = ExportDeclaration(
        order_id=order.id, mrn=make_mrn(export_date.year % 100, "SE", serial, "B"), export_date=export_date,
        exporter_eori=EXPORTER_EORI, invoice_number=f"INV-{order.number}", invoice_date=export_date,
        currency=order.currency, entry_route="voec", voec_number="VOEC2034567",
    )
    session.add(declaration)
    session.flush()
    for item_no, (row, demo_line) in enumerate(lines, start=1):
        session.add(ExportLine(
            declaration_id=declaration.id, goods_item_number=item_no, order_line_id=row.id, cn_code=demo_line.cn_code,
            description=row.name, quantity=row.quantity, unit_value_minor=row.unit_price_minor,
            origin_country="PT", net_weight_grams=demo_line.weight_g,
        ))


# --- Norway: a demo collection and demo exchange rates ------------------------------------

DEMO_NORWAY_RETURNS = (  # order number, [(SKU, quantity, reason)]
    ("NO-2001", (("HD-200", 1, "too_small"), ("TS-100", 2, "too_large"))),
    ("NO-2002", (("JK-500", 1, "not_as_described"), ("SK-400", 1, "changed_mind"))),
)
# Units per 1 EUR in the shape of the ECB table; marked "demo" so no document passes them off as ECB's.
DEMO_RATES = {"SEK": Decimal("11.1340"), "NOK": Decimal("11.7250"), "DKK": Decimal("7.4590"), "USD": Decimal("1.0512")}


def load_demo_norway(session: Session, now: datetime | None = None) -> str | None:
    """Returns for NO-2001 and NO-2002 waiting at consolidation, in a frozen collection; demo rates if none.

    Safe to run again: the returns come from fixed form nonces and a return already in a
    collection is left alone. Returns the collection's reference, or None when there is nothing
    to collect (the returns could not be registered, e.g. the demo orders are too old now).
    """
    from customs.rates import RateTable
    from portal.norway import collections, rates
    from portal.returns import service

    now = now or datetime.now(timezone.utc)
    try:
        rates.rate_table_for(session, now.date(), {"NOK", "SEK"})
    except rates.RateError:  # only when there are no real rates to use
        rates.store_table(session, RateTable(date=(now - timedelta(days=1)).date(), source="demo", rates=DEMO_RATES),
                          now, actor="demo")
    rmas = []
    for number, picks in DEMO_NORWAY_RETURNS:
        ret = _register_demo_return(session, number, picks, "nb", f"demo-norway-{number}", now.date())
        if ret is None:
            continue
        existing = collections.collection_of_return(session, ret.id)
        if existing is not None:
            return existing.reference
        for status in ("dropped_off", "in_transit", "at_consolidation"):
            service.advance(session, ret, status, "carrier", f"parcel.{status}", at=now)
        if ret.status in collections.WAITING_STATUSES:
            rmas.append(ret.rma)
    session.flush()
    if not rmas:
        return None
    settings = collections.get_settings(session)
    planned_for = collections.upcoming_cutoffs(settings, now, 1)[0]
    collection = collections.build_collection(session, planned_for, rmas, None, now)
    collections.freeze(session, collection, None, now)
    session.flush()
    return collection.reference


# --- Refunds: a few paid (and one overdue) so the dashboard has something to show -------------

DEMO_REFUNDS = (  # order number, [(SKU, quantity, reason)], days ago: registered, arrived, paid (None: not paid yet)
    ("SE-1002", (("JN-300", 1, "too_large"),), 10, 7, 5),
    ("DK-3002", (("SK-400", 2, "damaged"), ("HD-200", 1, "too_small")), 14, 10, 8),
    ("FI-4002", (("BT-600", 1, "not_as_described"),), 24, 20, None),  # requested, past its legal due date
    ("SE-1004", (("SK-400", 1, "changed_mind"),), 1.5, 0.75, 0.1),
)


def load_demo_refunds(session: Session, now: datetime | None = None, tz: str = "Europe/Stockholm") -> int:
    """Returns of four demo orders, received, accepted and refunded (three paid, one overdue), dated in the past.

    Safe to run again: the returns come from fixed form nonces and a return with a refund is left
    alone. The refund is the one the staff refund page would calculate (refunding.build_plan).
    Returns the number of refunds added.
    """
    from portal.models import Refund, ReturnEvent, ReturnLine
    from portal.returns import service
    from portal.staff import refunding

    now = now or datetime.now(timezone.utc)
    added = 0
    for number, picks, registered_days, arrived_days, paid_days in DEMO_REFUNDS:
        registered, arrived = now - timedelta(days=registered_days), now - timedelta(days=arrived_days)
        ret = _register_demo_return(session, number, picks, "en", f"demo-refund-{number}", registered.date())
        if ret is None:
            continue  # no such order, or e.g. the demo orders are older than the return window now
        if ret.status != "label_issued" or session.exec(select(Refund.id).where(Refund.return_id == ret.id)).first():
            continue
        for event in session.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id)):
            event.at = registered  # registered in the past, as if the customer had done it then
            session.add(event)
        ret.created_at = registered
        sent = registered + (arrived - registered) / 3
        ret.proof_of_sending_at, ret.arrived_at = sent, arrived
        service.advance(session, ret, "dropped_off", "carrier", "parcel.dropped_off", at=sent)
        service.advance(session, ret, "in_transit", "carrier", "parcel.in_transit", at=sent + timedelta(hours=6))
        service.advance(session, ret, "arrived", "demo", "parcel.arrived", at=arrived)
        for line in session.exec(select(ReturnLine).where(ReturnLine.return_id == ret.id)):
            line.received_quantity, line.acceptance, line.condition, line.disposition = line.quantity, "accepted", "as_new", "restock"
            session.add(line)
        inspected = arrived + timedelta(hours=2)
        service.advance(session, ret, "inspected", "demo", "return.inspected", at=inspected)
        session.flush()
        plan = refunding.build_plan(session, ret, refunding.DeductionChoice(), tz)
        if plan.breakdown is None or plan.total_minor <= 0:
            continue
        paid = now - timedelta(days=paid_days) if paid_days is not None else None
        refund = Refund(
            return_id=ret.id, amount_minor=plan.total_minor, currency=plan.currency, method=plan.method,
            state="issued" if paid else "requested", due_date=plan.due_date, breakdown=plan.breakdown.to_dict(),
            idempotency_key=f"{ret.id}:{plan.sequence}", requested_by="demo", requested_at=inspected,
            created_at=inspected, issued_at=paid, external_ref=f"DEMO-{ret.rma}" if paid else None, attempts=1,
        )
        session.add(refund)
        session.flush()
        money = {"refund_id": refund.id, "amount_minor": refund.amount_minor, "currency": refund.currency}
        service.record_event(session, ret, "refund.requested", "demo", money, at=inspected)
        service.advance(session, ret, "resolved", "demo", "return.resolved", {"refund_id": refund.id}, at=inspected)
        if paid:
            service.record_event(session, ret, "refund.issued", "demo", {**money, "external_ref": refund.external_ref}, at=paid)
        added += 1
    session.flush()
    return added


def _register_demo_return(session: Session, number: str, picks, language: str, nonce: str, day):
    """Register a demo return for (sku, quantity, reason) picks; None when the order is missing or refuses."""
    from portal.returns import policy, service

    order = session.exec(select(Order).where(Order.number == number)).first()
    if order is None:
        return None
    by_sku = {line.sku: line for line in session.exec(select(OrderLine).where(OrderLine.order_id == order.id))}
    request = service.ReturnRequest(
        order_id=order.id, resolution="refund", language=language, form_nonce=nonce, actor="demo",
        lines=[policy.RequestedLine(by_sku[sku].id, str(qty), reason, "") for sku, qty, reason in picks if sku in by_sku],
    )
    try:
        with session.begin_nested():
            return service.register_return(session, request, day)
    except service.ReturnError:
        return None

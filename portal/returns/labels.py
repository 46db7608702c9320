"""Adapts a stored return to the labels library and serves the cached PDF / ZPL."""

from __future__ import annotations

from sqlmodel import Session, select

import labels
from portal import i18n
from portal.brand.cache import current_logo
from portal.config import Settings
from portal.documents.store import DocumentStorage, cached_document
from portal.models import Customer, ExportDeclaration, Order, Return
from portal.returns import service

REASON_MSGIDS = {
    "too_small": i18n.N_("Too small"),
    "too_large": i18n.N_("Too large"),
    "not_as_described": i18n.N_("Not as described"),
    "damaged": i18n.N_("Arrived damaged"),
    "wrong_item": i18n.N_("Wrong item sent"),
    "changed_mind": i18n.N_("Changed my mind"),
    "quality": i18n.N_("Quality not as expected"),
    "other": i18n.N_("Other reason"),
}
MEDIA_TYPES = {"a4": "application/pdf", "thermal": "application/pdf", "zpl": "text/plain; charset=utf-8"}


def status_url(settings: Settings, ret: Return) -> str:
    return f"{settings.base_url}/r/{ret.rma}/{ret.status_token}"


def _address(raw: dict) -> labels.Address:
    return labels.Address(
        name=raw.get("name", ""), street_lines=tuple(raw.get("street_lines", ())), postcode=raw.get("postcode", ""),
        city=raw.get("city", ""), country=raw.get("country", ""),
    )


def label_data(session: Session, ret: Return, settings: Settings) -> labels.LabelData:
    order = session.get(Order, ret.order_id)
    customer = session.get(Customer, order.customer_id)
    merchant = service.get_policy(session)
    declaration = session.exec(select(ExportDeclaration).where(ExportDeclaration.order_id == order.id)).first() if ret.is_norway else None
    recipient = merchant.norway_consolidation_address if ret.is_norway and merchant.norway_consolidation_address else merchant.return_address
    label_language = "nb" if ret.is_norway else ret.language  # Norwegian returns get Norwegian labels
    lines = tuple(
        labels.LabelLine(
            sku=ol.sku, description=ol.name, quantity=rl.quantity, unit_value_minor=ol.unit_price_minor,
            currency=order.currency, reason=i18n.gettext(label_language, REASON_MSGIDS.get(rl.reason, rl.reason)),
            cn_code=ol.hs_code, origin_country=ol.origin_country, net_weight_grams=ol.net_weight_grams,
        )
        for rl, ol in service.return_lines_with_order_lines(session, ret.id)
    )
    norway = None
    if ret.is_norway:
        norway = labels.NorwayInfo(
            voec_number=(declaration.voec_number if declaration else None) or merchant.voec_number,
            export_mrn=declaration.mrn if declaration else None,
            entry_route=declaration.entry_route if declaration else "ordinary",
        )
    return labels.LabelData(
        rma=ret.rma, status_url=status_url(settings, ret), language=ret.language, order_number=order.number,
        merchant_name=merchant.merchant_name, carrier_name=merchant.carrier_name,
        sender=labels.Address(
            name=customer.full_name, street_lines=(customer.street,), postcode=customer.postcode, city=customer.city,
            country=customer.country, phone=customer.phone,
        ),
        recipient=_address(recipient), lines=lines,
        drop_off_deadline=service.last_drop_off_day(ret.created_at, settings),
        created_at=ret.created_at, norway=norway,
        # The brand is part of the data, so a new logo or colour changes the fingerprint: labels re-render.
        brand_colour=merchant.brand_colour, logo=logo.content if (logo := current_logo(session)) else None,
    )


def storage_for(settings: Settings) -> DocumentStorage:
    return DocumentStorage(settings.label_storage, settings.storage_dir / "labels")


def label_document(session: Session, ret: Return, layout: str, settings: Settings) -> tuple[bytes, bool]:
    """The label as PDF (a4 / thermal) or ZPL, rendered once per version of its data."""
    data = label_data(session, ret, settings)
    render = (lambda: labels.render_zpl(data).encode()) if layout == "zpl" else (lambda: labels.render_pdf(data, layout))
    return cached_document(session, storage_for(settings), f"return:{ret.id}", f"label-{layout}",
                           labels.fingerprint(data), MEDIA_TYPES[layout], render)

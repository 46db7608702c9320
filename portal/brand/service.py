"""Saving the brand settings: every field checked first, then all saved with one audit entry, or nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlmodel import Session

from portal.brand import rules
from portal.brand.cache import display_phone, version_of
from portal.i18n import staff_text
from portal.models import MerchantPolicy, utcnow
from portal.returns import service
from portal.staff.accounts import StaffPrincipal, audit

FIELDS = ("merchant_name", "support_email", "support_phone", "support_url", "brand_colour")


class BrandError(ValueError):
    """What is wrong, keyed by form field ("form" for the whole form)."""

    def __init__(self, fields: dict[str, str], status_code: int = 400):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields
        self.status_code = status_code


@dataclass(frozen=True)
class LogoChange:
    upload: bytes | None = None  # the file chosen, if any
    remove: bool = False  # the "remove logo" box


def settings_version(merchant: MerchantPolicy) -> str:
    """What the form was rendered from: a save over someone else's newer save is refused."""
    return version_of(merchant.updated_at) if merchant.id is not None else ""


def form_values(merchant: MerchantPolicy) -> dict[str, str]:
    """The stored settings as the form shows them (the phone grouped for reading)."""
    return {
        "merchant_name": merchant.merchant_name, "support_email": merchant.support_email,
        "support_phone": display_phone(merchant.support_phone), "support_url": merchant.support_url,
        "brand_colour": merchant.brand_colour, "version": settings_version(merchant),
    }


def _logo_summary(merchant: MerchantPolicy) -> dict:
    if not merchant.logo_content_type:
        return {}
    return {"content_type": merchant.logo_content_type,
            "updated_at": merchant.logo_updated_at.isoformat() if merchant.logo_updated_at else None}


def validate(values: dict[str, str], logo: LogoChange, region: str) -> tuple[dict[str, str], rules.LogoInfo | None]:
    """The cleaned values and the checked logo, or BrandError with every problem at once."""
    checks = {
        "merchant_name": rules.check_name(values.get("merchant_name", "")),
        "support_email": rules.check_email(values.get("support_email", "")),
        "support_phone": rules.check_phone(values.get("support_phone", ""), region),
        "support_url": rules.check_url(values.get("support_url", "")),
        "brand_colour": rules.check_colour(values.get("brand_colour", "")),
    }
    errors = {name: error for name, (_value, error) in checks.items() if error}
    info = None
    if logo.upload is not None and logo.remove:
        errors["logo"] = staff_text("Either choose a new logo or tick “Remove the logo”, not both.")
    elif logo.upload is not None:
        info, error = rules.check_logo(logo.upload)
        if error:
            errors["logo"] = error
    if errors:
        raise BrandError(errors)
    return {name: value for name, (value, _error) in checks.items()}, info


def save_brand(db: Session, actor: StaffPrincipal, values: dict[str, str], logo: LogoChange, *, region: str,
               client_ip: str = "") -> MerchantPolicy:
    cleaned, info = validate(values, logo, region)
    merchant = service.get_policy(db)
    if values.get("version", "") != settings_version(merchant):
        raise BrandError({"form": staff_text("Someone else saved the brand settings after you opened this page. Your "
                                             "changes are below: check them against the saved settings and save again.")}, 409)
    before, after = {}, {}
    for name in FIELDS:
        if getattr(merchant, name) != cleaned[name]:
            before[name], after[name] = getattr(merchant, name), cleaned[name]
            setattr(merchant, name, cleaned[name])
    now = utcnow()
    if info is not None or (logo.remove and merchant.logo_content_type):
        before["logo"] = _logo_summary(merchant)
        if info is not None:
            merchant.logo, merchant.logo_content_type, merchant.logo_updated_at = logo.upload, info.content_type, now
            after["logo"] = {"content_type": info.content_type, "width": info.width, "height": info.height,
                             "bytes": info.size, "sha256": hashlib.sha256(logo.upload).hexdigest()}
        else:
            merchant.logo, merchant.logo_content_type, merchant.logo_updated_at = None, "", None
            after["logo"] = {}
    if not after:
        return merchant  # nothing changed: no write, no audit entry
    merchant.updated_at = now
    db.add(merchant)
    db.flush()
    audit(db, actor.email, "brand.updated", f"merchant_policy:{merchant.id}", before, after, client_ip)
    return merchant

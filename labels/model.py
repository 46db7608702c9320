"""Input model for label rendering: plain frozen dataclasses, built by the portal."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

# Bump whenever templates, CSS or rendering code change the output for the same data,
# so cached labels keyed on fingerprint() are re-rendered.
LAYOUT_VERSION = "labels-3"

_PACKAGE_DIR = Path(__file__).resolve().parent
_DEFAULT_TEMPLATE_DIR = _PACKAGE_DIR.parent / "templates" / "labels"
_LOCALE_DIR = _PACKAGE_DIR / "locale"


@dataclass(frozen=True)
class Address:
    name: str
    street_lines: tuple[str, ...]
    postcode: str
    city: str
    country: str  # ISO 3166-1 alpha-2, e.g. "SE", "NO"
    phone: str | None = None


@dataclass(frozen=True)
class LabelLine:
    sku: str
    description: str
    quantity: int
    unit_value_minor: int  # VAT-inclusive unit price paid, minor units
    currency: str  # ISO 4217
    reason: str  # already human-readable in the label language
    cn_code: str | None = None
    origin_country: str | None = None
    net_weight_grams: int | None = None

    @property
    def total_value_minor(self) -> int:
        return self.unit_value_minor * self.quantity


@dataclass(frozen=True)
class NorwayInfo:
    voec_number: str | None  # merchant sold under VOEC -> VAT refunded by merchant
    export_mrn: str | None  # original export declaration MRN(s), shown on contents declaration
    entry_route: str  # "voec" | "simplified" | "ordinary"


@dataclass(frozen=True)
class LabelData:
    rma: str  # barcode payload; Code128 encodes it exactly
    status_url: str  # QR payload
    language: str  # "sv" | "nb" | "da" | "fi" | "en"; anything else falls back to "en"
    order_number: str
    merchant_name: str
    carrier_name: str  # e.g. "PostNord"
    sender: Address  # the consumer
    recipient: Address  # the return address (warehouse or Norwegian consolidation point)
    lines: tuple[LabelLine, ...]
    drop_off_deadline: date
    created_at: datetime  # UTC
    norway: NorwayInfo | None = None
    brand_colour: str = "#1f4e79"
    logo: bytes | None = None  # the merchant's PNG or JPEG, drawn small in the sender block


def _json_default(value: object) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):  # the logo: its digest says whether it changed
        return "sha256:" + hashlib.sha256(value).hexdigest()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


@lru_cache(maxsize=1)
def _assets_digest() -> str:
    """Digest of the default templates and catalogues: a translation fix invalidates caches too."""
    digest = hashlib.sha256()
    roots = (_DEFAULT_TEMPLATE_DIR, _LOCALE_DIR)
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.suffix in {".html", ".css", ".po"}):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(data: LabelData) -> str:
    """Stable sha256 of everything that affects the rendered label (data, layout version, assets)."""
    payload = {
        "layout_version": LAYOUT_VERSION,
        "assets": _assets_digest(),
        # asdict keeps field names, so renaming/adding a field changes the fingerprint too.
        "data": dataclasses.asdict(data),
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

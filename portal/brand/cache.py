"""The brand as every page, e-mail and label sees it, read from merchant_policy.

Web processes keep a snapshot and re-read the brand's few columns (never the logo bytes) at
most every BrandCache.max_age_s seconds, so an edit in one process shows in every other within
that time, and the saving process shows it at once (it invalidates its own snapshot).
The logo bytes are cached per process by their logo_updated_at.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import phonenumbers
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from sqlmodel import select as orm_select

from portal.models import MerchantPolicy

log = logging.getLogger("portal.brand")
DEFAULT_COLOUR = "#1f4e79"


def display_phone(e164: str) -> str:
    """+46812345678 -> "+46 8 123 456 78" (as typed when it does not parse)."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def version_of(moment: datetime | None) -> str:
    """A short stamp for URLs and ETags: microseconds since the epoch, in hex."""
    return f"{round(moment.timestamp() * 1_000_000):x}" if moment else ""


@dataclass(frozen=True)
class Brand:
    name: str = "Nordic Shop AB"
    support_email: str = "support@example.com"
    support_phone: str = ""  # E.164
    support_url: str = ""  # https only
    colour: str = DEFAULT_COLOUR  # #rrggbb with white text readable on it
    carrier: str = "PostNord"
    logo_content_type: str = ""
    logo_updated_at: datetime | None = None

    @cached_property  # every page's footer shows it: parse the number once per snapshot
    def support_phone_display(self) -> str:
        return display_phone(self.support_phone)

    @property
    def has_logo(self) -> bool:
        return self.logo_updated_at is not None and bool(self.logo_content_type)

    @property
    def logo_version(self) -> str:
        return version_of(self.logo_updated_at) if self.has_logo else ""

    @property
    def logo_url(self) -> str:
        """Relative, versioned: a new logo is a new URL, so browsers may cache each for good."""
        return f"/brand/logo?v={self.logo_version}" if self.has_logo else ""

    @property
    def theme_url(self) -> str:
        return f"/brand/theme.css?v={self.colour.lstrip('#').lower()}"


_COLUMNS = (
    MerchantPolicy.merchant_name, MerchantPolicy.support_email, MerchantPolicy.support_phone,
    MerchantPolicy.support_url, MerchantPolicy.brand_colour, MerchantPolicy.carrier_name,
    MerchantPolicy.logo_content_type, MerchantPolicy.logo_updated_at,
)


def load_brand(engine: Engine) -> Brand:
    """One single-row query of the brand's columns (the logo bytes stay in the database)."""
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).order_by(MerchantPolicy.id).limit(1)).first()
    if row is None:
        return Brand()
    name, email, phone, url, colour, carrier, content_type, logo_at = row
    return Brand(name=name, support_email=email, support_phone=phone or "", support_url=url or "",
                 colour=colour or DEFAULT_COLOUR, carrier=carrier, logo_content_type=content_type or "",
                 logo_updated_at=logo_at)


class BrandCache:
    """The current Brand for one engine, re-read at most every max_age_s seconds."""

    def __init__(self, engine: Engine, max_age_s: float = 2.0, clock=time.monotonic):
        self.engine = engine
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._brand: Brand | None = None
        self._read_at = float("-inf")

    def get(self) -> Brand:
        brand = self.fresh()
        if brand is not None:
            return brand
        with self._lock:  # one reader refreshes; the others wait for it instead of querying too
            if self._brand is None or self._clock() - self._read_at >= self.max_age_s:
                self._refresh()
            return self._brand

    def fresh(self) -> Brand | None:
        """The brand if it was read recently enough, else None; never reads the database or waits for a lock
        (for the event loop: a reader that would have to refresh goes to a worker thread instead)."""
        brand = self._brand
        return brand if brand is not None and self._clock() - self._read_at < self.max_age_s else None

    def _refresh(self) -> None:
        try:
            self._brand = load_brand(self.engine)
        except SQLAlchemyError as exc:
            # Error pages need a brand too: keep the last one (or the defaults) while the database is away.
            log.warning("brand not refreshed, database unavailable: %s", exc)
            self._brand = self._brand or Brand()
        self._read_at = self._clock()

    def invalidate(self) -> None:
        """After a save in this process: the next get() reads the database."""
        with self._lock:
            self._read_at = float("-inf")


@dataclass(frozen=True)
class Logo:
    content: bytes
    content_type: str
    updated_at: datetime

    @property
    def version(self) -> str:
        return version_of(self.updated_at)

    @property
    def etag(self) -> str:
        return f'"logo-{self.version}"'


_logos: dict[tuple[str, datetime], Logo] = {}
_logos_lock = threading.Lock()
_LOGOS_KEPT = 4


def current_logo(session: Session) -> Logo | None:
    """The stored logo: a cheap query for its version, the bytes only when this process lacks them."""
    row = session.exec(
        orm_select(MerchantPolicy.id, MerchantPolicy.logo_content_type, MerchantPolicy.logo_updated_at)
        .order_by(MerchantPolicy.id).limit(1)
    ).first()
    if row is None or not row[1] or row[2] is None:
        return None
    policy_id, content_type, updated_at = row
    key = (str(session.get_bind().url), updated_at)
    with _logos_lock:
        cached = _logos.get(key)
    if cached is not None:
        return cached
    content = session.exec(orm_select(MerchantPolicy.logo).where(MerchantPolicy.id == policy_id)).first()
    if not content:
        return None
    logo = Logo(bytes(content), content_type, updated_at)
    with _logos_lock:
        if len(_logos) >= _LOGOS_KEPT:
            _logos.pop(next(iter(_logos)))
        _logos[key] = logo
    return logo

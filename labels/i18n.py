"""Label languages: gettext catalogues (domain "labels"), Babel locales, money and dates."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, get_currency_precision
from babel.support import Translations

DOMAIN = "labels"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
FALLBACK_LANGUAGE = "en"
NORWEGIAN = "nb"

# Label language -> Babel locale used for money and dates.
BABEL_LOCALES: dict[str, str] = {
    "sv": "sv_SE",
    "nb": "nb_NO",
    "da": "da_DK",
    "fi": "fi_FI",
    "en": "en_GB",
}
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(BABEL_LOCALES)


class CatalogueMissingError(RuntimeError):
    """A supported language has neither a compiled .mo nor a .po catalogue: a packaging bug."""


def resolve_language(language: str | None) -> str:
    """Normalise "sv-SE", "SV", "no" etc. to a supported label language, else English."""
    if not language:
        return FALLBACK_LANGUAGE
    primary = language.strip().replace("_", "-").split("-")[0].lower()
    if primary in ("no", "nn"):
        # Bokmål is the written standard for consumer texts; Nynorsk readers read it fine.
        primary = NORWEGIAN
    return primary if primary in BABEL_LOCALES else FALLBACK_LANGUAGE


_cache: dict[tuple[str, Path], Translations] = {}
_cache_lock = threading.Lock()


def _load_catalogue(language: str, locale_dir: Path) -> Translations:
    messages_dir = locale_dir / language / "LC_MESSAGES"
    mo_path = messages_dir / f"{DOMAIN}.mo"
    po_path = messages_dir / f"{DOMAIN}.po"
    # Prefer the .po when it is newer, so an edited catalogue is never shadowed by a stale .mo.
    if mo_path.is_file() and (not po_path.is_file() or mo_path.stat().st_mtime >= po_path.stat().st_mtime):
        with mo_path.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    if po_path.is_file():
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=DOMAIN)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        return Translations(buffer, domain=DOMAIN)
    raise CatalogueMissingError(
        f"no {DOMAIN}.mo or {DOMAIN}.po for language {language!r} in {messages_dir}; "
        f"labels would silently fall back to English"
    )


def translations(language: str, locale_dir: Path = LOCALE_DIR) -> Translations:
    """Translations for a supported language, loaded once per process (thread-safe)."""
    language = resolve_language(language)
    key = (language, locale_dir)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _load_catalogue(language, locale_dir)
            _cache[key] = cached
        return cached


def money_decimal(amount_minor: int, currency: str) -> Decimal:
    """Minor units -> Decimal major units using the currency's own number of digits."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"money must be integer minor units, got {type(amount_minor).__name__}")
    digits = get_currency_precision(currency.upper())
    return Decimal(amount_minor).scaleb(-digits)


@dataclass(frozen=True)
class LabelLocale:
    """Everything language-dependent a template needs, bound to one language."""

    language: str
    translations: Translations

    @property
    def babel_locale(self) -> str:
        return BABEL_LOCALES[self.language]

    def gettext(self, message: str, **values: object) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def money(self, amount_minor: int, currency: str) -> str:
        return format_currency(money_decimal(amount_minor, currency), currency.upper(), locale=self.babel_locale)

    def date(self, value: date) -> str:
        return format_date(value, format="long", locale=self.babel_locale)


def label_locale(language: str) -> LabelLocale:
    resolved = resolve_language(language)
    return LabelLocale(language=resolved, translations=translations(resolved))

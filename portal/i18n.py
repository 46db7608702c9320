"""Consumer and back-office languages: gettext catalogues (Babel), negotiation, and locale formatting.

Consumers get the `messages` domain in five languages; staff get the `staff` domain in English or Swedish.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, get_currency_precision, get_decimal_symbol
from babel.support import NullTranslations, Translations

from portal.config import SUPPORTED_LANGUAGES

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
STAFF_DOMAIN = "staff"
STAFF_LANGUAGES = ("en", "sv")  # the back-office is written in English and translated to Swedish
LANGUAGE_NAMES = {"sv": "Svenska", "nb": "Norsk", "da": "Dansk", "fi": "Suomi", "en": "English"}
# The market a country's consumers expect by default.
COUNTRY_LANGUAGE = {"SE": "sv", "NO": "nb", "DK": "da", "FI": "fi"}


def load_catalogue(locale_dir: Path, language: str, domain: str) -> NullTranslations:
    """The compiled .mo when present, else compiled in memory from the .po (never silently empty)."""
    if language == "en":
        return NullTranslations()
    mo = locale_dir / language / "LC_MESSAGES" / f"{domain}.mo"
    po = mo.with_suffix(".po")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as fh:
            return Translations(fh, domain=domain)
    if not po.exists():
        raise FileNotFoundError(f"no catalogue for language {language!r} at {po}")
    import io

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain=domain)


@lru_cache(maxsize=None)
def translations(language: str) -> NullTranslations:
    return load_catalogue(LOCALE_DIR, language if language in SUPPORTED_LANGUAGES else "en", DOMAIN)


def gettext(language: str, message: str) -> str:
    return translations(language).gettext(message)


def ngettext(language: str, singular: str, plural: str, n: int) -> str:
    return translations(language).ngettext(singular, plural, n)


@lru_cache(maxsize=None)
def staff_translations(language: str) -> NullTranslations:
    return load_catalogue(LOCALE_DIR, language if language in STAFF_LANGUAGES else "en", STAFF_DOMAIN)


def staff_gettext(language: str, message: str) -> str:
    return staff_translations(language).gettext(message)


def staff_ngettext(language: str, singular: str, plural: str, n: int) -> str:
    return staff_translations(language).ngettext(singular, plural, n)


def pick_staff_language(accept_language: str | None) -> str:
    """Before log-in: Swedish for a browser that prefers it, English otherwise."""
    for tag in _parse_accept_language(accept_language or ""):
        primary = tag.split("-")[0]
        if primary in STAFF_LANGUAGES:
            return primary
    return "en"


class StaffText(str):
    """A back-office message: reads as the English text, and keeps its msgid and values so that a page
    can show it in the staff user's language (`_()` in templates does that). Values that are StaffText
    themselves are translated too."""

    msgid: str
    values: dict

    def __new__(cls, msgid: str, **values: object) -> "StaffText":
        text = super().__new__(cls, msgid % values if values else msgid)
        text.msgid = str(msgid)
        text.values = values
        return text

    def translated(self, language: str) -> str:
        text = staff_gettext(language, self.msgid)
        if not self.values:
            return text
        return text % {k: v.translated(language) if isinstance(v, StaffText) else v for k, v in self.values.items()}

    def __reduce__(self):  # copies and pickles keep the msgid and values
        return (_staff_text_from, (self.msgid, self.values))


def _staff_text_from(msgid: str, values: dict) -> StaffText:
    return StaffText(msgid, **values)


def staff_text(msgid: str, **values: object) -> StaffText:
    """Marks a back-office message for the `staff` catalogue (extracted by `make extract-messages`)."""
    return StaffText(msgid, **values)


def babel_locale(language: str) -> Locale:
    return Locale.parse({"nb": "nb_NO", "sv": "sv_SE", "da": "da_DK", "fi": "fi_FI", "en": "en_GB"}.get(language, "en_GB"))


def pick_language(*candidates: str | None, accept_language: str | None = None, default: str = "sv") -> str:
    """First supported candidate, then the best Accept-Language match, then the default."""
    for cand in candidates:
        if cand in SUPPORTED_LANGUAGES:
            return cand  # type: ignore[return-value]
    for tag in _parse_accept_language(accept_language or ""):
        primary = tag.split("-")[0]
        if primary in ("no", "nn", "nb"):
            return "nb"
        if primary in SUPPORTED_LANGUAGES:
            return primary
    return default


def _parse_accept_language(header: str) -> list[str]:
    weighted = []
    for part in header.split(","):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weighted.append((q, tag.strip().lower()))
    return [tag for q, tag in sorted(weighted, key=lambda item: -item[0]) if q > 0]


def money(amount_minor: int, currency: str, language: str) -> str:
    digits = get_currency_precision(currency)
    amount = Decimal(amount_minor).scaleb(-digits)
    return format_currency(amount, currency, locale=babel_locale(language))


def local_decimal(text: str, language: str) -> str:
    """A decimal written with '.' ('33.3') the way `language` writes it ('33,3' in Swedish)."""
    return text.replace(".", get_decimal_symbol(babel_locale(language)))


def local_date(value: date | datetime | None, language: str, tz: str, fmt: str = "long") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(tz)).date()
    return format_date(value, format=fmt, locale=babel_locale(language))


def local_datetime(value: datetime | None, language: str, tz: str) -> str:
    if value is None:
        return ""
    return format_datetime(value, format="medium", tzinfo=ZoneInfo(tz), locale=babel_locale(language))


def N_(message: str) -> str:
    """Marks a message for extraction; translated later, where the language is known."""
    return message

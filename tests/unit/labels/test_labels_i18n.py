"""Five label languages: real catalogues, in-memory compilation, money and dates per locale."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from labels.i18n import (
    LOCALE_DIR,
    SUPPORTED_LANGUAGES,
    CatalogueMissingError,
    LabelLocale,
    label_locale,
    money_decimal,
    resolve_language,
    translations,
)
from labels.model import Address, NorwayInfo
from labels.render import render_html, render_pdf
from labels.zpl import render_zpl

REPO = Path(__file__).resolve().parents[3]

# A phrase of the instructions, the deadline as Babel writes it, and the packing slip title.
EXPECTED = {
    "sv": ("Så skickar du din retur", "14 december 2025", "Följesedel"),
    "nb": ("Slik sender du returen", "14. desember 2025", "Pakkseddel"),
    "da": ("Sådan sender du din returnering", "14. december 2025", "Pakkeseddel"),
    "fi": ("Näin lähetät palautuksen", "14. joulukuuta 2025", "Pakkausluettelo"),
    "en": ("How to send your return", "14 December 2025", "Packing slip"),
}


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_each_language_renders_its_own_instructions(kit, language):
    text = kit.pdf_text(render_pdf(kit.make_label(language=language), "a4"))
    for phrase in EXPECTED[language]:
        assert phrase in text
    others = [EXPECTED[other][0] for other in SUPPORTED_LANGUAGES if other != language]
    assert not any(phrase in text for phrase in others)


def test_unknown_language_falls_back_to_english(kit):
    text = kit.pdf_text(render_pdf(kit.make_label(language="de"), "thermal"))
    assert "Drop off by".upper() in text.upper() and "14 December 2025" in text


@pytest.mark.parametrize(
    ("given", "expected"),
    [("sv", "sv"), ("sv-SE", "sv"), ("NB_no", "nb"), ("no", "nb"), ("nn", "nb"), ("fi", "fi"), ("de", "en"), ("", "en"), (None, "en")],
)
def test_language_resolution(given, expected):
    assert resolve_language(given) == expected


def _template_messages() -> set[str]:
    method_map = [("labels/**.py", "python"), ("templates/labels/**.html", "jinja2")]
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(REPO, method_map):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", [lang for lang in SUPPORTED_LANGUAGES if lang != "en"])
def test_every_message_is_translated(language):
    messages = _template_messages()
    assert len(messages) > 30
    with (LOCALE_DIR / language / "LC_MESSAGES" / "labels.po").open("rb") as handle:
        catalogue = read_po(handle)
    untranslated = sorted(
        message for message in messages if not (catalogue.get(message) and catalogue.get(message).string)
    )
    assert untranslated == []
    assert not [m.id for m in catalogue if m.id and m.fuzzy]
    # Placeholders must survive translation, or rendering would raise KeyError / show %(x)s.
    for message in catalogue:
        if message.id and "%(" in message.id:
            assert sorted(_placeholders(message.id)) == sorted(_placeholders(message.string)), message.id


def test_every_message_used_while_rendering_is_in_every_catalogue(kit, monkeypatch):
    """Catches msgids extraction cannot see (e.g. a gettext call inside an f-string)."""
    used: set[str] = set()
    original = LabelLocale.gettext

    def recording_gettext(self, message, **values):
        used.add(message)
        return original(self, message, **values)

    monkeypatch.setattr(LabelLocale, "gettext", recording_gettext)
    abroad = Address("Ola Nordmann", ("Gate 1",), "0150", "Oslo", "NO", "+4791234567")
    variants = [kit.make_label(language=language, sender=abroad) for language in SUPPORTED_LANGUAGES]
    for voec, route in (("VOEC-1", "voec"), (None, "voec"), (None, "simplified"), (None, "ordinary")):
        variants.append(kit.make_norway_label(norway=NorwayInfo(voec_number=voec, export_mrn=None, entry_route=route)))
    for data in variants:
        render_html([data], "a4")
        render_html([data], "thermal")
        render_zpl(data)
    assert "Phone" in used and "Not stated" in used
    for language in SUPPORTED_LANGUAGES:
        with (LOCALE_DIR / language / "LC_MESSAGES" / "labels.po").open("rb") as handle:
            catalogue = read_po(handle)
        missing = sorted(m for m in used if not (catalogue.get(m) and catalogue.get(m).string))
        assert missing == [], language


def _placeholders(text: str) -> list[str]:
    import re

    return re.findall(r"%\((\w+)\)s", text)


def test_missing_mo_is_compiled_from_po_in_memory(tmp_path):
    locale_dir = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR / "fi", locale_dir / "fi", ignore=shutil.ignore_patterns("*.mo"))
    assert not list(locale_dir.rglob("*.mo"))
    assert translations("fi", locale_dir).gettext("Packing slip") == "Pakkausluettelo"


def test_missing_catalogue_fails_loudly_instead_of_silent_english(tmp_path):
    (tmp_path / "da" / "LC_MESSAGES").mkdir(parents=True)
    with pytest.raises(CatalogueMissingError, match="da"):
        translations("da", tmp_path)


@pytest.mark.parametrize(
    ("language", "minor", "currency", "expected"),
    [
        ("sv", 123_450, "SEK", "1\xa0234,50\xa0kr"),
        ("nb", 99_900, "NOK", "999,00\xa0kr"),
        ("da", 19_995, "DKK", "199,95\xa0kr."),
        ("fi", 4_990, "EUR", "49,90\xa0€"),
        ("en", 1_000, "JPY", "JP¥1,000"),  # zero-digit currency: 1000 minor units = 1000 yen
        ("en", 1_234, "BHD", "BHD1.234"),  # three-digit currency
    ],
)
def test_money_is_formatted_per_locale_with_currency_digits(language, minor, currency, expected):
    assert label_locale(language).money(minor, currency) == expected


def test_money_is_exact_decimal_even_for_huge_amounts():
    amount = money_decimal(123_456_789_012_345_678, "SEK")
    assert amount == Decimal("1234567890123456.78")
    with pytest.raises(TypeError):
        money_decimal(12.5, "SEK")  # type: ignore[arg-type]

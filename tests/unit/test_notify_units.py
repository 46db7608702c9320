"""Pure notification parts: SMS encoding and segments, template validation and rendering, conditions, phones."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from portal.notify import sms
from portal.notify.rules import conditions_match, in_window, normalise_phone
from portal.notify.templates import render_all, render_html, render_text, validate_template, RenderError


def test_plain_nordic_text_is_gsm7_one_segment():
    info = sms.analyse("Hej då")
    assert (info.encoding, info.characters, info.segments, info.ucs2_characters) == ("GSM-7", 6, 1, ())


def test_euro_sign_counts_two_and_stays_gsm():
    info = sms.analyse("€")
    assert (info.encoding, info.characters, info.segments) == ("GSM-7", 2, 1)
    assert sms.analyse("Pris 10 €").characters == 10


def test_danish_norwegian_letters_are_gsm():
    for text in ("Ø", "ø", "Æ", "å", "Å", "ä", "Ö", "ü"):
        assert sms.analyse(text).encoding == "GSM-7", text


def test_polish_l_forces_ucs2_and_is_named():
    info = sms.analyse("Łódź ł ok")
    assert info.encoding == "UCS-2"
    assert set(info.ucs2_characters) >= {"Ł", "ó", "ź", "ł"} and "o" not in info.ucs2_characters
    assert info.characters == 9 and info.segments == 1 and info.per_segment == 70


def test_finnish_without_special_letters_beyond_aao():
    # Finnish ä/ö are GSM; š (used in loan words) is not
    assert sms.analyse("Hyvitys päivää").encoding == "GSM-7"
    assert sms.analyse("šakki").ucs2_characters == ("š",)


@pytest.mark.parametrize("n, segments", [(160, 1), (161, 2), (306, 2), (307, 3)])
def test_gsm_segment_boundaries(n, segments):
    assert sms.analyse("a" * n).segments == segments


def test_extension_char_not_split_across_segments():
    # 152 plain + "€" (2 septets) = 154 > 153 in a concatenated message → the € moves to segment 2
    info = sms.analyse("a" * 152 + "€" + "a" * 10)
    assert info.characters == 164 and info.segments == 2
    assert sms.analyse("a" * 159 + "€").segments == 2  # 161 septets


@pytest.mark.parametrize("n, segments", [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_segment_boundaries(n, segments):
    assert sms.analyse("ł" * n).segments == segments


def test_emoji_takes_two_ucs2_units():
    info = sms.analyse("ok 😀")
    assert info.encoding == "UCS-2" and info.characters == 5


def test_empty_sms_has_no_segments():
    assert sms.analyse("").segments == 0


def test_validate_names_unknown_variables():
    assert validate_template("Hej {{ first_name }}, din retur {{ rma }}") == []
    assert validate_template("Hej {{ firstname }} {{ refund_amnt }}") == ["Unknown variable: firstname",
                                                                         "Unknown variable: refund_amnt"]
    assert validate_template("{% for i in items %}{{ i.name }}{% endfor %}") == []  # loop variable is fine


def test_validate_reports_syntax_errors():
    problems = validate_template("Hej {{ first_name ")
    assert len(problems) == 1 and problems[0].startswith("Template syntax error")


def test_sandbox_refuses_internals_and_strict_undefined():
    with pytest.raises(RenderError):
        render_text("{{ rma.__class__.__mro__ }}", {"rma": "R1"})
    with pytest.raises(RenderError):
        render_text("{{ missing }}", {})


def test_html_is_escaped_text_is_not():
    assert render_html("<p>{{ first_name }}</p>", {"first_name": "<b>Ola</b>"}) == "<p>&lt;b&gt;Ola&lt;/b&gt;</p>"
    assert render_text("{{ first_name }}", {"first_name": "A & B"}) == "A & B"


def test_render_all_collapses_subject_whitespace():
    t = SimpleNamespace(subject="Retur\n {{ rma }}", body_text="x", body_html="", sms_text="{{ rma }}")
    out = render_all(t, {"rma": "R9"})
    assert out.subject == "Retur R9" and out.sms == "R9"


def test_conditions():
    assert conditions_match({}, country="SE", resolution="refund", reasons={"too_small"})
    assert conditions_match({"country": ["no", "SE"]}, country="SE", resolution="refund", reasons=set())
    assert not conditions_match({"country": ["NO"]}, country="SE", resolution="refund", reasons=set())
    assert not conditions_match({"resolution": ["exchange"]}, country="SE", resolution="refund", reasons=set())
    assert conditions_match({"reason": ["damaged", "too_small"]}, country="SE", resolution="refund", reasons={"too_small"})
    assert not conditions_match({"reason": ["damaged"]}, country="SE", resolution="refund", reasons={"too_small"})


def test_date_window():
    rule = SimpleNamespace(starts_on=date(2026, 12, 1), ends_on=date(2026, 12, 24))
    assert not in_window(rule, date(2026, 11, 30))
    assert in_window(rule, date(2026, 12, 1)) and in_window(rule, date(2026, 12, 24))
    assert not in_window(rule, date(2026, 12, 25))
    assert in_window(SimpleNamespace(starts_on=None, ends_on=None), date(2000, 1, 1))


def test_phone_normalisation():
    assert normalise_phone("070-123 45 67", "SE") == "+46701234567"
    assert normalise_phone("+47 412 34 567", "SE") == "+4741234567"
    assert normalise_phone("12", "SE") is None
    assert normalise_phone("", "SE") is None
    assert normalise_phone("not a number", "NO") is None


def test_starter_templates_only_use_known_variables():
    from portal.notify.starter import STARTER_RULES, text_to_html

    for name, _, _, _, _, _, texts in STARTER_RULES:
        assert set(texts) == {"sv", "nb", "da", "fi", "en"}, name
        for language, parts in texts.items():
            for part in (*parts, text_to_html(parts[1])):
                assert validate_template(part) == [], (name, language, part)

"""The brand settings' checks (pure): contrast, phone, web address, logo bytes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from portal.brand import rules
from portal.brand.cache import Brand, display_phone


def image_bytes(fmt: str, size=(10, 10), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format=fmt)
    return buffer.getvalue()


def test_contrast_ratio_matches_wcag():
    assert rules.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert rules.contrast_ratio("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert rules.contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the classic AA grey
    assert rules.contrast_ratio("#1f4e79", "#ffffff") == rules.contrast_ratio("#ffffff", "#1f4e79")


@pytest.mark.parametrize(("raw", "value", "problem"), [
    ("#1F4E79", "#1f4e79", None),
    (" #767676 ", "#767676", None),
    ("#777777", "#777777", "only 4.47:1"),
    ("#ffffff", "#ffffff", "only 1.00:1"),
    ("#fff", "#fff", "six hexadecimal digits"),
    ("red", "red", "six hexadecimal digits"),
    ("#1f4e79;}", "#1f4e79;}", "six hexadecimal digits"),
])
def test_colour(raw, value, problem):
    cleaned, error = rules.check_colour(raw)
    assert cleaned == value
    assert (error is None) if problem is None else (problem in error)


@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("08-765 43 21", "SE", "+4687654321"),
    ("+47 22 00 00 00", "SE", "+4722000000"),
    ("22 00 00 00", "NO", "+4722000000"),
    ("", "SE", ""),
])
def test_phone_is_stored_as_e164(raw, region, e164):
    assert rules.check_phone(raw, region) == (e164, None)


def test_bad_phone_keeps_what_was_typed():
    value, error = rules.check_phone(" 12345 ", "SE")
    assert value == "12345" and "valid phone number" in error
    assert display_phone("+4687654321") == "+46 8 765 43 21"


@pytest.mark.parametrize(("raw", "problem"), [
    ("https://shop.example/help?x=1", None),
    ("", None),
    ("http://shop.example/help", "https://"),
    ("javascript:alert(1)", "https://"),
    ("https://localhost/help", "full web address"),
    ("https://user:pw@shop.example/", "full web address"),
    ("https://shop.example/a b", "full web address"),
    ("https://shop.example/" + "a" * 300, "At most 300"),
])
def test_support_url_is_https_only(raw, problem):
    _value, error = rules.check_url(raw)
    assert (error is None) if problem is None else (problem in error)


def test_name_and_email():
    assert rules.check_name("  Nordic   Shop ") == ("Nordic Shop", None)
    assert "At most 50" in rules.check_name("x" * 51)[1] and "Type" in rules.check_name("  ")[1]
    assert rules.check_email("help@shop.example") == ("help@shop.example", None)
    assert rules.check_email("help@shop")[1]


def test_logo_is_judged_by_its_bytes():
    info, error = rules.check_logo(image_bytes("PNG", (300, 100), "RGBA"))
    assert error is None and (info.content_type, info.width, info.height) == ("image/png", 300, 100)
    assert rules.check_logo(image_bytes("JPEG"))[0].content_type == "image/jpeg"
    for other in (image_bytes("GIF", mode="P"), image_bytes("BMP"), b"<svg xmlns='http://www.w3.org/2000/svg'/>"):
        assert "PNG or JPEG" in rules.check_logo(other)[1]
    assert "2001 × 5 pixels" in rules.check_logo(image_bytes("PNG", (2001, 5)))[1]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.5, -2])
def test_a_cut_off_logo_is_damaged_even_when_pillow_is_told_to_load_truncated_images(monkeypatch, fmt, keep):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what importing WeasyPrint does
    whole = image_bytes(fmt, (300, 100))
    cut = whole[: int(len(whole) * keep)] if keep > 0 else whole[:keep]
    assert rules.check_logo(whole)[1] is None
    assert "damaged" in rules.check_logo(cut)[1]


def test_brand_urls_are_versioned():
    assert Brand().logo_url == "" and Brand().theme_url == "/brand/theme.css?v=1f4e79"

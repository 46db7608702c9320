"""Bad input must still give a readable, scannable label: never an exception, never overflow."""

from __future__ import annotations

import pytest

from labels.model import Address
from labels.render import build_view, render_pdf

LONG_STREET = (
    "Kungsträdgårdsgatan 123 c/o Familjen Andersson-Johansson-Lindqvist-Bergström, trappuppgång B, "
    "våning 14, lägenhet 1402, ingång från gården bakom den gula byggnaden vid parkeringen "
) * 3
UNBREAKABLE = "x" * 240
ODD_NAME = "Zoë Åsa 🙂📦 山田太郎 Ñoño Ǆemal e\u0301\u0301 \u200bAndersson"


@pytest.fixture(scope="module")
def hostile(kit):
    odd = Address(ODD_NAME, (LONG_STREET, UNBREAKABLE, "東京都千代田区千代田１−１"), "114 55", "Stockholm 🏙", "SE", "+46 70 " + "1" * 50)
    return kit.make_label(
        sender=odd,
        recipient=Address("Nordvik Outdoor Returer " * 6, (LONG_STREET,), "553 03", "Jönköping", "SE"),
        merchant_name="Nordvik " * 40,
        carrier_name="PostNord Sverige AB " * 8,
        order_number="9" * 90,
        lines=kit.make_lines(40),
    )


@pytest.fixture(scope="module")
def hostile_thermal(hostile):
    return render_pdf(hostile, "thermal")


@pytest.fixture(scope="module")
def hostile_a4(hostile):
    return render_pdf(hostile, "a4")


def test_thermal_stays_one_page_and_scannable(kit, hostile, hostile_thermal):
    assert len(kit.page_sizes_pt(hostile_thermal)) == 1
    found = kit.decode_page(hostile_thermal, 0, dpi=203)
    assert found.get("Code128") == [hostile.rma]
    assert found.get("QRCode") == [hostile.status_url]


def test_thermal_keeps_postcode_city_and_the_start_of_long_lines(kit, hostile_thermal):
    (text,) = kit.page_texts_pdfium(hostile_thermal)
    assert "553 03 Jönköping" in text and "114 55 Stockholm" in text
    assert "Kungsträdgårdsgatan 123 c/o Familjen" in text
    assert "Zoë Åsa" in text and "Andersson" in text


def test_address_that_fits_is_never_shortened(kit):
    view = build_view(kit.make_label(), "thermal")
    assert view.recipient.lines == ("Nordvik Outdoor Returer", "Lagervägen 4", "Port 3", "553 03 Jönköping")
    assert view.recipient.font_pt == 16


def test_overlong_address_is_shrunk_then_shortened_with_ellipsis(hostile):
    view = build_view(hostile, "thermal")
    assert view.sender.font_pt == 5  # the minimum for the sender box
    assert any(line.endswith("…") for line in view.sender.lines)
    assert "114 55 Stockholm 🏙" in view.sender.lines  # postcode and city survive in full
    assert view.sender.lines[0].startswith("Zoë Åsa")


def test_a4_with_forty_lines_continues_with_repeated_table_header(kit, hostile, hostile_a4):
    pages = kit.page_texts_pdfium(hostile_a4)
    assert len(pages) >= 2
    text = " ".join(pages)
    for line in hostile.lines:
        assert line.sku in text
    slip_pages = [page for page in pages if "NV-0" in page]
    assert len(slip_pages) >= 2
    assert all("Artikelnr Beskrivning Antal Orsak" in page for page in slip_pages)


def test_a4_with_hostile_input_scans_at_150_dpi(kit, hostile, hostile_a4):
    found = kit.decode_page(hostile_a4, 0, dpi=150)
    assert found.get("Code128") == [hostile.rma]
    assert found.get("QRCode") == [hostile.status_url]
    assert "553 03 Jönköping" in kit.page_texts_pdfium(hostile_a4)[0]


def test_long_rma_gets_a_smaller_whole_dot_module_and_still_scans(kit):
    rma = "RMA-2025-11-22-NORDVIK-000123"
    view = build_view(kit.make_label(rma=rma), "thermal")
    assert 'width="' in view.barcode_svg
    pdf = render_pdf(kit.make_label(rma=rma), "thermal")
    assert kit.decode_page(pdf, 0, dpi=203).get("Code128") == [rma]


def test_empty_optional_parts_render(kit):
    bare = Address("", (), "", "", "SE")
    pdf = render_pdf(kit.make_label(sender=bare, lines=()), "a4")
    assert kit.decode_page(pdf, 0, dpi=150).get("Code128") == ["R7K4-MX2Q"]

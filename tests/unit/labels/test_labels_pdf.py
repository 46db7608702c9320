"""Rendered PDFs, checked the way a carrier and a consumer would: scan it, read it, measure it."""

from __future__ import annotations

import pytest

from labels.model import Address
from labels.render import render_html, render_pdf

A4_PT = (595.28, 841.89)
THERMAL_PT = (283.46, 425.20)


@pytest.fixture(scope="module")
def swedish(kit):
    return kit.make_label()


@pytest.fixture(scope="module")
def thermal_pdf(swedish):
    return render_pdf(swedish, "thermal")


@pytest.fixture(scope="module")
def a4_pdf(swedish):
    return render_pdf(swedish, "a4")


def test_thermal_is_exactly_one_100x150_page(kit, thermal_pdf):
    (size,) = kit.page_sizes_pt(thermal_pdf)
    assert size == pytest.approx(THERMAL_PT, abs=0.5)


def test_thermal_barcode_and_qr_scan_at_203_dpi(kit, swedish, thermal_pdf):
    found = kit.decode_page(thermal_pdf, 0, dpi=203)
    assert found.get("Code128") == [swedish.rma]
    assert found.get("QRCode") == [swedish.status_url]


def test_thermal_shows_both_addresses_rma_and_carrier(kit, swedish, thermal_pdf):
    text = kit.pdf_text(thermal_pdf)
    for expected in (
        "Nordvik Outdoor Returer", "Lagervägen 4", "553 03 Jönköping",
        "Anna Andersson", "Storgatan 12 lgh 1102", "114 55 Stockholm", "Tel. +46701234567",
        swedish.rma, "PostNord", "100234", "14 december 2025",
    ):
        assert expected in text


def test_a4_is_a4_and_scans_at_150_dpi(kit, swedish, a4_pdf):
    sizes = kit.page_sizes_pt(a4_pdf)
    assert sizes and all(size == pytest.approx(A4_PT, abs=0.5) for size in sizes)
    found = kit.decode_page(a4_pdf, 0, dpi=150)
    assert found.get("Code128") == [swedish.rma]
    assert found.get("QRCode") == [swedish.status_url]


def test_a4_has_label_instructions_and_packing_slip(kit, swedish, a4_pdf):
    text = kit.pdf_text(a4_pdf)
    for expected in ("Nordvik Outdoor Returer", "553 03 Jönköping", "Anna Andersson", "114 55 Stockholm", swedish.rma):
        assert expected in text
    # Instructions: pack, fasten, drop off with carrier and deadline, follow with the RMA.
    assert "Så skickar du din retur" in text
    assert "Tejpa fast den slätt".lower() in text.lower()
    assert "Lämna in paketet hos ett PostNord-ombud eller i ett paketskåp senast 14 december 2025" in text
    assert f"Ditt returnummer är {swedish.rma}" in text
    assert swedish.status_url in text
    # Packing slip lists every returned line with SKU, description, quantity and reason.
    assert "Följesedel" in text
    for line in swedish.lines:
        assert line.sku in text and line.description in text
    assert text.count("Too small") == len(swedish.lines)


def test_domestic_addresses_have_no_country_line_but_international_do(kit):
    domestic = render_html([kit.make_label()], "thermal")
    assert "SVERIGE" not in domestic
    abroad = kit.make_label(sender=Address("Ola", ("Gate 1",), "0150", "Oslo", "NO"))
    html = render_html([abroad], "thermal")
    assert "SVERIGE" in html and "NORGE" in html


def test_user_text_is_escaped_not_interpreted(kit):
    sneaky = kit.make_label(merchant_name="<script>x</script>", brand_colour="red; background: url(http://x)")
    html = render_html([sneaky], "a4")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "url(http://x)" not in html and "#1f4e79" in html


def test_unknown_layout_is_refused(kit):
    with pytest.raises(ValueError, match="layout"):
        render_pdf(kit.make_label(), "letter")  # type: ignore[arg-type]


def test_template_dir_can_be_overridden(kit, tmp_path):
    import shutil

    from labels.render import DEFAULT_TEMPLATE_DIR

    custom = tmp_path / "labels"
    shutil.copytree(DEFAULT_TEMPLATE_DIR, custom)
    thermal = custom / "thermal.html"
    thermal.write_text(thermal.read_text().replace('<div class="t-head">', '<div class="t-head"><!-- custom -->'))
    (custom / "thermal.css").write_text((custom / "thermal.css").read_text() + "\n.t-head { background: #333; }\n")
    pdf = render_pdf(kit.make_label(), "thermal", template_dir=custom)
    assert kit.decode_page(pdf, 0, dpi=203).get("Code128") == ["R7K4-MX2Q"]
    assert "custom" in render_html([kit.make_label()], "thermal", custom)


def test_brand_colour_is_used_only_when_safe_and_readable():
    from labels.render import brand_ink

    assert brand_ink("#1f4e79") == "#1f4e79"
    assert brand_ink("#C00") == "#C00"
    assert brand_ink("#ffff66") == "#000"  # pale yellow on white paper: use black
    assert brand_ink("red;}") == "#1f4e79"


def test_short_packing_slip_stays_together_with_its_header(kit):
    from labels.render import SLIP_COMPACT_MAX_LINES

    # The longest list still set as one block, after the Norwegian customs pages: never split.
    data = kit.make_norway_label(lines=kit.make_lines(SLIP_COMPACT_MAX_LINES, currency="NOK"))
    pages = kit.page_texts_pdfium(render_pdf(data, "a4"))
    (slip_page,) = [page for page in pages if "NV-0000" in page and "Pakkseddel" in page]
    assert "Varenr. Beskrivelse Antall Årsak" in slip_page
    assert all(line.sku in slip_page for line in data.lines)


def test_long_packing_slip_pages_are_footed_with_rma_and_order(kit):
    data = kit.make_label(lines=kit.make_lines(40))
    pages = kit.page_texts_pdfium(render_pdf(data, "a4"))
    assert len(pages) >= 2
    assert all("Returnummer (RMA) R7K4-MX2Q · Order 100234" in page for page in pages)


@pytest.mark.parametrize("layout", ["a4", "thermal"])
def test_barcodes_are_one_pixel_per_module_images_never_smoothed(kit, swedish, layout):
    import io

    from pypdf import PdfReader

    from labels.barcode import symbol_width_modules
    from labels.qr import qr_matrix

    page = PdfReader(io.BytesIO(render_pdf(swedish, layout))).pages[0]
    images = [obj.get_object() for obj in page["/Resources"]["/XObject"].values()]
    images = [image for image in images if image["/Subtype"] == "/Image"]
    qr_size = len(qr_matrix(swedish.status_url)) + 8
    sizes = sorted((image["/Width"], image["/Height"]) for image in images)
    assert sizes == sorted([(qr_size, qr_size), (symbol_width_modules(swedish.rma), 1)])
    for image in images:
        # Scaled up by the printer without interpolation: every module edge stays sharp.
        assert image.get("/Interpolate") == False  # noqa: E712 (pypdf BooleanObject, not a bool)
        assert image["/ColorSpace"] == "/DeviceGray" and image["/BitsPerComponent"] == 8


def test_template_line_breaks_between_tags_go_but_text_whitespace_stays(kit):
    html = render_html([kit.make_label()], "a4")
    assert "</p>\n" not in html and "</div>\n  <" not in html  # the templates' own formatting
    assert "<b>1. Packa.</b> Lägg" in html  # a space between inline content is kept
    assert "Nordvik Outdoor Returer\nLagervägen 4\nPort 3\n553 03 Jönköping" in html  # pre-line address

"""Code128 and QR SVGs: structure checked by parsing, scannability checked by a real decoder."""

from __future__ import annotations

import re

import pytest
from barcode.codex import Code128
from hypothesis import given, settings
from hypothesis import strategies as st

from labels.barcode import code128_svg
from labels.qr import qr_matrix, qr_svg

RMA = "R7K4-MX2Q"
PATH_RECT = re.compile(r"M(\d+),0h(\d+)v[\d.]+h-(\d+)z")


def bars_from_svg(svg: str) -> tuple[str, int]:
    """Rebuild the module string from the single path, and the total width in modules."""
    (d,) = re.findall(r'<path[^>]* d="([^"]+)"', svg)
    total = int(re.search(r'viewBox="0 0 (\d+) ', svg).group(1))
    modules = ["0"] * total
    for start, width, back in PATH_RECT.findall(d):
        assert width == back
        for index in range(int(start), int(start) + int(width)):
            modules[index] = "1"
    return "".join(modules), total


def test_all_bars_are_one_path_sized_in_mm():
    svg = code128_svg(RMA, module_mm=0.375, bar_height_mm=18)
    assert svg.count("<path") == 1
    expected_modules = len(Code128(RMA).build()[0]) + 2 * 10
    width_mm = float(re.search(r'width="([\d.]+)mm"', svg).group(1))
    assert width_mm == pytest.approx(expected_modules * 0.375)
    assert re.search(r'height="[\d.]+mm"', svg)


def test_bars_match_python_barcode_with_quiet_zones():
    svg = code128_svg(RMA, quiet_zone_modules=10)
    modules, total = bars_from_svg(svg)
    symbol = Code128(RMA).build()[0]
    assert modules == "0" * 10 + symbol + "0" * 10
    assert total == len(symbol) + 20


def test_quiet_zone_is_never_below_ten_modules():
    modules, _ = bars_from_svg(code128_svg(RMA, quiet_zone_modules=2))
    assert modules.startswith("0" * 10) and modules.endswith("0" * 10)
    assert modules[10] == "1"


def test_human_readable_text_is_optional():
    assert f">{RMA}</text>" in code128_svg(RMA, human_readable=True)
    assert "<text" not in code128_svg(RMA, human_readable=False)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=24))
def test_any_printable_ascii_payload_round_trips_through_the_path(payload):
    modules, _ = bars_from_svg(code128_svg(payload))
    assert modules.strip("0") == Code128(payload).build()[0].strip("0")
    # Markup characters in the payload must be escaped, not break the SVG.
    assert svg_is_single_root(code128_svg(payload))


def svg_is_single_root(svg: str) -> bool:
    import xml.etree.ElementTree as ElementTree

    return ElementTree.fromstring(svg).tag.endswith("svg")


@pytest.mark.parametrize("payload", ["", "RÖÖ-1234", "R7K4\u2013MX2Q"])
def test_payload_that_cannot_be_encoded_exactly_is_refused(payload):
    with pytest.raises(ValueError):
        code128_svg(payload)


@pytest.mark.parametrize("module_mm", [0.375, 0.25])
def test_bare_svg_decodes_at_203_dpi(kit, module_mm):
    pdf = kit.render_svg_to_pdf(code128_svg(RMA, module_mm=module_mm), width_mm=80, height_mm=40)
    assert kit.decode_page(pdf, 0, dpi=203).get("Code128") == [RMA]


def test_qr_svg_has_quiet_zone_size_and_decodes(kit):
    svg = qr_svg(kit.STATUS_URL, size_mm=25)
    modules = len(qr_matrix(kit.STATUS_URL))
    assert 'width="25mm"' in svg and 'height="25mm"' in svg
    assert f'viewBox="0 0 {modules + 8} {modules + 8}"' in svg
    assert svg.count("<path") == 1
    first_dark = min(int(x) for x in re.findall(r"M(\d+) ", svg))
    assert first_dark == 4  # the finder pattern starts right after the 4-module quiet zone
    pdf = kit.render_svg_to_pdf(svg, width_mm=40, height_mm=40)
    assert kit.decode_page(pdf, 0, dpi=150).get("QRCode") == [kit.STATUS_URL]


def test_qr_uses_error_correction_m_as_read_by_the_scanner(kit):
    import pypdfium2
    import zxingcpp

    pdf = kit.render_svg_to_pdf(qr_svg(kit.STATUS_URL, size_mm=25), width_mm=40, height_mm=40)
    image = pypdfium2.PdfDocument(pdf)[0].render(scale=150 / 72).to_pil()
    (result,) = zxingcpp.read_barcodes(image)
    assert result.ec_level == "M"

"""QR and barcode images: the faster mask choice gives segno's symbol bit for bit, and the
PNGs the labels embed hold exactly one pixel per module."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import segno
from barcode.codex import Code128
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labels.barcode import code128_png
from labels.qr import QUIET_ZONE_MODULES, qr_matrix, qr_png
from labels.qrmask import fast_qr_matrix
from labels.render import GEOMETRY, DEFAULT_TEMPLATE_DIR, AddressView

URL_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x17F), min_size=1, max_size=400)


@settings(max_examples=120, deadline=None)
@given(URL_TEXT)
def test_fast_mask_choice_is_segnos_symbol(url):
    # Up to 400 characters reaches version 13, so version information is covered too.
    assert tuple(fast_qr_matrix(url)) == segno.make_qr(url, error="m", boost_error=False).matrix


@pytest.mark.parametrize("length", [1, 17, 54, 120, 230])
def test_fast_mask_choice_for_status_urls(length):
    url = "https://returns.example.se/s/" + ("Zq3kP9wXv2LmN8bT" * 20)[:length]
    expected = segno.make_qr(url, error="m", boost_error=False)
    assert tuple(fast_qr_matrix(url)) == expected.matrix
    assert expected.error == "M"


def _pixels(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "L" and image.format == "PNG"
    return image


def test_qr_png_is_one_pixel_per_module_with_quiet_zone(kit):
    matrix = qr_matrix(kit.STATUS_URL)
    image = _pixels(qr_png(kit.STATUS_URL))
    size = len(matrix) + 2 * QUIET_ZONE_MODULES
    assert image.size == (size, size)
    dark = {(x, y) for y in range(size) for x in range(size) if image.getpixel((x, y)) == 0}
    expected = {
        (x + QUIET_ZONE_MODULES, y + QUIET_ZONE_MODULES) for y, row in enumerate(matrix) for x, on in enumerate(row) if on
    }
    assert dark == expected
    assert set(image.tobytes()) == {0, 255}


@pytest.mark.parametrize("payload", ["R7K4-MX2Q", "RMA-2025-11-22-NORDVIK-000123"])
def test_barcode_png_is_one_pixel_per_module_with_quiet_zones(payload):
    image = _pixels(code128_png(payload))
    modules = "".join("1" if image.getpixel((x, 0)) == 0 else "0" for x in range(image.width))
    assert image.height == 1
    assert modules == "0" * 10 + Code128(payload).build()[0] + "0" * 10


def test_every_address_size_fit_can_choose_has_a_css_class():
    base_css = (Path(DEFAULT_TEMPLATE_DIR) / "base.css").read_text()
    defined = set(re.findall(r"^\.(fs\d+) \{ font-size: ([\d.]+)pt; \}", base_css, flags=re.M))
    for geometry in GEOMETRY.values():
        for box in (geometry.recipient, geometry.sender):
            size = box.max_pt
            while size >= box.min_pt:
                view = AddressView(lines=("x",), font_pt=size)
                assert (view.size_class, f"{size:g}") in defined, (view.size_class, size)
                size -= 0.5

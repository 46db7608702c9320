"""The merchant's logo on the label: small, in the sender block, and never in the barcodes' way."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader

from labels import render_pdf
from labels.logo import fit_logo, logo_format
from labels.render import GEOMETRY, build_view, render_html


def make_logo(fmt: str = "PNG", size: tuple[int, int] = (400, 160)) -> bytes:
    image = Image.new("RGBA" if fmt == "PNG" else "RGB", size, (255, 255, 255, 0) if fmt == "PNG" else "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, size[1] - 1), (size[0] // 4, 0), (size[0] // 2, size[1] - 1)], fill=(31, 78, 121))
    draw.rectangle([size[0] // 2 + 10, size[1] // 4, size[0] - 1, size[1] * 3 // 4], fill=(200, 60, 30))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def images_on_first_page(pdf: bytes) -> list:
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    objects = [obj.get_object() for obj in page["/Resources"]["/XObject"].values()]
    return [obj for obj in objects if obj["/Subtype"] == "/Image"]


@pytest.mark.parametrize(("layout", "dpi", "colour_space"), [("thermal", 203, "/DeviceGray"), ("a4", 150, "/DeviceRGB")])
def test_logo_is_one_more_image_and_the_codes_still_scan(kit, layout, dpi, colour_space):
    data = kit.make_label(logo=make_logo())
    pdf = render_pdf(data, layout)
    without = images_on_first_page(render_pdf(kit.make_label(), layout))
    images = images_on_first_page(pdf)
    assert len(images) == len(without) + 1
    (logo,) = [image for image in images if image["/ColorSpace"] == colour_space and image["/Height"] > 1
               and image["/Width"] != image["/Height"]]
    box = GEOMETRY[layout].logo
    # Never more pixels than the printer prints in the box; aspect ratio kept (400 x 160).
    assert logo["/Width"] <= round(box.width_mm / 25.4 * box.dpi) + 1
    assert logo["/Width"] / logo["/Height"] == pytest.approx(400 / 160, rel=0.05)
    found = kit.decode_page(pdf, 0, dpi=dpi)
    assert found.get("Code128") == [data.rma]
    assert found.get("QRCode") == [data.status_url]


def test_jpeg_logo_is_drawn_and_the_sender_box_narrows(kit):
    data = kit.make_label(logo=make_logo("JPEG", (300, 300)))
    view = build_view(data, "thermal")
    assert view.logo is not None and view.logo.src.startswith("data:image/png;base64,")
    assert view.logo.width_mm == pytest.approx(14) and view.logo.height_mm == pytest.approx(14)  # square in 22 x 14
    assert 'class="logo"' in render_html([data], "thermal")
    assert "Anna Andersson" in kit.pdf_text(render_pdf(data, "thermal"))


@pytest.mark.parametrize("junk", [b"GIF89a" + b"\0" * 40, b"just some text, named logo.png", b"\x89PNG\r\n\x1a\nbroken"])
def test_anything_but_a_sound_png_or_jpeg_is_left_off_and_the_label_still_renders(kit, junk):
    assert fit_logo(junk, 22, 14, 203, True) is None
    data = kit.make_label(logo=junk)
    assert build_view(data, "thermal").logo is None
    pdf = render_pdf(data, "thermal")
    assert kit.decode_page(pdf, 0, dpi=203).get("Code128") == [data.rma]


def test_logo_format_reads_the_magic_bytes_not_the_name():
    assert logo_format(make_logo("PNG")) == "png"
    assert logo_format(make_logo("JPEG")) == "jpeg"
    assert logo_format(b"GIF89a...") is None

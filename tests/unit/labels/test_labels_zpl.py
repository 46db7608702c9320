"""ZPL II for direct thermal printing: structure, barcode data, escaping, resolution."""

from __future__ import annotations

import re

import pytest

from labels.model import Address
from labels.zpl import escape_field, render_zpl


def test_zpl_is_one_well_formed_utf8_label(kit):
    zpl = render_zpl(kit.make_label())
    assert zpl.startswith("^XA\n^CI28\n") and zpl.rstrip().endswith("^XZ")
    assert zpl.count("^XA") == 1 and zpl.count("^XZ") == 1
    assert "^PW799" in zpl and "^LL1199" in zpl  # 100 x 150 mm at 8 dots/mm
    # Every field opened with ^FD is closed with ^FS, and every line is a ZPL command.
    assert zpl.count("^FD") == zpl.count("^FS") - zpl.count("^GB")
    assert all(line.startswith("^") for line in zpl.strip().splitlines())


def test_code128_carries_the_rma_with_three_dot_modules(kit):
    zpl = render_zpl(kit.make_label())
    assert "^BY3,3," in zpl
    assert re.search(r"\^BCN,\d+,N,N,N\^FH\^FD>:R7K4-MX2Q\^FS", zpl)


def test_qr_carries_the_status_url_with_error_correction_m(kit):
    zpl = render_zpl(kit.make_label())
    assert re.search(r"\^BQN,2,\d+\^FH\^FDMA," + re.escape(kit.STATUS_URL) + r"\^FS", zpl)


def test_addresses_and_texts_are_in_the_label_language(kit):
    zpl = render_zpl(kit.make_label(language="fi"))
    for expected in ("VASTAANOTTAJA", "LÄHETTÄJÄ", "Nordvik Outdoor Returer", "553 03 Jönköping", "JÄTÄ VIIMEISTÄÄN", "14. joulukuuta 2025"):
        assert expected in zpl


def test_field_data_cannot_inject_commands(kit):
    evil = Address("Eve ^XZ^XA~JR", ("Under_score \\& back",), "0150", "Oslo", "NO")
    zpl = render_zpl(kit.make_label(sender=evil, status_url="https://x.example/s/a_b~c"))
    assert zpl.count("^XA") == 1 and zpl.count("^XZ") == 1 and "~JR" not in zpl
    assert "Eve _5EXZ_5EXA_7EJR" in zpl
    assert "Under_5Fscore _5C& back" in zpl
    assert "^FDMA,https://x.example/s/a_5Fb_7Ec^FS" in zpl


def test_escape_field_encodes_utf8_bytes_of_control_characters():
    assert escape_field("a\nb") == "a_0Ab"
    assert escape_field("Åse") == "Åse"  # ^CI28 prints UTF-8 directly


def test_barcode_invocation_characters_are_escaped(kit):
    zpl = render_zpl(kit.make_label(rma="A>B~C"))
    assert "^FD>:A><B>=C^FS" in zpl


@pytest.mark.parametrize(("dpi", "width", "module"), [(203, 799, 3), (300, 1181, 4), (600, 2362, 9)])
def test_resolution_scales_the_layout(kit, dpi, width, module):
    zpl = render_zpl(kit.make_label(), dpi=dpi)
    assert f"^PW{width}" in zpl and f"^BY{module},3," in zpl


def test_unsupported_resolution_is_refused(kit):
    with pytest.raises(ValueError, match="dpi"):
        render_zpl(kit.make_label(), dpi=72)


def test_hostile_input_stays_inside_the_label(kit):
    long = Address("N" * 300, ("Gatan " * 100,) * 4, "114 55", "Stockholm", "SE")
    zpl = render_zpl(kit.make_label(sender=long, recipient=long, order_number="9" * 200))
    positions = [tuple(map(int, match)) for match in re.findall(r"\^FO(\d+),(\d+)", zpl)]
    assert all(0 <= x < 799 and 0 <= y < 1199 for x, y in positions)
    widths = [int(width) for width in re.findall(r"\^FB(\d+),", zpl)]
    assert all(width <= 799 - 32 for width in widths)
    assert "114 55 Stockholm" in zpl

"""Fixed-width packing slip rows: every field wrapped inside its column, columns aligned."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labels.columns import GAP, Column, char_cells, format_row, text_cells, wrap_cells
from labels.render import SLIP_COLUMNS, build_view

COLUMNS = (Column(10), Column(20), Column(4, "right"), Column(8))


def test_cells_follow_the_monospace_font():
    assert [char_cells(c) for c in "aWÅ-1"] == [1, 1, 1, 1, 1]  # all in DejaVu Sans Mono
    assert char_cells("\u0301") == 0 and char_cells("\u200b") == 0  # combining mark, zero-width space
    assert char_cells("山") == 2 and char_cells("🙂") == 2  # fallback fonts, about two cells wide


def test_wrap_keeps_words_and_breaks_only_overlong_ones():
    assert wrap_cells("Merino wool sweater, size M", 12) == ["Merino wool", "sweater,", "size M"]
    assert wrap_cells("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert wrap_cells("", 10) == [""]
    assert wrap_cells("  spaced   out  ", 20) == ["spaced out"]


def test_row_lines_align_on_column_starts():
    text = format_row(("NV-0001", "Merino wool sweater, size M, item 1", "12", "Too small"), COLUMNS)
    lines = text.split("\n")
    assert lines[0] == "NV-0001     Merino wool sweater,    12  Too"
    assert lines[1] == "            size M, item 1              small"
    starts = [0, 12, 34, 40]  # each column's width plus the two-cell gap
    assert lines[1][starts[1] :].startswith("size M") and lines[1][starts[3] :] == "small"


ONE_CELL_TEXT = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=0x17F, whitelist_categories=("L", "N", "P", "S", "Zs")),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(st.lists(ONE_CELL_TEXT, min_size=4, max_size=4))
def test_every_field_stays_in_its_column_and_loses_no_word(fields):
    lines = format_row(fields, COLUMNS).split("\n")
    start = 0
    for field, column in zip(fields, COLUMNS):
        parts = [line[start : start + column.width] for line in lines]
        assert all(line[start + column.width : start + column.width + len(GAP)].strip() == "" for line in lines)
        assert " ".join(" ".join(parts).split()) == " ".join(field.split()) or (
            # a word longer than the column is broken across lines
            "".join("".join(parts).split()) == "".join(field.split())
        )
        start += column.width + len(GAP)
    assert all(len(line) <= start - len(GAP) for line in lines)


def test_slip_rows_fit_the_a4_table_width():
    # 8 pt DejaVu Sans Mono: 1.70 mm a cell, 183 mm inside the slip's padding.
    assert sum(column.width for column in SLIP_COLUMNS) + len(GAP) * (len(SLIP_COLUMNS) - 1) <= 183 / 1.6991


def test_view_formats_header_and_one_row_per_returned_line(kit):
    view = build_view(kit.make_label(language="sv", lines=kit.make_lines(2)), "a4")
    assert view.slip_header.split() == ["Artikelnr", "Beskrivning", "Antal", "Orsak"]
    assert len(view.slip_rows) == 2 and view.slip_rows[1].split()[0] == "NV-0001"
    assert view.slip_compact
    assert not build_view(kit.make_label(lines=kit.make_lines(40)), "a4").slip_compact


@pytest.mark.parametrize("width", [0, 1])
def test_too_narrow_column_is_refused(width):
    with pytest.raises(ValueError):
        wrap_cells("text", width)

"""Fixed-width text columns, for the packing slip.

WeasyPrint lays out every table cell as its own box and every text line as its own Pango
layout, so a 4-column table costs four boxes per returned line. Set in a monospace font,
one preformatted line per returned line gives the same aligned columns at a fraction of
the cost, and a one-column table around them still repeats the header on every page.

Widths are counted in character cells of DejaVu Sans Mono: a character the font has takes
one cell, a combining mark or format character none. Characters it lacks are drawn from a
fallback font; their width is estimated from fit.py's metrics and rounded to whole cells,
so a line with, say, CJK or emoji text may shift the columns after it a little.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from .fit import FONT_DIRS, font_metrics

GAP = "  "
MONO_FONT_FILE = "DejaVuSansMono.ttf"
MONO_ADVANCE_EM = 1233 / 2048  # every DejaVu Sans Mono glyph


@lru_cache(maxsize=1)
def _mono_codepoints() -> frozenset[int]:
    from fontTools.ttLib import TTFont  # WeasyPrint dependency; imported lazily, only once

    for directory in FONT_DIRS:
        path = directory / MONO_FONT_FILE
        if path.is_file():
            return frozenset(TTFont(str(path), lazy=True).getBestCmap())
    return frozenset()


@dataclass(frozen=True)
class Column:
    width: int  # in character cells
    align: Literal["left", "right"] = "left"


@lru_cache(maxsize=4096)
def char_cells(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf", "Cc"):
        return 0
    if ord(char) in _mono_codepoints():
        return 1
    return max(1, round(font_metrics(bold=False).char_width_em(char) / MONO_ADVANCE_EM))


def text_cells(text: str) -> int:
    return sum(char_cells(char) for char in text)


def wrap_cells(text: str, width: int) -> list[str]:
    """Greedy word wrap to `width` cells; a word longer than a line is broken anywhere."""
    if width < 2:
        raise ValueError("a column must be at least two cells wide")
    lines: list[str] = []
    line, used = "", 0
    for word in " ".join(text.split()).split(" "):
        size = text_cells(word)
        if line and used + 1 + size <= width:
            line, used = f"{line} {word}", used + 1 + size
            continue
        if line:
            lines.append(line)
            line, used = "", 0
        for char in word:  # a new line; break the word if it does not fit on one
            cells = char_cells(char)
            if used + cells > width and line:
                lines.append(line)
                line, used = "", 0
            line, used = line + char, used + cells
    if line or not lines:
        lines.append(line)
    return lines


def _pad(text: str, column: Column) -> str:
    padding = " " * max(column.width - text_cells(text), 0)
    return padding + text if column.align == "right" else text + padding


def format_row(fields: Sequence[str], columns: Sequence[Column]) -> str:
    """One table row as preformatted lines: every field wrapped within its column."""
    if len(fields) != len(columns):
        raise ValueError(f"{len(fields)} fields for {len(columns)} columns")
    wrapped = [wrap_cells(field, column.width) for field, column in zip(fields, columns)]
    height = max(len(lines) for lines in wrapped)
    rows = []
    for index in range(height):
        parts = [_pad(lines[index] if index < len(lines) else "", column) for lines, column in zip(wrapped, columns)]
        rows.append(GAP.join(parts).rstrip())
    return "\n".join(rows)

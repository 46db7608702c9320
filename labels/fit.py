"""Shrink-to-fit for fixed label boxes.

WeasyPrint cannot fit text to a box, so we estimate wrapped text height from the real
glyph advances of the font the CSS asks for (DejaVu Sans) and pick the largest font size
that fits. CSS still clips (overflow: hidden) as a last resort, so a wrong estimate can
never push content off the label or onto a second thermal page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MM_PER_PT = 25.4 / 72
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"), Path("/usr/local/share/fonts"))
# Used for characters the font lacks (fallback fonts) or when no font file is found.
DEFAULT_ADVANCE_EM = 0.72
WIDE_ADVANCE_EM = 1.0


@dataclass(frozen=True)
class FontMetrics:
    advances_em: dict[int, float]

    def char_width_em(self, char: str) -> float:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            return 0.0
        if unicodedata.east_asian_width(char) in ("W", "F"):
            return WIDE_ADVANCE_EM  # CJK and most emoji are full-width in every fallback font
        return self.advances_em.get(ord(char), DEFAULT_ADVANCE_EM)

    def text_width_em(self, text: str) -> float:
        return sum(self.char_width_em(char) for char in text)


@lru_cache(maxsize=4)
def font_metrics(bold: bool) -> FontMetrics:
    filename = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for directory in FONT_DIRS:
        path = directory / filename
        if path.is_file():
            return FontMetrics(advances_em=_read_advances(path))
    return FontMetrics(advances_em={})


def _read_advances(path: Path) -> dict[int, float]:
    from fontTools.ttLib import TTFont  # WeasyPrint dependency; imported lazily, only once

    font = TTFont(str(path), lazy=True)
    units_per_em = font["head"].unitsPerEm
    metrics = font["hmtx"].metrics
    return {codepoint: metrics[glyph][0] / units_per_em for codepoint, glyph in font.getBestCmap().items()}


def wrapped_rows(text: str, line_width_em: float, metrics: FontMetrics) -> int:
    """Rows a paragraph takes with greedy word wrap and overflow-wrap: anywhere."""
    if not text.strip():
        return 1
    rows = 1
    used = 0.0
    space = metrics.char_width_em(" ")
    for word in text.split():
        width = metrics.text_width_em(word)
        needed = width if used == 0 else used + space + width
        if needed <= line_width_em:
            used = needed
            continue
        if used > 0:
            rows += 1
            used = 0.0
        # A word longer than the line is broken anywhere, character by character.
        for char in word:
            char_width = metrics.char_width_em(char)
            if used + char_width > line_width_em and used > 0:
                rows += 1
                used = 0.0
            used += char_width
    return rows


def fit_font_size_pt(
    paragraphs: Sequence[str],
    *,
    box_width_mm: float,
    box_height_mm: float,
    max_pt: float,
    min_pt: float,
    bold: bool = False,
    line_height: float = 1.2,
    step_pt: float = 0.5,
) -> float:
    """Largest size in [min_pt, max_pt] (in step_pt steps) at which the paragraphs fit the box."""
    metrics = font_metrics(bold)
    size = max_pt
    while size > min_pt:
        if _rows_at(paragraphs, size, box_width_mm, metrics) * size * MM_PER_PT * line_height <= box_height_mm:
            return size
        size -= step_pt
    return min_pt


def _rows_at(paragraphs: Sequence[str], size_pt: float, box_width_mm: float, metrics: FontMetrics) -> int:
    line_width_em = box_width_mm / (size_pt * MM_PER_PT)
    return sum(wrapped_rows(text, line_width_em, metrics) for text in paragraphs)


def truncate_to_rows(text: str, max_rows: int, line_width_em: float, metrics: FontMetrics) -> str:
    """Longest prefix of text (plus an ellipsis) that wraps into max_rows rows."""
    if max_rows <= 0:
        return ""
    if wrapped_rows(text, line_width_em, metrics) <= max_rows:
        return text
    low, high = 0, len(text)
    while low < high:  # binary search on the prefix length
        middle = (low + high + 1) // 2
        if wrapped_rows(text[:middle].rstrip() + "…", line_width_em, metrics) <= max_rows:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


@dataclass(frozen=True)
class FittedText:
    font_pt: float
    paragraphs: tuple[str, ...]


def fit_block(
    paragraphs: Sequence[str],
    *,
    squeezable: frozenset[int],
    box_width_mm: float,
    box_height_mm: float,
    max_pt: float,
    min_pt: float,
    bold: bool = False,
    line_height: float = 1.2,
    fixed_max_rows: int = 2,
) -> FittedText:
    """Shrink the text to fit; if even min_pt is too big, shorten paragraphs with an ellipsis.

    Paragraphs whose index is not in `squeezable` (name, postcode and city) keep up to
    fixed_max_rows rows each; the squeezable ones (street lines) share what is left, at
    least one row each while there is room, so the postcode and city are never pushed out.
    """
    size = fit_font_size_pt(
        paragraphs,
        box_width_mm=box_width_mm,
        box_height_mm=box_height_mm,
        max_pt=max_pt,
        min_pt=min_pt,
        bold=bold,
        line_height=line_height,
    )
    metrics = font_metrics(bold)
    if _rows_at(paragraphs, size, box_width_mm, metrics) * size * MM_PER_PT * line_height <= box_height_mm:
        return FittedText(font_pt=size, paragraphs=tuple(paragraphs))

    line_width_em = box_width_mm / (size * MM_PER_PT)
    rows_available = int(box_height_mm // (size * MM_PER_PT * line_height))
    budget = {index: 0 for index in range(len(paragraphs))}
    needed = {index: wrapped_rows(text, line_width_em, metrics) for index, text in enumerate(paragraphs)}
    fixed = [index for index in budget if index not in squeezable]
    flexible = [index for index in budget if index in squeezable]
    for index in fixed:
        budget[index] = min(needed[index], fixed_max_rows)
    remaining = rows_available - sum(budget.values())
    for index in flexible:  # one row each first, in reading order
        if remaining <= 0:
            break
        budget[index] = 1
        remaining -= 1
    for index in flexible:  # then the rest, in reading order
        extra = min(needed[index] - budget[index], remaining)
        if budget[index] and extra > 0:
            budget[index] += extra
            remaining -= extra
    shortened = (
        truncate_to_rows(text, budget[index], line_width_em, metrics) for index, text in enumerate(paragraphs)
    )
    return FittedText(font_pt=size, paragraphs=tuple(text for text in shortened if text))

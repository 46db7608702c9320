"""Shrink-to-fit estimates used to keep text inside fixed label boxes."""

from __future__ import annotations

from labels.fit import fit_block, fit_font_size_pt, font_metrics, truncate_to_rows, wrapped_rows


def test_dejavu_metrics_are_loaded():
    metrics = font_metrics(bold=False)
    assert metrics.char_width_em("i") < metrics.char_width_em("W")
    assert metrics.char_width_em("\u0301") == 0  # combining marks take no width
    assert metrics.char_width_em("山") == 1.0


def test_wrapped_rows_wraps_words_and_breaks_long_ones():
    metrics = font_metrics(bold=False)
    width = metrics.text_width_em("aaaa aaaa")
    assert wrapped_rows("aaaa aaaa", width, metrics) == 1
    assert wrapped_rows("aaaa aaaa aaaa", width, metrics) == 2
    assert wrapped_rows("a" * 40, metrics.text_width_em("a" * 10), metrics) == 4


def test_font_shrinks_with_longer_text_but_not_below_min():
    short = fit_font_size_pt(["Anna"], box_width_mm=90, box_height_mm=20, max_pt=16, min_pt=6)
    long = fit_font_size_pt(["Anna " * 60], box_width_mm=90, box_height_mm=20, max_pt=16, min_pt=6)
    huge = fit_font_size_pt(["Anna " * 2000], box_width_mm=90, box_height_mm=20, max_pt=16, min_pt=6)
    assert short == 16 and 6 < long < 16 and huge == 6


def test_truncate_to_rows_keeps_a_prefix_with_ellipsis():
    metrics = font_metrics(bold=False)
    text = "word " * 200
    cut = truncate_to_rows(text, 2, 30, metrics)
    assert cut.endswith("…") and text.startswith(cut[:-1])
    assert wrapped_rows(cut, 30, metrics) <= 2
    assert truncate_to_rows("short", 1, 30, metrics) == "short"


def test_fit_block_shortens_street_lines_before_postcode_and_city():
    fitted = fit_block(
        ["Anna Andersson", "Gatan 1 " * 300, "114 55 Stockholm"],
        squeezable=frozenset({1}),
        box_width_mm=90,
        box_height_mm=15,
        max_pt=9,
        min_pt=5,
    )
    assert fitted.font_pt == 5
    assert fitted.paragraphs[0] == "Anna Andersson" and fitted.paragraphs[-1] == "114 55 Stockholm"
    assert fitted.paragraphs[1].startswith("Gatan 1 Gatan 1") and fitted.paragraphs[1].endswith("…")

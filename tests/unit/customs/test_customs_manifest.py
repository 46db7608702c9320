from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from customs.eligibility import assess_return_line
from customs.manifest import build_manifest, manifest_lines_for
from customs.model import ManifestInputLine
from customs.rates import UnknownCurrencyError, convert_minor, cross_rate

EORI = "SE5561234567"
ON = date(2024, 6, 1)
WHEN = datetime(2024, 6, 4, 10, 30, tzinfo=UTC)


def line(rma: str, currency: str, unit: int, qty: int = 1, cn: str = "61091000", **overrides) -> ManifestInputLine:
    values = dict(
        rma=rma,
        mrn="24SE000000000123A3",
        goods_item_number=1,
        cn_code=cn,
        description="T-shirt",
        quantity=qty,
        unit_value_minor=unit,
        currency=currency,
        origin_country="PT",
        net_weight_grams=200 * qty,
        gross_weight_grams=260 * qty,
        reason="too small",
    )
    values.update(overrides)
    return ManifestInputLine(**values)


def mixed_lines() -> list[ManifestInputLine]:
    return [
        line("R-1", "SEK", 29900, 2),
        line("R-2", "NOK", 34900, 1),
        line("R-3", "EUR", 2995, 3, cn="64039993"),
        line("R-4", "DKK", 22500, 1, cn="64039993", gross_weight_grams=None),
        line("R-5", "NOK", 12345, 7, cn="42022210"),
        line("R-6", "nok", 1, 1, cn="42022210"),
    ]


def test_mixed_currencies_are_converted_with_cross_rates(rates):
    manifest = build_manifest("COL-2024-06-04", mixed_lines(), rates, generated_at=WHEN, importer_eori=EORI)
    by_rma = {l.rma: l for l in manifest.lines}
    assert by_rma["R-1"].declared_value_minor == 59800 and by_rma["R-1"].rate == 1
    nok = by_rma["R-2"]
    assert nok.value_minor == 34900 and nok.currency == "NOK"
    assert nok.rate == cross_rate(rates, "NOK", "SEK") == Decimal("0.9993549774")
    # 349.00 NOK * 0.9993549774 = 348.7748871... -> 348.77 SEK
    assert nok.declared_value_minor == 34877
    eur = by_rma["R-3"]
    assert eur.value_minor == 8985 and eur.rate == Decimal("11.6200")
    assert eur.declared_value_minor == 104406  # 89.85 * 11.62 = 1044.057 -> 1044.06
    dkk = by_rma["R-4"]
    assert dkk.declared_value_minor == convert_minor(22500, "DKK", "SEK", cross_rate(rates, "DKK", "SEK"))
    assert by_rma["R-6"].currency == "NOK" and by_rma["R-6"].declared_value_minor == 1
    for l in manifest.lines:
        assert l.rate_date == date(2024, 5, 17) and l.rate_source == "ECB" and l.declared_currency == "SEK"


def test_totals_equal_sum_of_lines(rates):
    manifest = build_manifest("COL-1", mixed_lines(), rates, generated_at=WHEN)
    lines = manifest.lines
    grand = manifest.grand_total
    assert grand.line_count == len(lines) == 6
    assert grand.quantity == sum(l.quantity for l in lines) == 15
    assert grand.declared_value_minor == sum(l.declared_value_minor for l in lines)
    assert grand.net_weight_grams == sum(l.net_weight_grams for l in lines)
    assert grand.gross_weight_grams == sum(l.gross_weight_grams or 0 for l in lines)
    assert grand.lines_without_gross_weight == 1
    assert list(manifest.totals_by_cn_code) == ["42022210", "61091000", "64039993"]
    for code, totals in manifest.totals_by_cn_code.items():
        mine = [l for l in lines if l.cn_code == code]
        assert totals.declared_value_minor == sum(l.declared_value_minor for l in mine)
        assert totals.quantity == sum(l.quantity for l in mine)
        assert totals.line_count == len(mine)
    assert sum(t.declared_value_minor for t in manifest.totals_by_cn_code.values()) == grand.declared_value_minor
    assert manifest.value_by_currency == {"DKK": 22500, "EUR": 8985, "NOK": 34900 + 7 * 12345 + 1, "SEK": 59800}


def test_many_small_lines_total_is_sum_not_converted_sum(rates):
    # 1000 lines of 0.01 NOK: each rounds to 0.01 SEK, so the total is 10.00 SEK
    # even though 10.00 NOK converted in one go would be 9.99 SEK.
    manifest = build_manifest("COL-1", [line(f"R-{i}", "NOK", 1) for i in range(1000)], rates, generated_at=WHEN)
    assert manifest.grand_total.declared_value_minor == 1000
    assert convert_minor(1000, "NOK", "SEK", cross_rate(rates, "NOK", "SEK")) == 999


def test_overridden_rate_is_recorded_per_line(rates):
    table = rates.with_override("NOK", "11.0000", source="manual")
    manifest = build_manifest("COL-1", [line("R-1", "NOK", 10000), line("R-2", "EUR", 1000)], table, generated_at=WHEN)
    assert manifest.lines[0].rate_source == "manual/ECB"
    assert manifest.lines[0].rate == Decimal("1.056363636")
    assert manifest.lines[1].rate_source == "ECB"


def test_missing_rate_raises(rates):
    with pytest.raises(UnknownCurrencyError):
        build_manifest("COL-1", [line("R-1", "XAU", 100)], rates, generated_at=WHEN)


def test_other_declared_currency(rates):
    manifest = build_manifest("COL-1", [line("R-1", "SEK", 11620)], rates, declared_currency="eur", generated_at=WHEN)
    assert manifest.declared_currency == "EUR"
    assert manifest.lines[0].declared_value_minor == 1000


def test_naive_generated_at_is_refused(rates):
    with pytest.raises(ValueError):
        build_manifest("COL-1", [], rates, generated_at=datetime(2024, 6, 4, 10, 30))


def test_empty_manifest(rates):
    manifest = build_manifest("COL-0", [], rates, generated_at=WHEN)
    assert manifest.lines == () and manifest.grand_total.line_count == 0 and manifest.totals_by_cn_code == {}


# ---------------------------------------------------------------- from assessments


def test_manifest_lines_for_split_allocation(declaration, export_line, claim, rates):
    decl = declaration(
        export_line(1, "OL-1", 2, net_weight_grams=450), export_line(2, "OL-1", 3, net_weight_grams=600, origin_country="CN")
    )
    assessment = assess_return_line(claim(qty=3, gross_weight_grams=1001), decl, {}, EORI, ON)
    lines = manifest_lines_for(assessment)
    assert [(l.mrn, l.goods_item_number, l.quantity) for l in lines] == [(decl.mrn, 1, 2), (decl.mrn, 2, 1)]
    assert [l.net_weight_grams for l in lines] == [450, 200]
    assert [l.origin_country for l in lines] == ["PT", "CN"]
    assert sum(l.gross_weight_grams for l in lines) == 1001  # split without losing a gram
    assert all(l.additional_procedure == "F01" and l.procedure == "6110" for l in lines)
    manifest = build_manifest("COL-1", lines, rates, generated_at=WHEN)
    assert manifest.grand_total.quantity == 3


def test_manifest_lines_for_overflow_declares_rest_without_relief(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 2))
    assessment = assess_return_line(claim(qty=3, gross_weight_grams=900), decl, {}, EORI, ON)
    lines = manifest_lines_for(assessment)
    assert [(l.goods_item_number, l.quantity, l.additional_procedure) for l in lines] == [(1, 2, "F01"), (None, 1, None)]
    assert lines[1].mrn is None and lines[1].needs_attention
    assert "1 unit(s) have no export to return against" in lines[1].note
    assert [l.gross_weight_grams for l in lines] == [600, 300]


def test_manifest_lines_for_missing_declaration(claim):
    assessment = assess_return_line(claim(qty=2), None, {}, EORI, ON)
    [only] = manifest_lines_for(assessment)
    assert only.mrn is None and only.additional_procedure is None and only.quantity == 2 and only.needs_attention


def test_net_weight_pro_rata_rounds_half_up(export_line):
    item = export_line(1, "OL-1", 4, net_weight_grams=1002)
    assert item.net_weight_for(1) == 251  # 250.5 -> 251
    assert item.net_weight_for(4) == 1002
    assert export_line(1, "OL-1", 3, net_weight_grams=1000).net_weight_for(1) == 333


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["SEK", "NOK", "EUR", "DKK", "ISK", "JPY"]),
            st.integers(min_value=0, max_value=10**9),
            st.integers(min_value=1, max_value=50),
            st.sampled_from(["61091000", "64039993", "42022210"]),
        ),
        max_size=40,
    )
)
def test_totals_always_equal_sum_of_lines(rates, items):
    inputs = [line(f"R-{i}", ccy, unit, qty, cn=cn) for i, (ccy, unit, qty, cn) in enumerate(items)]
    manifest = build_manifest("COL-P", inputs, rates, generated_at=WHEN)
    assert manifest.grand_total.declared_value_minor == sum(l.declared_value_minor for l in manifest.lines)
    assert sum(t.declared_value_minor for t in manifest.totals_by_cn_code.values()) == manifest.grand_total.declared_value_minor
    assert sum(t.net_weight_grams for t in manifest.totals_by_cn_code.values()) == manifest.grand_total.net_weight_grams
    for l in manifest.lines:
        assert l.declared_value_minor == convert_minor(l.value_minor, l.currency, "SEK", cross_rate(rates, l.currency, "SEK"))

from __future__ import annotations

from datetime import date

import pytest

from customs.eligibility import (
    CN_CODE,
    DECLARATION,
    EXPORT_LINE,
    IMPORTER,
    MRN,
    QUANTITY,
    SAME_STATE,
    TIME_LIMIT,
    add_years,
    assess_return_line,
    assess_return_lines,
    check_time_limit,
    relief_deadline,
)
from customs.matching import record_returned
from customs.mrn import make_mrn

EORI = "SE5561234567"
ON = date(2024, 6, 1)


# ---------------------------------------------------------------- time limit


def test_add_years_plain_date():
    assert add_years(date(2024, 3, 4), 3) == date(2027, 3, 4)


def test_leap_day_export_maps_to_28_february():
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert add_years(date(2024, 2, 29), 3) == date(2027, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)  # leap again: same date


def test_return_exactly_on_deadline_is_allowed_next_day_is_not():
    exported = date(2021, 6, 15)
    assert check_time_limit(exported, date(2024, 6, 15)).ok
    late = check_time_limit(exported, date(2024, 6, 16))
    assert not late.ok
    assert late.code == TIME_LIMIT
    assert "Relief not available" in late.reason and "2024-06-15" in late.reason


def test_leap_day_export_three_years():
    exported = date(2024, 2, 29)
    assert relief_deadline(exported) == date(2027, 2, 28)
    assert check_time_limit(exported, date(2027, 2, 28)).ok
    assert not check_time_limit(exported, date(2027, 3, 1)).ok


def test_leap_day_export_agricultural_one_year():
    exported = date(2024, 2, 29)
    assert relief_deadline(exported, agricultural=True) == date(2025, 2, 28)
    assert check_time_limit(exported, date(2025, 2, 28), agricultural=True).ok
    assert not check_time_limit(exported, date(2025, 3, 1), agricultural=True).ok


def test_agricultural_goods_get_one_year(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 5, cn_code="04061020", agricultural=True), export_date=date(2023, 5, 10))
    c = claim(cn_code="04061020")
    on_time = assess_return_line(c, decl, {}, EORI, date(2024, 5, 10))
    assert on_time.relief == "F01" and not on_time.needs_attention
    late = assess_return_line(c, decl, {}, EORI, date(2024, 5, 11))
    assert late.relief is None
    assert late.needs_attention
    assert not late.result(TIME_LIMIT).ok
    assert "agricultural" in late.result(TIME_LIMIT).reason
    # the same date would be fine for non-agricultural goods
    plain = declaration(export_line(1, "OL-1", 5), export_date=date(2023, 5, 10))
    assert assess_return_line(claim(), plain, {}, EORI, date(2024, 5, 11)).relief == "F01"


def test_late_return_is_flagged_not_refused(declaration, claim):
    decl = declaration(export_date=date(2020, 1, 1))
    result = assess_return_line(claim(), decl, {}, EORI, date(2023, 1, 2))
    # still matched and allocated: the return goes through, just without relief
    assert result.matched_export_line is not None
    assert result.allocation.allocated == 1
    assert result.relief is None and result.needs_attention
    assert result.procedure == "6110"


# ---------------------------------------------------------------- happy path


def test_clean_return_gets_f01(declaration, claim):
    decl = declaration()
    result = assess_return_line(claim(same_state=True), decl, {}, EORI, ON)
    assert result.relief == "F01"
    assert result.procedure == "6110"
    assert not result.needs_attention
    assert result.mrn == decl.mrn
    assert result.matched_export_line.goods_item_number == 1
    assert [r.code for r in result.results] == [DECLARATION, MRN, EXPORT_LINE, IMPORTER, CN_CODE, QUANTITY, TIME_LIMIT, SAME_STATE]
    assert all(r.ok for r in result.results)


# ---------------------------------------------------------------- missing data


def test_missing_declaration_needs_attention(claim):
    result = assess_return_line(claim(), None, {}, EORI, ON)
    assert result.needs_attention and result.relief is None
    assert result.mrn is None and result.matched_export_line is None
    assert [r.code for r in result.results] == [DECLARATION]
    assert "OL-1" in result.results[0].reason and "MRN" in result.results[0].reason


def test_no_export_line_for_order_line(declaration, claim):
    result = assess_return_line(claim(ref="OL-404"), declaration(), {}, EORI, ON)
    assert result.needs_attention and result.relief is None
    assert result.matched_export_line is None
    problem = result.result(EXPORT_LINE)
    assert not problem.ok and "OL-404" in problem.reason


def test_malformed_mrn_on_declaration(declaration, claim):
    bad = make_mrn(2024, "SE", "A1B2C3D4E5F6", "A")[:-1] + "X"
    result = assess_return_line(claim(), declaration(mrn=bad), {}, EORI, ON)
    assert not result.result(MRN).ok
    assert result.relief is None and result.needs_attention


# ---------------------------------------------------------------- quantities


def test_partial_returns_across_two_returns(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 3))
    first = assess_return_line(claim(qty=2, rma="R-1"), decl, {}, EORI, ON)
    assert first.result(QUANTITY).ok and first.relief == "F01"
    totals = record_returned({}, first)
    assert totals == {(decl.mrn, 1): 2}

    second = assess_return_line(claim(qty=2, rma="R-2"), decl, totals, EORI, ON)
    quantity = second.result(QUANTITY)
    assert not quantity.ok
    assert "only 1 of 3 exported remain (2 returned earlier)" in quantity.reason
    assert second.needs_attention
    assert second.allocation.allocated == 1 and second.allocation.unallocated == 1
    # relief still covers the unit that can be matched
    assert second.relief == "F01"

    third = assess_return_line(claim(qty=1, rma="R-3"), decl, record_returned(totals, second), EORI, ON)
    assert not third.result(QUANTITY).ok
    assert third.allocation.allocated == 0
    assert third.relief is None  # nothing left to claim relief against


def test_second_return_within_remaining_is_fine(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 3))
    result = assess_return_line(claim(qty=1), decl, {(decl.mrn, 1): 2}, EORI, ON)
    assert result.result(QUANTITY).ok and not result.needs_attention


def test_returned_quantities_of_other_mrn_do_not_count(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 1))
    other = make_mrn(2024, "SE", "ZZZZZZZZZZZZ", "A")
    result = assess_return_line(claim(qty=1), decl, {(other, 1): 1}, EORI, ON)
    assert result.result(QUANTITY).ok


def test_lines_of_one_return_share_the_running_total(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 2))
    assessments, totals = assess_return_lines(
        [claim(qty=1), claim(qty=2)], {"OL-1": decl}, {}, EORI, ON
    )
    assert assessments[0].result(QUANTITY).ok
    assert not assessments[1].result(QUANTITY).ok
    assert totals == {(decl.mrn, 1): 2}


# ---------------------------------------------------------------- identity checks


def test_cn_code_mismatch(declaration, claim):
    result = assess_return_line(claim(cn_code="61099020"), declaration(), {}, EORI, ON)
    cn = result.result(CN_CODE)
    assert not cn.ok and "61099020" in cn.reason and "61091000" in cn.reason
    assert result.relief is None and result.needs_attention


def test_cn_code_formatting_differences_are_not_a_mismatch(declaration, claim):
    result = assess_return_line(claim(cn_code="6109.10.00"), declaration(), {}, EORI, ON)
    assert result.result(CN_CODE).ok


def test_importer_must_be_original_exporter(declaration, claim):
    result = assess_return_line(claim(), declaration(), {}, "SE5569876543", ON)
    importer = result.result(IMPORTER)
    assert not importer.ok
    assert "SE5569876543" in importer.reason and "SE5561234567" in importer.reason
    assert result.relief is None and result.needs_attention


def test_importer_eori_is_normalised(declaration, claim):
    assert assess_return_line(claim(), declaration(), {}, "se 5561234567", ON).result(IMPORTER).ok


def test_invalid_importer_eori(declaration, claim):
    result = assess_return_line(claim(), declaration(), {}, "5561234567", ON)
    assert not result.result(IMPORTER).ok and "invalid" in result.result(IMPORTER).reason


# ---------------------------------------------------------------- state


def test_not_same_state_removes_relief(declaration, claim):
    result = assess_return_line(claim(same_state=False), declaration(), {}, EORI, ON)
    state = result.result(SAME_STATE)
    assert not state.ok and "duty may apply" in state.reason
    assert result.relief is None
    assert result.needs_attention
    assert result.procedure == "6110"


@pytest.mark.parametrize(("same_state", "relief"), [(True, "F01"), (None, "F01"), (False, None)])
def test_same_state_values(declaration, claim, same_state, relief):
    assert assess_return_line(claim(same_state=same_state), declaration(), {}, EORI, ON).relief == relief

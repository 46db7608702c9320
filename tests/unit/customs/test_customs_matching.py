from __future__ import annotations

from hypothesis import given, settings, strategies as st

from customs.matching import allocate_return, record_returned
from customs.eligibility import assess_return_line
from datetime import date

EORI = "SE5561234567"


def test_split_order_line_is_filled_in_goods_item_order(declaration, export_line):
    # order line OL-1 left on items 3 and 1 (declared out of order on purpose)
    decl = declaration(export_line(3, "OL-1", 4), export_line(2, "OL-2", 1), export_line(1, "OL-1", 2))
    allocation = allocate_return(decl, "OL-1", 5, {})
    assert [(p.export_line.goods_item_number, p.quantity) for p in allocation.parts] == [(1, 2), (3, 3)]
    assert allocation.unallocated == 0 and allocation.allocated == 5


def test_allocation_respects_earlier_returns(declaration, export_line):
    decl = declaration(export_line(1, "OL-1", 2), export_line(2, "OL-1", 4))
    allocation = allocate_return(decl, "OL-1", 3, {(decl.mrn, 1): 1})
    assert [(p.export_line.goods_item_number, p.quantity) for p in allocation.parts] == [(1, 1), (2, 2)]


def test_allocation_skips_exhausted_items_and_reports_overflow(declaration, export_line):
    decl = declaration(export_line(1, "OL-1", 2), export_line(2, "OL-1", 1))
    allocation = allocate_return(decl, "OL-1", 4, {(decl.mrn, 1): 2})
    assert [(p.export_line.goods_item_number, p.quantity) for p in allocation.parts] == [(2, 1)]
    assert allocation.unallocated == 3


def test_unknown_order_line_allocates_nothing(declaration):
    allocation = allocate_return(declaration(), "OL-9", 2, {})
    assert allocation.parts == () and allocation.unallocated == 2


def test_allocation_across_two_goods_items_in_two_returns(declaration, export_line, claim):
    decl = declaration(export_line(1, "OL-1", 2), export_line(2, "OL-1", 2))
    first = assess_return_line(claim(qty=3), decl, {}, EORI, date(2024, 6, 1))
    totals = record_returned({}, first)
    assert totals == {(decl.mrn, 1): 2, (decl.mrn, 2): 1}
    second = assess_return_line(claim(qty=1), decl, totals, EORI, date(2024, 6, 8))
    assert [(p.export_line.goods_item_number, p.quantity) for p in second.allocation.parts] == [(2, 1)]
    assert second.matched_export_line.goods_item_number == 2
    assert not second.needs_attention
    assert record_returned(totals, second) == {(decl.mrn, 1): 2, (decl.mrn, 2): 2}


def test_record_returned_does_not_mutate_input(declaration, claim):
    decl = declaration()
    before = {(decl.mrn, 1): 0}
    record_returned(before, assess_return_line(claim(), decl, before, EORI, date(2024, 6, 1)))
    assert before == {(decl.mrn, 1): 0}


@settings(max_examples=150, deadline=None)
@given(
    exported=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4),
    earlier=st.lists(st.integers(min_value=0, max_value=6), min_size=4, max_size=4),
    wanted=st.integers(min_value=1, max_value=25),
)
def test_allocation_invariants(exported, earlier, wanted):
    from customs.model import ExportDeclaration, ExportLine

    lines = tuple(
        ExportLine(i + 1, "OL-1", "61091000", "T-shirt", qty, 100, "PT", 100 * qty) for i, qty in enumerate(exported)
    )
    decl = ExportDeclaration("24SE000000000123A3", date(2024, 1, 1), EORI, "I", date(2024, 1, 1), "SEK", "ordinary", None, lines)
    returned = {(decl.mrn, i + 1): earlier[i] for i in range(len(exported))}
    allocation = allocate_return(decl, "OL-1", wanted, returned)
    remaining = {i + 1: max(0, q - earlier[i]) for i, q in enumerate(exported)}
    assert allocation.allocated + allocation.unallocated == wanted
    assert allocation.allocated == min(wanted, sum(remaining.values()))
    numbers = [p.export_line.goods_item_number for p in allocation.parts]
    assert numbers == sorted(numbers)
    for part in allocation.parts:
        assert 0 < part.quantity <= remaining[part.export_line.goods_item_number]
    # goods-item order: an item only gets units once every earlier item is exhausted
    for part in allocation.parts[1:]:
        earlier_items = [n for n in remaining if n < part.export_line.goods_item_number]
        used = {p.export_line.goods_item_number: p.quantity for p in allocation.parts}
        assert all(used.get(n, 0) == remaining[n] for n in earlier_items)

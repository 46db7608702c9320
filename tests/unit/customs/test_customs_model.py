from __future__ import annotations

from datetime import date

import pytest

from customs.model import ExportDeclaration, ReturnLineClaim


def test_declaration_normalises_and_sorts(declaration, export_line):
    decl = declaration(export_line(2, "OL-2", 1), export_line(1, "OL-1", 1, cn_code="6109.10.00"))
    assert [l.goods_item_number for l in decl.lines] == [1, 2]
    assert decl.lines[0].cn_code == "61091000"
    lower = declaration(mrn=decl.mrn.lower())
    assert lower.mrn == decl.mrn


def test_voec_route_needs_voec_number(export_line):
    with pytest.raises(ValueError, match="VOEC"):
        ExportDeclaration("24SE000000000123A3", date(2024, 1, 1), "SE5561234567", "I-1", date(2024, 1, 1), "NOK", "voec", None, (export_line(1, "OL-1", 1),))
    ordinary = ExportDeclaration("24SE000000000123A3", date(2024, 1, 1), "SE5561234567", "I-1", date(2024, 1, 1), "NOK", "ordinary", None, (export_line(1, "OL-1", 1),))
    assert ordinary.voec_number is None


def test_unknown_entry_route_refused(export_line):
    with pytest.raises(ValueError, match="entry_route"):
        ExportDeclaration("24SE000000000123A3", date(2024, 1, 1), "SE5561234567", "I-1", date(2024, 1, 1), "NOK", "post", None, (export_line(1, "OL-1", 1),))


def test_duplicate_goods_item_numbers_refused(declaration, export_line):
    with pytest.raises(ValueError, match="duplicate goods item"):
        declaration(export_line(1, "OL-1", 1), export_line(1, "OL-2", 1))


def test_line_and_claim_quantities_must_be_positive(export_line, claim):
    with pytest.raises(ValueError):
        export_line(1, "OL-1", 0)
    with pytest.raises(ValueError):
        export_line(0, "OL-1", 1)
    with pytest.raises(ValueError):
        claim(qty=0)
    assert isinstance(claim(), ReturnLineClaim)

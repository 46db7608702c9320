from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from customs.model import ExportDeclaration, ExportLine, ReturnLineClaim
from customs.mrn import make_mrn
from customs.rates import RateTable, parse_ecb_xml

FIXTURES = Path(__file__).parent / "fixtures"
EXPORTER_EORI = "SE5561234567"
MRN = make_mrn(2024, "SE", "A1B2C3D4E5F6", "A")


def _export_line(item: int, ref: str, qty: int, **overrides) -> ExportLine:
    values = dict(
        goods_item_number=item,
        order_line_ref=ref,
        cn_code="61091000",
        description="T-shirt, cotton, knitted",
        quantity=qty,
        unit_value_minor=19900,
        origin_country="PT",
        net_weight_grams=200 * qty,
    )
    values.update(overrides)
    return ExportLine(**values)


def _declaration(*lines: ExportLine, export_date: date = date(2024, 3, 4), mrn: str = MRN) -> ExportDeclaration:
    return ExportDeclaration(
        mrn=mrn,
        export_date=export_date,
        exporter_eori=EXPORTER_EORI,
        invoice_number="INV-1001",
        invoice_date=export_date,
        currency="NOK",
        entry_route="voec",
        voec_number="VOEC-2024-0001",
        lines=lines or (_export_line(1, "OL-1", 2),),
    )


def _claim(ref: str = "OL-1", qty: int = 1, **overrides) -> ReturnLineClaim:
    values = dict(
        rma="R-7KQ2",
        order_line_ref=ref,
        cn_code="6109 10 00",
        description="T-shirt, cotton, knitted",
        quantity=qty,
        unit_value_minor=19900,
        currency="NOK",
        reason="too small",
        gross_weight_grams=None,
        same_state=None,
    )
    values.update(overrides)
    return ReturnLineClaim(**values)


@pytest.fixture(scope="session")
def ecb_xml() -> bytes:
    return (FIXTURES / "eurofxref-daily.xml").read_bytes()


@pytest.fixture(scope="session")
def rates(ecb_xml: bytes) -> RateTable:
    return parse_ecb_xml(ecb_xml)


# Builders are handed out as fixtures so the tests need no import of this
# directory (works with any pytest import mode).
@pytest.fixture
def export_line():
    return _export_line


@pytest.fixture
def declaration():
    return _declaration


@pytest.fixture
def claim():
    return _claim

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from customs.documents import (
    CSV_COLUMNS,
    evidence_pdf,
    manifest_from_json,
    manifest_lines_from_csv,
    manifest_pdf,
    manifest_to_csv,
    manifest_to_json,
    money,
)
from customs.eligibility import assess_return_lines
from customs.manifest import build_manifest, manifest_lines_for
from customs.mrn import make_mrn

EORI = "SE5561234567"
WHEN = datetime(2024, 6, 4, 10, 30, tzinfo=UTC)


@pytest.fixture
def scenario(declaration, export_line, claim, rates):
    """Two returns against two export declarations, mixed currencies, one problem line."""
    first = declaration(
        export_line(1, "OL-1", 2),
        export_line(2, "OL-2", 1, cn_code="64039993", description="Sneakers, leather upper", net_weight_grams=900),
        export_line(3, "OL-1", 2),
    )
    second = declaration(
        export_line(1, "OL-7", 3, cn_code="42022210", description="Tote bag, plastic sheeting", origin_country="SE"),
        mrn=make_mrn(2024, "SE", "ZX9Y8W7V6U5T", "B"),
        export_date=date(2024, 4, 2),
    )
    claims = [
        claim("OL-1", 3, gross_weight_grams=700),
        claim("OL-2", 1, cn_code="64039993", description="Sneakers =HYPERLINK(\"x\")", same_state=False, currency="EUR", unit_value_minor=8995, reason="-broken sole"),
        claim("OL-7", 2, rma="R-9ZX4", cn_code="42022210", description="Tote bag", currency="DKK", unit_value_minor=14900),
    ]
    assessments, _ = assess_return_lines(claims, {"OL-1": first, "OL-2": first, "OL-7": second}, {}, EORI, date(2024, 6, 1))
    lines = [line for a in assessments for line in manifest_lines_for(a)]
    manifest = build_manifest("COL-2024-06-04", lines, rates, importer_eori=EORI, generated_at=WHEN)
    return manifest, assessments, (first, second)


def test_csv_round_trip(scenario):
    manifest = scenario[0]
    text = manifest_to_csv(manifest)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(manifest.lines) == 4
    assert rows[0]["value"] == "398.00" and rows[0]["value_minor"] == "39800"
    assert manifest_lines_from_csv(text) == manifest.lines


def test_csv_neutralises_formulas(scenario):
    text = manifest_to_csv(scenario[0])
    rows = list(csv.DictReader(io.StringIO(text)))
    sneakers = next(r for r in rows if r["cn_code"] == "64039993")
    assert sneakers["reason"] == "'-broken sole"
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values())
    assert manifest_lines_from_csv(text)[2].reason == "-broken sole"


def test_csv_missing_columns_refused():
    with pytest.raises(ValueError, match="lacks columns"):
        manifest_lines_from_csv("rma,mrn\nR-1,X\n")


def test_json_schema_and_round_trip(scenario):
    manifest = scenario[0]
    text = manifest_to_json(manifest)
    data = json.loads(text)
    assert data["schema"] == "nordic-returns-portal/customs-manifest" and data["version"] == 1
    first = data["lines"][0]
    assert first["value"] == {"minor": 39800, "amount": "398.00", "currency": "NOK"}
    assert isinstance(first["declared_value"]["minor"], int)
    assert first["rate"] == {"value": "0.9993549774", "date": "2024-05-17", "source": "ECB"}
    assert data["grand_total"]["declared_value"]["minor"] == sum(l["declared_value"]["minor"] for l in data["lines"])
    assert manifest_from_json(text) == manifest
    assert manifest_to_json(manifest_from_json(text)) == text  # stable


def test_json_wrong_schema_refused():
    with pytest.raises(ValueError):
        manifest_from_json('{"schema": "other", "version": 1}')


def _pdf_text(pdf: bytes) -> tuple[int, str, list[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    pages = [page.extract_text() for page in reader.pages]
    return len(pages), "\n".join(pages), pages


def test_manifest_pdf_contains_every_line_and_totals(scenario):
    manifest = scenario[0]
    pdf = manifest_pdf(manifest, merchant_name="Nordic Tees AB")
    assert pdf.startswith(b"%PDF")
    _, text, _ = _pdf_text(pdf)
    for line in manifest.lines:
        if line.mrn:
            assert line.mrn in text
        assert line.cn_code in text
    for totals in manifest.totals_by_cn_code.values():
        assert money(totals.declared_value_minor, "SEK") in text
    assert money(manifest.grand_total.declared_value_minor, "SEK") in text
    assert "Grand total" in text and "Signature" in text and "COL-2024-06-04" in text
    assert "Nordic Tees AB" in text and EORI in text


def test_manifest_pdf_is_landscape_and_repeats_header(scenario, rates):
    manifest = scenario[0]
    many = build_manifest("COL-BIG", list(_as_inputs(manifest)) * 6, rates, generated_at=WHEN)
    pdf = manifest_pdf(many, merchant_name="Nordic Tees AB")
    reader = PdfReader(io.BytesIO(pdf))
    box = reader.pages[0].mediabox
    assert float(box.width) > float(box.height)  # landscape
    assert round(float(box.width) / 72 * 25.4) == 297  # A4
    pages, _, texts = _pdf_text(pdf)
    assert pages >= 2
    assert all("Export MRN" in t and "CN code" in t for t in texts[:-1])


def _as_inputs(manifest):
    from customs.model import ManifestInputLine

    for l in manifest.lines:
        yield ManifestInputLine(
            rma=l.rma, mrn=l.mrn, goods_item_number=l.goods_item_number, cn_code=l.cn_code, description=l.description,
            quantity=l.quantity, unit_value_minor=l.value_minor // l.quantity, currency=l.currency,
            origin_country=l.origin_country, net_weight_grams=l.net_weight_grams, gross_weight_grams=l.gross_weight_grams,
            reason=l.reason, additional_procedure=l.additional_procedure,
        )


def test_evidence_pdf_lists_export_particulars(scenario):
    _, assessments, (first, _) = scenario
    own = [a for a in assessments if a.claim.rma == "R-7KQ2"]
    pdf = evidence_pdf(own, [first], merchant_name="Nordic Tees AB", generated_at=WHEN)
    _, text, _ = _pdf_text(pdf)
    for needle in (first.mrn, "2024-03-04", first.exporter_eori, "INV-1001", "R-7KQ2", "64039993", "61091000", "duty may apply"):
        assert needle in text, needle
    # the split allocation of OL-1 over goods items 1 and 3
    assert f"{first.mrn} / 1 × 2" in text and f"{first.mrn} / 3 × 1" in text


def test_evidence_pdf_is_per_return(scenario):
    _, assessments, declarations = scenario
    with pytest.raises(ValueError, match="per return"):
        evidence_pdf(assessments, list(declarations), merchant_name="X")

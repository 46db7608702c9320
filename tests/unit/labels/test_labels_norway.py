"""Norwegian returns: bokmål instructions, contents declaration, MRN, receipt and VAT guidance."""

from __future__ import annotations

import pytest

from labels.model import NorwayInfo
from labels.render import render_html, render_pdf

MRN = "25SE000000123456A1"


@pytest.fixture(scope="module")
def voec_text(kit):
    pdf = render_pdf(kit.make_norway_label(), "a4")
    assert kit.decode_page(pdf, 0, dpi=150).get("Code128") == ["R7K4-MX2Q"]
    return kit.pdf_text(pdf)


def test_contents_declaration_for_the_carrier(voec_text):
    assert "Innholdsdeklarasjon" in voec_text
    assert "Årsak til utførsel: Returvare (retur)" in voec_text
    assert "Transportøren trenger innholdsdeklarasjonen nedenfor for å føre varene ut av Norge" in voec_text
    # Per line: description, quantity, value in NOK formatted for nb, "Returvare", CN code, origin, net weight.
    assert "Merino wool sweater, size M, item 0 1 499,50 kr Returvare 61101110 PT 420 g" in voec_text
    assert "Merino wool sweater, size M, item 1 2 999,02 kr Returvare 61101110 PT 420 g" in voec_text
    assert "Total verdi 1 498,52 kr" in voec_text


def test_original_export_mrn_and_receipt_note(voec_text):
    assert f"Opprinnelig eksportdeklarasjon (MRN): {MRN}" in voec_text
    assert "Ta vare på kvitteringen du får når du leverer pakken" in voec_text


def test_voec_sale_means_the_merchant_refunds_the_vat(voec_text):
    assert "VOEC-ordningen (VOEC-nummer VOEC-2040123)" in voec_text
    assert "Nordvik Outdoor AB betaler tilbake avgiften sammen med refusjonen for varene" in voec_text
    assert "søk Tolletaten om refusjon" not in voec_text.lower()


def test_norwegian_instructions_whatever_the_order_language(kit):
    data = kit.make_norway_label(
        language="en", norway=NorwayInfo(voec_number=None, export_mrn=MRN, entry_route="simplified")
    )
    text = kit.pdf_text(render_pdf(data, "a4"))
    assert "Slik sender du returen" in text and "How to send your return" not in text
    assert "via transportøren som leverte bestillingen din" in text
    assert "søk Tolletaten om refusjon" in text
    assert "VOEC-ordningen" not in text
    assert MRN in text


def test_ordinary_import_points_to_tolletaten_and_the_customs_agent(kit):
    data = kit.make_norway_label(norway=NorwayInfo(voec_number=None, export_mrn=None, entry_route="ordinary"))
    html = render_html([data], "a4")
    assert "ordinær tolldeklarasjon" in html
    assert "Søk Tolletaten om refusjon, eller spør speditøren som fortollet varene" in html
    assert "Opprinnelig eksportdeklarasjon (MRN)" in html and "Ikke oppgitt" in html


def test_voec_route_without_number_still_says_merchant_refunds(kit):
    data = kit.make_norway_label(norway=NorwayInfo(voec_number=None, export_mrn=MRN, entry_route="voec"))
    html = render_html([data], "a4")
    assert "solgte varene gjennom VOEC-ordningen og tok betalt" in html


def test_non_norwegian_return_has_no_customs_section(kit):
    html = render_html([kit.make_label()], "a4")
    assert "Innholdsdeklarasjon" not in html and "Innehållsdeklaration" not in html


def test_norway_thermal_label_is_bokmal_and_scans(kit):
    pdf = render_pdf(kit.make_norway_label(language="en"), "thermal")
    assert len(kit.page_sizes_pt(pdf)) == 1
    text = kit.pdf_text(pdf)
    assert "LEVER SENEST" in text.upper() and "14. desember 2025" in text
    found = kit.decode_page(pdf, 0, dpi=203)
    assert found.get("Code128") == ["R7K4-MX2Q"] and found.get("QRCode") == [kit.STATUS_URL]

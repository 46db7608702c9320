"""Shared builders and real decoders for the labels tests (no mocks: WeasyPrint, pdfium, zxing)."""

from __future__ import annotations

import dataclasses
import io
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from labels.model import Address, LabelData, LabelLine, NorwayInfo

STATUS_URL = "https://returns.example.se/s/Zq3kP9wXv2LmN8bT4cYh"


def make_lines(count: int, currency: str = "SEK") -> tuple[LabelLine, ...]:
    return tuple(
        LabelLine(
            sku=f"NV-{index:04d}",
            description=f"Merino wool sweater, size M, item {index}",
            quantity=1 + index % 3,
            unit_value_minor=49_950 + index,
            currency=currency,
            reason="Too small",
            cn_code="61101110",
            origin_country="PT",
            net_weight_grams=420,
        )
        for index in range(count)
    )


def make_label(**overrides: object) -> LabelData:
    """A realistic Swedish return; override any field."""
    data = LabelData(
        rma="R7K4-MX2Q",
        status_url=STATUS_URL,
        language="sv",
        order_number="100234",
        merchant_name="Nordvik Outdoor AB",
        carrier_name="PostNord",
        sender=Address("Anna Andersson", ("Storgatan 12 lgh 1102",), "114 55", "Stockholm", "SE", "+46701234567"),
        recipient=Address("Nordvik Outdoor Returer", ("Lagervägen 4", "Port 3"), "553 03", "Jönköping", "SE"),
        lines=make_lines(3),
        drop_off_deadline=date(2025, 12, 14),
        created_at=datetime(2025, 11, 22, 10, 30, tzinfo=timezone.utc),
    )
    return dataclasses.replace(data, **overrides)


def make_norway_label(**overrides: object) -> LabelData:
    defaults: dict[str, object] = dict(
        language="nb",
        sender=Address("Kari Nordmann", ("Storgata 5",), "0155", "Oslo", "NO", "+4791234567"),
        recipient=Address("Nordvik Outdoor c/o Retursenter Oslo", ("Alnabru terminal", "Port 12"), "0668", "Oslo", "NO"),
        lines=make_lines(2, currency="NOK"),
        norway=NorwayInfo(voec_number="VOEC-2040123", export_mrn="25SE000000123456A1", entry_route="voec"),
    )
    defaults.update(overrides)
    return make_label(**defaults)


def pdf_text(pdf: bytes) -> str:
    """All text of the PDF with whitespace collapsed, so wrapped phrases still match."""
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)


def page_texts(pdf: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def page_texts_pdfium(pdf: bytes) -> list[str]:
    """Per-page text via pdfium. pypdf 7 garbles a whole font's text when its ToUnicode map has a
    surrogate-pair entry (any emoji DejaVu draws, e.g. U+1F642); pdfium and poppler read it fine."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        texts = []
        for page in document:
            textpage = page.get_textpage()
            texts.append(" ".join(textpage.get_text_range().split()))
        return texts
    finally:
        document.close()


def page_sizes_pt(pdf: bytes) -> list[tuple[float, float]]:
    return [(float(page.mediabox.width), float(page.mediabox.height)) for page in PdfReader(io.BytesIO(pdf)).pages]


def decode_page(pdf: bytes, page_index: int, dpi: int) -> dict[str, list[str]]:
    """Rasterise one page at dpi and decode every barcode on it: {format name: [texts]}."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[page_index].render(scale=dpi / 72).to_pil()
    finally:
        document.close()
    found: dict[str, list[str]] = {}
    for result in zxingcpp.read_barcodes(image):
        found.setdefault(result.format.name, []).append(result.text)
    return found


def render_svg_to_pdf(svg: str, width_mm: float, height_mm: float) -> bytes:
    from weasyprint import HTML

    html = (
        f"<html><head><style>@page {{ size: {width_mm}mm {height_mm}mm; margin: 3mm }}"
        f"svg {{ display: block }}</style></head><body>{svg}</body></html>"
    )
    return HTML(string=html).write_pdf()


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, as a fixture: test modules need not import conftest."""
    return SimpleNamespace(
        STATUS_URL=STATUS_URL,
        make_lines=make_lines,
        make_label=make_label,
        make_norway_label=make_norway_label,
        pdf_text=pdf_text,
        page_texts=page_texts,
        page_texts_pdfium=page_texts_pdfium,
        page_sizes_pt=page_sizes_pt,
        decode_page=decode_page,
        render_svg_to_pdf=render_svg_to_pdf,
    )

"""Labels served by the portal: real PDFs, decoded by a real barcode reader, rendered once."""

from __future__ import annotations

import io

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader
from sqlmodel import Session, select

from portal.models import Customer, Order, Return, StoredDocument
from tests.integration.conftest import csrf_of, nonce_of
from tests.integration.test_consumer_flow import STATUS_LINK_RE, lines_of, open_order, submit


def decode(pdf: bytes, dpi: int) -> dict[str, str]:
    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=dpi / 72).to_pil()
    return {r.format.name: r.text for r in zxingcpp.read_barcodes(image)}


def register(client, engine, number: str, credential: str, sku: str) -> str:
    html = open_order(client, number, credential)
    line = lines_of(engine, number)[sku].id
    response = submit(client, number, html, {f"qty_{line}": "1", f"reason_{line}": "too_small"})
    assert response.status_code == 302
    return response.headers["location"].split("?")[0]


def test_a4_and_thermal_labels_scan_and_are_cached(client, demo_engine, settings):
    status_path = register(client, demo_engine, "SE-1001", "anna.svensson@example.se", "TS-100")
    rma, token = STATUS_LINK_RE.search(status_path).groups()
    status_url = f"{settings.base_url}/r/{rma}/{token}"

    a4 = client.get(status_path + "/label.pdf?layout=a4")
    assert a4.status_code == 200 and a4.headers["content-type"] == "application/pdf"
    codes = decode(a4.content, 150)
    assert codes.get("Code128") == rma and codes.get("QRCode") == status_url
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(a4.content)).pages)
    assert rma in text and "Anna Svensson" in text and "Organic cotton T-shirt" in text and "Haninge" in text

    thermal = client.get(status_path + "/label.pdf?layout=thermal")
    assert thermal.status_code == 200
    box = PdfReader(io.BytesIO(thermal.content)).pages[0].mediabox
    assert abs(float(box.width) - 283.46) < 0.6 and abs(float(box.height) - 425.2) < 0.6
    assert decode(thermal.content, 203).get("Code128") == rma

    again = client.get(status_path + "/label.pdf?layout=a4")
    assert again.content == a4.content
    with Session(demo_engine) as s:
        docs = s.exec(select(StoredDocument)).all()
        assert sorted(d.kind for d in docs) == ["label-a4", "label-thermal"]


def test_label_is_rendered_again_when_its_data_changes(client, demo_engine):
    status_path = register(client, demo_engine, "DK-3001", "freja.nielsen@example.dk", "TS-100")
    first = client.get(status_path + "/label.pdf?layout=thermal").content
    with Session(demo_engine) as s:
        order = s.exec(select(Order).where(Order.number == "DK-3001")).one()
        customer = s.get(Customer, order.customer_id)
        customer.street = "Nørregade 99"
        s.add(customer)
        s.commit()
    second = client.get(status_path + "/label.pdf?layout=thermal").content
    assert second != first
    text = PdfReader(io.BytesIO(second)).pages[0].extract_text()
    assert "Nørregade 99" in text


def test_norwegian_label_has_norwegian_customs_text(client, demo_engine):
    status_path = register(client, demo_engine, "NO-2001", "ola.nordmann@example.no", "HD-200")
    pdf = client.get(status_path + "/label.pdf?layout=a4").content
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    with Session(demo_engine) as s:
        from portal.models import ExportDeclaration
        mrn = s.exec(select(ExportDeclaration.mrn).join(Order).where(Order.number == "NO-2001")).one()
    assert mrn in text and "Oslo" in text
    assert "retur" in text.lower() and "kvittering" in text.lower()


def test_bad_label_requests(client, demo_engine):
    status_path = register(client, demo_engine, "FI-4001", "aino.virtanen@example.fi", "JK-500")
    assert client.get(status_path + "/label.pdf?layout=letter").status_code == 400
    assert client.get(status_path.rsplit("/", 1)[0] + "/wrongtoken/label.pdf").status_code == 404
    zpl = client.get(status_path + "/label.zpl")
    assert zpl.status_code == 200 and zpl.text.startswith("^XA") and "^BC" in zpl.text
    qr = client.get(status_path + "/qr.svg")
    assert qr.status_code == 200 and qr.text.lstrip().startswith("<")


def test_pending_return_has_no_label_yet(client, demo_engine):
    status_path = register(client, demo_engine, "SE-1003", "maja.berg@example.se", "BT-600")
    assert client.get(status_path + "/label.pdf").status_code == 409

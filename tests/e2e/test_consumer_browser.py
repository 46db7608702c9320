"""A consumer returns two lines on a phone, downloads the label, follows the status page, switches language."""

from __future__ import annotations

import pypdfium2
import pytest
import zxingcpp

pytestmark = pytest.mark.e2e

CASES = [
    # order, credential, expected lang, two item names, a phrase of the status page in that language
    ("SE-1001", "anna.svensson@example.se", "sv", ("Organic cotton T-shirt", "Merino hoodie"), "Din retur är registrerad"),
    ("NO-2001", "0159", "nb", ("Merino hoodie", "Organic cotton T-shirt"), "Returen din er registrert"),
]


def decode_pdf(pdf: bytes, dpi: int) -> dict[str, str]:
    image = pypdfium2.PdfDocument(pdf)[0].render(scale=dpi / 72).to_pil()
    return {r.format.name: r.text for r in zxingcpp.read_barcodes(image)}


@pytest.mark.parametrize("number, credential, lang, items, registered_text", CASES, ids=["swedish", "norwegian"])
def test_consumer_returns_two_lines_on_a_phone(phone, shoot, number, credential, lang, items, registered_text):
    page = phone
    page.goto("/")
    shoot(page, "find-order")
    page.get_by_label("Ordernummer").fill(number)
    page.locator("#credential").fill(credential)
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"**/orders/{number}")
    assert page.locator("html").get_attribute("lang") == lang
    for name in items:
        line = page.locator("li.line", has_text=name)
        line.locator("input[type=number]").fill("1")
        line.locator("select").select_option(index=1)
    shoot(page, "choose-lines")
    page.locator("form button[type=submit].primary").click()
    page.wait_for_url("**/r/**")
    assert registered_text in page.locator("h1").inner_text()
    rma = page.locator(".rma strong").inner_text()
    shoot(page, "status")

    label_href = page.locator("a[href$='label.pdf?layout=a4']").get_attribute("href")
    pdf = page.request.get(label_href)
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf"
    assert decode_pdf(pdf.body(), 150).get("Code128") == rma

    page.locator("details.qr summary").click()
    assert page.locator("details.qr img").evaluate("img => img.complete && img.naturalWidth > 0")
    shoot(page, "qr")

    page.locator("nav.langs a[hreflang=en]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert rma in page.content() and "What happens next" in page.content()
    shoot(page, "status-in-english")


def test_wrong_credentials_keep_what_was_typed(phone, shoot):
    page = phone
    page.goto("/")
    page.locator("#order_number").fill("SE-1001")
    page.locator("#credential").fill("not-me@example.se")
    page.locator("button[type=submit]").click()
    assert page.locator("#form-error").is_visible()
    assert page.locator("#order_number").input_value() == "SE-1001"
    assert page.locator("#credential").input_value() == "not-me@example.se"
    shoot(page, "wrong-credentials")

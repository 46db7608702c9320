"""render_pdf_batch: many labels, one WeasyPrint document, each label on its own page(s)."""

from __future__ import annotations

import pytest

from labels.render import render_pdf_batch


def test_thermal_batch_has_one_page_per_label_each_scanning_its_own_rma(kit):
    rmas = ["R7K4-MX2Q", "B2CD-9QWE", "Z9Y8-X7W6"]
    items = [kit.make_label(rma=rma, status_url=f"{kit.STATUS_URL}/{index}") for index, rma in enumerate(rmas)]
    pdf = render_pdf_batch(items, "thermal")
    assert len(kit.page_sizes_pt(pdf)) == 3
    for index, rma in enumerate(rmas):
        found = kit.decode_page(pdf, index, dpi=203)
        assert found.get("Code128") == [rma]
        assert found.get("QRCode") == [f"{kit.STATUS_URL}/{index}"]


def test_a4_batch_keeps_each_label_in_its_own_language_and_starts_each_on_a_new_page(kit):
    items = [kit.make_label(language="da", rma="DA11-1111"), kit.make_label(language="fi", rma="FI22-2222")]
    pages = kit.page_texts(render_pdf_batch(items, "a4"))
    assert len(pages) == 2
    assert "Sådan sender du din returnering" in pages[0] and "DA11-1111" in pages[0] and "FI22-2222" not in pages[0]
    assert "Näin lähetät palautuksen" in pages[1] and "FI22-2222" in pages[1] and "DA11-1111" not in pages[1]


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError):
        render_pdf_batch([], "a4")

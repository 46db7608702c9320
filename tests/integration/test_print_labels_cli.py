"""`portal print-labels` renders a batch into one PDF that scans page by page."""

from __future__ import annotations

from datetime import date

import pypdfium2
import zxingcpp
from click.testing import CliRunner
from sqlmodel import Session, select

from portal.cli import main
from portal.models import Order, OrderLine
from portal.returns import policy, service


def _register(engine, number: str, resolution: str, nonce: str) -> str:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution=resolution,
            language="sv", form_nonce=nonce), date.today())
        s.commit()
        return ret.rma


def test_batch_of_exchanges_in_one_pdf(demo_engine, database_url, tmp_path, monkeypatch):
    exchange_a = _register(demo_engine, "SE-1001", "exchange", "nonce-a-0123456789")
    exchange_b = _register(demo_engine, "DK-3001", "exchange", "nonce-b-0123456789")
    _register(demo_engine, "FI-4001", "refund", "nonce-c-0123456789")
    monkeypatch.setenv("DATABASE_URL", database_url)
    from portal.config import get_settings
    get_settings.cache_clear()
    out = tmp_path / "batch.pdf"
    try:
        result = CliRunner().invoke(main, ["print-labels", "--resolution", "exchange", "-o", str(out)])
        unknown = CliRunner().invoke(main, ["print-labels", "--rma", "R0000000", "-o", str(tmp_path / "x.pdf")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "2 labels" in result.output
    pdf = pypdfium2.PdfDocument(out.read_bytes())
    decoded = set()
    for page in pdf:
        decoded |= {r.text for r in zxingcpp.read_barcodes(page.render(scale=203 / 72).to_pil()) if r.format.name == "Code128"}
    assert len(pdf) == 2 and decoded == {exchange_a, exchange_b}
    assert unknown.exit_code != 0 and "No returns match" in unknown.output

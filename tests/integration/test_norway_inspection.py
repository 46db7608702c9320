"""Inspection decides whether a Norwegian line keeps returned-goods relief F01."""

from __future__ import annotations

from sqlmodel import Session, select

from portal.models import ReturnLineCustoms
from tests.integration.test_receiving import arrive, line_fields, lines_by_sku, register, submit


def relief_of(engine, line_id: int) -> ReturnLineCustoms:
    with Session(engine) as s:
        return s.exec(select(ReturnLineCustoms).where(ReturnLineCustoms.return_line_id == line_id)).one()


def test_damaged_goods_lose_f01_and_regain_it_when_reinspected_fine(staff_client, demo_engine):
    client = staff_client("warehouse")
    rma = register(demo_engine, "NO-2001", {"HD-200": 1}, nonce="nonce-no-inspect-0001")
    arrive(client, rma)
    line = lines_by_sku(demo_engine, rma)["HD-200"]
    assert relief_of(demo_engine, line.id).relief == "F01"

    damaged = submit(client, rma, line_fields(line, received="1", condition="damaged", acceptance="accepted", disposition="repair"))
    assert damaged.status_code in (200, 302, 303)
    row = relief_of(demo_engine, line.id)
    assert row.relief is None
    assert any(r["code"] == "same_state" and not r["ok"] and "duty may apply" in r["reason"] for r in row.results)

    fine = submit(client, rma, line_fields(line, received="1", condition="as_new", acceptance="accepted", disposition="restock"))
    assert fine.status_code in (200, 302, 303)
    row = relief_of(demo_engine, line.id)
    assert row.relief == "F01" and [r for r in row.results if r["code"] == "same_state"][0]["ok"]

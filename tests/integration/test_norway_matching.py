"""Norwegian return lines are matched to their export goods items when the return is registered.

Real service, real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), demo data.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.models import (
    ExportDeclaration,
    ExportLine,
    Order,
    OrderLine,
    Return,
    ReturnEvent,
    ReturnLine,
    ReturnLineCustoms,
)
from portal.norway.customs_match import match_return
from portal.returns import policy, service
from portal.returns.status import build_status_view

TODAY = datetime.now(timezone.utc).date()
ATTENTION = "customs.needs_attention"


# --- helpers --------------------------------------------------------------------------------


def order_lines(engine, number: str) -> dict[str, OrderLine]:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        return {line.sku: line for line in s.exec(select(OrderLine).where(OrderLine.order_id == order.id))}


def register(engine, number: str, picks: dict[str, int], nonce: str | None = None) -> int:
    """Register a return of `picks` (SKU -> quantity) through the service; the return's id."""
    lines = order_lines(engine, number)
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        request = service.ReturnRequest(
            order_id=order.id,
            lines=[policy.RequestedLine(lines[sku].id, str(qty), "too_small", "") for sku, qty in picks.items()],
            resolution="refund",
            language="nb",
            form_nonce=nonce or uuid.uuid4().hex,
        )
        ret = service.register_return(s, request, TODAY)
        s.commit()
        return ret.id


def customs_by_sku(engine, return_id: int) -> dict[str, ReturnLineCustoms]:
    with Session(engine) as s:
        rows = s.exec(
            select(OrderLine.sku, ReturnLineCustoms)
            .join(ReturnLine, ReturnLine.id == ReturnLineCustoms.return_line_id)
            .join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
            .where(ReturnLine.return_id == return_id)
        ).all()
        return {sku: row for sku, row in rows}


def events(engine, return_id: int) -> list[ReturnEvent]:
    with Session(engine) as s:
        return service.events_of(s, return_id)


def status_of(engine, return_id: int) -> str:
    with Session(engine) as s:
        return s.get(Return, return_id).status


def declaration_of(engine, number: str) -> ExportDeclaration:
    with Session(engine) as s:
        return s.exec(select(ExportDeclaration).join(Order).where(Order.number == number)).one()


def export_line_of(engine, number: str, sku: str) -> ExportLine:
    line = order_lines(engine, number)[sku]
    with Session(engine) as s:
        return s.exec(select(ExportLine).where(ExportLine.order_line_id == line.id)).one()


def set_exported_quantity(engine, number: str, sku: str, quantity: int) -> None:
    """The export declaration the portal knows carried fewer units than were bought
    (the rest left on another declaration the shop never sent)."""
    export_line = export_line_of(engine, number, sku)
    with Session(engine) as s:
        s.exec(sa.update(ExportLine).where(ExportLine.id == export_line.id).values(quantity=quantity))
        s.commit()


def failed(row: ReturnLineCustoms) -> dict[str, str]:
    return {r["code"]: r["reason"] for r in row.results if not r["ok"]}


# --- (a) the happy path -----------------------------------------------------------------------


def test_each_norwegian_line_points_at_its_export_goods_item(demo_engine):
    return_id = register(demo_engine, "NO-2001", {"HD-200": 1, "TS-100": 2})
    declaration = declaration_of(demo_engine, "NO-2001")
    hoodie, tshirt = export_line_of(demo_engine, "NO-2001", "HD-200"), export_line_of(demo_engine, "NO-2001", "TS-100")
    assert (hoodie.goods_item_number, tshirt.goods_item_number) == (1, 2)  # demo data: items in line order

    rows = customs_by_sku(demo_engine, return_id)
    assert set(rows) == {"HD-200", "TS-100"}
    for sku, export_line, qty in (("HD-200", hoodie, 1), ("TS-100", tshirt, 2)):
        row = rows[sku]
        assert row.mrn == declaration.mrn and len(row.mrn) == 18
        assert row.declaration_id == declaration.id
        assert row.allocations == [{"goods_item_number": export_line.goods_item_number, "quantity": qty}]
        assert row.relief == "F01" and row.procedure == "6110"
        assert row.needs_attention is False
        assert row.results and all(r["ok"] for r in row.results)
        assert {r["code"] for r in row.results} >= {"declaration", "mrn", "export_line", "importer", "quantity", "time_limit"}
        assert row.assessed_at.tzinfo is not None
    assert ATTENTION not in [e.type for e in events(demo_engine, return_id)]
    assert status_of(demo_engine, return_id) == "label_issued"


def test_the_same_form_twice_matches_once(demo_engine):
    first = register(demo_engine, "NO-2001", {"TS-100": 1}, nonce="same-form-nonce")
    second = register(demo_engine, "NO-2001", {"TS-100": 1}, nonce="same-form-nonce")
    assert first == second
    with Session(demo_engine) as s:
        assert s.exec(select(sa.func.count()).select_from(ReturnLineCustoms)).one() == 1


def test_matching_again_updates_the_rows_in_place(demo_engine):
    return_id = register(demo_engine, "NO-2001", {"TS-100": 3})
    before = customs_by_sku(demo_engine, return_id)["TS-100"]
    with Session(demo_engine) as s:
        rows = match_return(s, s.get(Return, return_id), TODAY)
        s.commit()
        assert [row.id for row in rows] == [before.id]
    after = customs_by_sku(demo_engine, return_id)["TS-100"]
    assert after.allocations == [{"goods_item_number": 2, "quantity": 3}]  # its own units are not "earlier"
    assert after.needs_attention is False and after.assessed_at >= before.assessed_at


# --- (b) several returns against one export line ----------------------------------------------


def test_partial_returns_up_to_the_exported_quantity_all_get_relief(demo_engine):
    first = register(demo_engine, "NO-2001", {"TS-100": 2})
    second = register(demo_engine, "NO-2001", {"TS-100": 1})  # 3 bought, 3 exported
    for return_id, qty in ((first, 2), (second, 1)):
        row = customs_by_sku(demo_engine, return_id)["TS-100"]
        assert row.allocations == [{"goods_item_number": 2, "quantity": qty}]
        assert row.relief == "F01" and row.needs_attention is False


def test_second_return_beyond_exported_minus_returned_is_flagged(demo_engine):
    set_exported_quantity(demo_engine, "NO-2001", "TS-100", 2)  # 3 bought, 2 on the known export
    first = register(demo_engine, "NO-2001", {"TS-100": 2})
    second = register(demo_engine, "NO-2001", {"TS-100": 1})

    ok = customs_by_sku(demo_engine, first)["TS-100"]
    assert ok.allocations == [{"goods_item_number": 2, "quantity": 2}]
    assert ok.relief == "F01" and ok.needs_attention is False

    over = customs_by_sku(demo_engine, second)["TS-100"]
    assert over.needs_attention is True
    assert over.allocations == [] and over.relief is None  # nothing left to claim relief against
    assert set(failed(over)) == {"quantity"}
    assert "only 0 of 2 exported remain (2 returned earlier)" in failed(over)["quantity"]
    attention = [e for e in events(demo_engine, second) if e.type == ATTENTION]
    assert len(attention) == 1
    assert attention[0].data["lines"][0]["sku"] == "TS-100"
    assert attention[0].data["lines"][0]["reasons"] == [failed(over)["quantity"]]
    assert status_of(demo_engine, second) == "label_issued"
    assert ATTENTION not in [e.type for e in events(demo_engine, first)]


def test_one_return_beyond_the_export_gets_relief_for_what_was_exported(demo_engine):
    set_exported_quantity(demo_engine, "NO-2001", "TS-100", 2)
    row = customs_by_sku(demo_engine, register(demo_engine, "NO-2001", {"TS-100": 3}))["TS-100"]
    assert row.allocations == [{"goods_item_number": 2, "quantity": 2}]
    assert row.relief == "F01"  # covers the 2 allocated units; the third has none
    assert row.needs_attention is True and "1 unit(s) have no export" in failed(row)["quantity"]


def test_a_cancelled_return_frees_its_exported_units(demo_engine):
    set_exported_quantity(demo_engine, "NO-2001", "TS-100", 2)
    first = register(demo_engine, "NO-2001", {"TS-100": 2})
    with Session(demo_engine) as s:
        service.cancel_return(s, s.get(Return, first))
        s.commit()
    row = customs_by_sku(demo_engine, register(demo_engine, "NO-2001", {"TS-100": 2}))["TS-100"]
    assert row.allocations == [{"goods_item_number": 2, "quantity": 2}]
    assert row.needs_attention is False and row.relief == "F01"


# --- (c) missing MRN, missing export line, unusable declaration ------------------------------


def test_missing_declaration_is_accepted_but_needs_attention(demo_engine, settings):
    declaration = declaration_of(demo_engine, "NO-2002")
    with Session(demo_engine) as s:
        s.exec(sa.delete(ExportLine).where(ExportLine.declaration_id == declaration.id))
        s.exec(sa.delete(ExportDeclaration).where(ExportDeclaration.id == declaration.id))
        s.commit()

    return_id = register(demo_engine, "NO-2002", {"JK-500": 1})
    row = customs_by_sku(demo_engine, return_id)["JK-500"]
    assert row.needs_attention is True
    assert row.mrn is None and row.declaration_id is None and row.allocations == [] and row.relief is None
    assert "No export declaration (MRN)" in failed(row)["declaration"]

    types = [e.type for e in events(demo_engine, return_id)]
    assert ATTENTION in types and "label.issued" in types
    attention = next(e for e in events(demo_engine, return_id) if e.type == ATTENTION)
    assert any("No export declaration" in reason for reason in attention.data["lines"][0]["reasons"])
    assert attention.actor == "system"
    assert status_of(demo_engine, return_id) == "label_issued"  # the consumer still gets the label
    with Session(demo_engine) as s:  # and never sees the customs note
        view = build_status_view(s, s.get(Return, return_id), settings)
        assert ATTENTION not in [e.type for e in view.timeline]
        assert "label.issued" in [e.type for e in view.timeline]


def test_missing_export_line_flags_only_that_line(demo_engine):
    with Session(demo_engine) as s:
        s.exec(sa.delete(ExportLine).where(ExportLine.id == export_line_of(demo_engine, "NO-2003", "JN-300").id))
        s.commit()
    declaration = declaration_of(demo_engine, "NO-2003")

    return_id = register(demo_engine, "NO-2003", {"BT-600": 1, "JN-300": 1})
    rows = customs_by_sku(demo_engine, return_id)
    assert rows["BT-600"].needs_attention is False and rows["BT-600"].relief == "F01"
    jeans = rows["JN-300"]
    assert jeans.needs_attention is True and jeans.relief is None and jeans.allocations == []
    assert jeans.mrn == declaration.mrn  # the declaration is known, the goods item is not
    assert "has no goods item" in failed(jeans)["export_line"]
    attention = [e for e in events(demo_engine, return_id) if e.type == ATTENTION]
    assert [line["sku"] for line in attention[0].data["lines"]] == ["JN-300"]
    assert status_of(demo_engine, return_id) == "label_issued"


def test_declaration_the_customs_library_refuses_does_not_block_the_return(demo_engine):
    declaration = declaration_of(demo_engine, "NO-2004")
    with Session(demo_engine) as s:  # a VOEC entry without the VOEC number: bad data from the shop
        s.exec(sa.update(ExportDeclaration).where(ExportDeclaration.id == declaration.id).values(voec_number=None))
        s.commit()

    return_id = register(demo_engine, "NO-2004", {"JN-300": 1})
    row = customs_by_sku(demo_engine, return_id)["JN-300"]
    assert row.needs_attention is True and row.mrn is None and row.relief is None
    assert f"Export declaration {declaration.mrn} is unusable" in row.results[0]["reason"]
    assert status_of(demo_engine, return_id) == "label_issued"


# --- (d) not Norway ---------------------------------------------------------------------------


def test_swedish_return_gets_no_customs_rows(demo_engine):
    return_id = register(demo_engine, "SE-1001", {"TS-100": 1, "HD-200": 1})
    assert customs_by_sku(demo_engine, return_id) == {}
    with Session(demo_engine) as s:
        assert s.exec(select(sa.func.count()).select_from(ReturnLineCustoms)).one() == 0
    assert [e.type for e in events(demo_engine, return_id)] == ["return.registered", "label.issued"]

"""Warehouse: the receiving station and the inspection page, over HTTP with real sessions, CSRF and database."""

from __future__ import annotations

import re
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, select

from portal.models import (
    Order, OrderLine, OutboxMessage, Return, ReturnEvent, ReturnLine, WebhookEndpoint,
)
from portal.returns import policy, service
from portal.returns.refund_estimate import estimate_refund
from tests.integration.conftest import csrf_of

VERSION_RE = re.compile(r'name="version" value="(\d+)"')


# --- helpers ----------------------------------------------------------------------------------


def register(engine, number: str, quantities: dict[str, int] | None = None, nonce: str = "nonce-receiving-0001") -> str:
    """A return for `number` (SKU -> quantity; default one unit of the first returnable line)."""
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        lines = s.exec(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_no)).all()
        if quantities is None:
            first = next(l for l in lines if l.returnable)
            quantities = {first.sku: 1}
        by_sku = {l.sku: l for l in lines}
        requested = [policy.RequestedLine(by_sku[sku].id, str(q), "too_small", "") for sku, q in quantities.items()]
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=requested, resolution="refund", language="sv", form_nonce=nonce), date.today())
        s.commit()
        return ret.rma


def load(engine, rma: str) -> Return:
    with Session(engine) as s:
        return s.exec(select(Return).where(Return.rma == rma)).one()


def lines_by_sku(engine, rma: str) -> dict[str, ReturnLine]:
    with Session(engine) as s:
        rows = s.exec(select(ReturnLine, OrderLine).join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
                      .join(Return, Return.id == ReturnLine.return_id).where(Return.rma == rma)).all()
        return {ol.sku: rl for rl, ol in rows}


def events(engine, rma: str, type_: str | None = None) -> list[ReturnEvent]:
    with Session(engine) as s:
        query = select(ReturnEvent).join(Return, Return.id == ReturnEvent.return_id).where(Return.rma == rma)
        if type_:
            query = query.where(ReturnEvent.type == type_)
        return list(s.exec(query.order_by(ReturnEvent.id)))


def scan(client, code: str):
    station = client.get("/staff/receive")
    assert station.status_code == 200
    return client.post("/staff/receive", data={"_csrf_token": csrf_of(station.text), "code": code}, follow_redirects=False)


def arrive(client, rma: str) -> None:
    response = scan(client, rma)
    assert response.status_code == 302, response.text


def open_inspection(client, rma: str) -> tuple[str, str]:
    page = client.get(f"/staff/returns/{rma}/inspect")
    assert page.status_code == 200, page.text
    return csrf_of(page.text), VERSION_RE.search(page.text).group(1)


def line_fields(line: ReturnLine, received="", condition="", acceptance="", reason="", disposition="") -> dict:
    i = line.id
    return {f"received_{i}": str(received), f"condition_{i}": condition, f"acceptance_{i}": acceptance,
            f"rejection_reason_{i}": reason, f"disposition_{i}": disposition}


def submit(client, rma: str, fields: dict, csrf: str | None = None, version: str | None = None):
    if csrf is None or version is None:
        csrf, version = open_inspection(client, rma)
    return client.post(f"/staff/returns/{rma}/inspect", data={"_csrf_token": csrf, "version": version, **fields},
                       follow_redirects=False)


def with_dashes_lower(rma: str) -> str:
    return f"{rma[:1]}-{rma[1:4]}-{rma[4:]}".lower()


# --- receiving station ------------------------------------------------------------------------


def test_station_is_a_focused_scan_field(staff_client):
    page = staff_client("warehouse").get("/staff/receive")
    assert page.status_code == 200
    field = re.search(r"<input[^>]*id=\"code\"[^>]*>", page.text).group(0)
    assert 'class="scan"' in field and "autofocus" in field and 'name="code"' in field and 'value=""' in field
    assert "Nothing scanned yet" in page.text


def test_scan_by_rma_marks_arrived_once_and_fixes_the_refund_due_date(staff_client, demo_engine, settings):
    rma = register(demo_engine, "SE-1001")
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        before = estimate_refund(s, ret, s.get(Order, ret.order_id), settings.timezone)
    assert before.due_date is None  # not fixed until the goods arrive

    warehouse = staff_client("warehouse")
    response = scan(warehouse, rma)
    assert response.status_code == 302
    assert response.headers["location"] == f"/staff/returns/{rma}/inspect?arrival=arrived"
    arrived = load(demo_engine, rma)
    assert arrived.status == "arrived" and arrived.arrived_at is not None and arrived.version == 2
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        after = estimate_refund(s, ret, s.get(Order, ret.order_id), settings.timezone)
    assert after.due_date is not None and "the goods arrived" in after.due_explanation

    page = warehouse.get(response.headers["location"])
    assert "is marked as arrived" in page.text

    # The same parcel scanned again (typed lower-case with dashes): found, nothing recorded twice.
    again = scan(warehouse, with_dashes_lower(rma))
    assert again.status_code == 302 and again.headers["location"].endswith("arrival=already")
    assert "already received" in warehouse.get(again.headers["location"]).text
    still = load(demo_engine, rma)
    assert still.arrived_at == arrived.arrived_at and still.version == 2
    assert len(events(demo_engine, rma, "parcel.arrived")) == 1
    audit = events(demo_engine, rma, "arrival.recorded")
    assert len(audit) == 1 and audit[0].actor == "warehouse-0@shop.example"
    assert audit[0].data["before"]["status"] == "label_issued" and audit[0].data["after"]["status"] == "arrived"

    station = warehouse.get("/staff/receive").text
    scans = station[station.index('id="scans"'):]
    assert scans.count(f"/staff/returns/{rma}/inspect") == 2
    assert "marked arrived" in scans and "already received" in scans


def test_scan_lower_case_rma_with_dashes_and_spaces(staff_client, demo_engine):
    rma = register(demo_engine, "FI-4001")
    response = scan(staff_client("warehouse"), "  " + with_dashes_lower(rma).replace("-", " - ") + " ")
    assert response.status_code == 302 and response.headers["location"].startswith(f"/staff/returns/{rma}/inspect")
    assert load(demo_engine, rma).status == "arrived"


def test_scan_by_order_number_finds_its_active_return(staff_client, demo_engine):
    rma = register(demo_engine, "DK-3001")
    response = scan(staff_client("warehouse"), "dk-3001")
    assert response.status_code == 302 and response.headers["location"].startswith(f"/staff/returns/{rma}/inspect")
    assert load(demo_engine, rma).status == "arrived"


def test_order_with_several_returns_offers_a_choice(staff_client, demo_engine):
    first = register(demo_engine, "SE-1001", {"TS-100": 1}, nonce="nonce-choice-first-01")
    second = register(demo_engine, "SE-1001", {"HD-200": 1}, nonce="nonce-choice-second-1")
    warehouse = staff_client("warehouse")
    response = scan(warehouse, "SE-1001")
    assert response.status_code == 200
    assert "has 2 returns" in response.text and f"Receive {first}" in response.text and f"Receive {second}" in response.text
    assert load(demo_engine, first).status == "label_issued" and load(demo_engine, second).status == "label_issued"
    chosen = warehouse.post("/staff/receive", data={"_csrf_token": csrf_of(response.text), "code": second},
                            follow_redirects=False)
    assert chosen.status_code == 302
    assert load(demo_engine, second).status == "arrived" and load(demo_engine, first).status == "label_issued"
    # Now only one of them is still on its way: the order number goes straight to it.
    last = scan(warehouse, "SE-1001")
    assert last.status_code == 302 and last.headers["location"].startswith(f"/staff/returns/{first}/inspect")


def test_scan_by_tracking_number(staff_client, demo_engine):
    rma = register(demo_engine, "NO-2001")
    with Session(demo_engine) as s:
        s.exec(sa.update(Return).where(Return.rma == rma).values(tracking_number="00370712345678901234"))
        s.commit()
    response = scan(staff_client("warehouse"), "00370712345678901234")
    assert response.status_code == 302 and response.headers["location"].startswith(f"/staff/returns/{rma}/inspect")
    assert load(demo_engine, rma).status == "arrived"


def test_unknown_code_answers_404_next_to_an_empty_focused_field(staff_client, demo_engine):
    warehouse = staff_client("warehouse")
    response = scan(warehouse, "NOPE-123")
    assert response.status_code == 404
    assert "No return found for &#39;NOPE-123&#39;" in response.text
    field = re.search(r"<input[^>]*id=\"code\"[^>]*>", response.text).group(0)
    assert 'value=""' in field and "autofocus" in field and 'aria-invalid="true"' in field
    assert 'id="code-error"' in response.text
    assert "not found" in response.text[response.text.index('id="scans"'):]
    empty = warehouse.post("/staff/receive", data={"_csrf_token": csrf_of(response.text), "code": "   "})
    assert empty.status_code == 400 and "Scan a label or type" in empty.text
    with Session(demo_engine) as s:
        assert s.exec(select(sa.func.count()).select_from(ReturnEvent).where(ReturnEvent.type == "parcel.arrived")).one() == 0


def test_returns_that_must_not_be_received_get_a_warning(staff_client, demo_engine):
    pending = register(demo_engine, "SE-1003", nonce="nonce-pending-000001")  # outside the return window
    cancelled = register(demo_engine, "FI-4002", nonce="nonce-cancelled-00001")
    with Session(demo_engine) as s:
        service.cancel_return(s, s.exec(select(Return).where(Return.rma == cancelled)).one())
        s.commit()
    warehouse = staff_client("warehouse")
    for rma, words in ((pending, "waiting for approval"), (cancelled, "was cancelled")):
        response = scan(warehouse, rma)
        assert response.status_code == 409
        assert words in response.text and "Do not mark it as received" in response.text
        ret = load(demo_engine, rma)
        assert ret.arrived_at is None and ret.status in ("pending_approval", "cancelled")
        assert events(demo_engine, rma, "parcel.arrived") == []


def test_arrival_queues_the_return_received_webhook(staff_client, demo_engine):
    with Session(demo_engine) as s:
        s.add(WebhookEndpoint(url="https://erp.example/hooks", secret="s" * 32, event_types=["return.received"]))
        s.commit()
    rma = register(demo_engine, "SE-1004")
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    arrive(warehouse, rma)  # scanned twice: still one message
    with Session(demo_engine) as s:
        messages = s.exec(select(OutboxMessage).where(OutboxMessage.event_type == "return.received")).all()
    assert len(messages) == 1 and messages[0].payload["data"]["rma"] == rma


# --- inspection -----------------------------------------------------------------------------


def test_inspection_happy_path_to_inspected(staff_client, demo_engine):
    with Session(demo_engine) as s:
        s.add(WebhookEndpoint(url="https://erp.example/hooks", secret="s" * 32, event_types=["return.inspected"]))
        s.commit()
    rma = register(demo_engine, "SE-1001", {"TS-100": 2, "HD-200": 1})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    lines = lines_by_sku(demo_engine, rma)
    page = warehouse.get(f"/staff/returns/{rma}/inspect")
    assert "Organic cotton T-shirt" in page.text and "Merino hoodie" in page.text and "customer returns 2" in page.text
    response = submit(warehouse, rma, {
        **line_fields(lines["TS-100"], 2, "as_new", "accepted", disposition="restock"),
        **line_fields(lines["HD-200"], 1, "damaged", "rejected", reason="Worn and washed, stains on the sleeve"),
    })
    assert response.status_code == 302, response.text
    done = warehouse.get(response.headers["location"])
    assert "the return is inspected" in done.text
    ret = load(demo_engine, rma)
    assert ret.status == "inspected" and ret.version == 3  # 1 → 2 at arrival → 3 at inspection
    lines = lines_by_sku(demo_engine, rma)
    assert (lines["TS-100"].received_quantity, lines["TS-100"].condition, lines["TS-100"].acceptance,
            lines["TS-100"].disposition) == (2, "as_new", "accepted", "restock")
    assert (lines["HD-200"].acceptance, lines["HD-200"].rejection_reason, lines["HD-200"].disposition) == (
        "rejected", "Worn and washed, stains on the sleeve", None)
    [event] = events(demo_engine, rma, "return.inspected")
    assert event.actor == "warehouse-0@shop.example" and event.data["to"] == "inspected"
    assert event.data["partial"] is False and event.data["complete"] is True
    ts = str(lines["TS-100"].id)
    assert event.data["before"]["lines"][ts]["acceptance"] == "pending"
    assert event.data["after"]["lines"][ts] == {"received_quantity": 2, "condition": "as_new", "acceptance": "accepted",
                                                "rejection_reason": "", "disposition": "restock"}
    assert "customs_relief" not in event.data  # a Swedish return: no customs note
    with Session(demo_engine) as s:
        [message] = s.exec(select(OutboxMessage).where(OutboxMessage.event_type == "return.inspected")).all()
    assert message.payload["data"]["rma"] == rma and message.payload["data"]["status"] == "inspected"


def test_partial_receipt_stays_arrived(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 2})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    line = lines_by_sku(demo_engine, rma)["TS-100"]
    response = submit(warehouse, rma, line_fields(line, 1, "opened", "accepted", disposition="restock"))
    assert response.status_code == 302
    page = warehouse.get(response.headers["location"])
    assert "Partially received" in page.text and 'id="partial"' in page.text
    ret = load(demo_engine, rma)
    assert ret.status == "arrived"
    assert lines_by_sku(demo_engine, rma)["TS-100"].received_quantity == 1
    [event] = events(demo_engine, rma, "return.inspected")
    assert event.data["partial"] is True and event.data["note"] == "partially received" and "to" not in event.data
    # The second unit arrives later: now it is complete.
    response = submit(warehouse, rma, line_fields(line, 2, "opened", "accepted", disposition="restock"))
    assert response.status_code == 302
    assert load(demo_engine, rma).status == "inspected"
    assert len(events(demo_engine, rma, "return.inspected")) == 2


def test_undecided_lines_keep_the_return_arrived(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 1})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    line = lines_by_sku(demo_engine, rma)["TS-100"]
    response = submit(warehouse, rma, line_fields(line, 1, "as_new", "pending"))
    assert response.status_code == 302
    assert load(demo_engine, rma).status == "arrived"
    assert "not decided yet" in warehouse.get(response.headers["location"]).text


def test_reject_without_reason_is_refused_with_the_values_kept(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 2, "HD-200": 1})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    lines = lines_by_sku(demo_engine, rma)
    hd = lines["HD-200"].id
    response = submit(warehouse, rma, {
        **line_fields(lines["TS-100"], 2, "as_new", "accepted", disposition="restock"),
        **line_fields(lines["HD-200"], 1, "damaged", "rejected", reason="   "),
    })
    assert response.status_code == 400
    assert f'id="rejection_reason_{hd}-error"' in response.text and "Say why this line is rejected" in response.text
    assert re.search(rf'name="condition_{hd}".*?<option value="damaged" selected>', response.text, re.S)
    assert re.search(rf'name="acceptance_{hd}" value="rejected" checked', response.text)
    unchanged = lines_by_sku(demo_engine, rma)
    assert all(l.acceptance == "pending" and l.received_quantity == 0 and l.condition is None for l in unchanged.values())
    assert load(demo_engine, rma).status == "arrived" and load(demo_engine, rma).version == 2
    assert events(demo_engine, rma, "return.inspected") == []


def test_accepted_line_needs_a_disposition(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 1})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    line = lines_by_sku(demo_engine, rma)["TS-100"]
    response = submit(warehouse, rma, line_fields(line, 1, "as_new", "accepted"))
    assert response.status_code == 400 and f'id="disposition_{line.id}-error"' in response.text
    assert lines_by_sku(demo_engine, rma)["TS-100"].acceptance == "pending"


def test_received_more_than_returned_or_not_a_number_is_refused(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 2})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    line = lines_by_sku(demo_engine, rma)["TS-100"]
    too_many = submit(warehouse, rma, line_fields(line, 3, "as_new", "accepted", disposition="restock"))
    assert too_many.status_code == 400
    assert f'id="received_{line.id}-error"' in too_many.text and "At most 2" in too_many.text
    assert re.search(rf'name="received_{line.id}"[^>]*value="3"', too_many.text)  # typed value kept
    for bad in ("two", "-1", "1.5", "²", "٣"):  # superscript and Arabic-Indic digits pass str.isdigit()
        response = submit(warehouse, rma, line_fields(line, bad, "as_new", "accepted", disposition="restock"))
        assert response.status_code == 400 and "Enter a whole number" in response.text, bad
    stored = lines_by_sku(demo_engine, rma)["TS-100"]
    assert (stored.received_quantity, stored.condition, stored.acceptance) == (0, None, "pending")
    assert load(demo_engine, rma).version == 2 and events(demo_engine, rma, "return.inspected") == []


def test_two_staff_submitting_the_same_page_second_gets_409(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 2})
    first, second = staff_client("warehouse"), staff_client("warehouse")
    arrive(first, rma)
    line = lines_by_sku(demo_engine, rma)["TS-100"]
    csrf_a, version_a = open_inspection(first, rma)
    csrf_b, version_b = open_inspection(second, rma)
    assert version_a == version_b
    ok = submit(first, rma, line_fields(line, 2, "as_new", "accepted", disposition="restock"), csrf_a, version_a)
    assert ok.status_code == 302
    late = submit(second, rma, line_fields(line, 1, "damaged", "rejected", reason="Torn"), csrf_b, version_b)
    assert late.status_code == 409
    assert "Someone else changed return" in late.text and "Nothing of yours was saved" in late.text
    assert re.search(rf'<option value="as_new" selected>', late.text)  # the page shows the first one's values
    stored = lines_by_sku(demo_engine, rma)["TS-100"]
    assert (stored.received_quantity, stored.condition, stored.acceptance, stored.disposition) == (2, "as_new", "accepted", "restock")
    [event] = events(demo_engine, rma, "return.inspected")
    assert event.actor == "warehouse-0@shop.example"
    assert load(demo_engine, rma).version == 3


def test_stale_version_after_a_rescan_is_a_conflict(staff_client, demo_engine):
    """The page was opened before the parcel was scanned in: the arrival changed the version."""
    rma = register(demo_engine, "NO-2004")
    warehouse = staff_client("warehouse")
    page = warehouse.get(f"/staff/returns/{rma}/inspect")
    assert "has not arrived yet" in page.text and 'name="version"' not in page.text
    line = lines_by_sku(demo_engine, rma)["JN-300"]
    refused = warehouse.post(f"/staff/returns/{rma}/inspect", data={
        "_csrf_token": csrf_of(page.text), "version": "1", **line_fields(line, 1, "as_new", "accepted", disposition="restock")})
    assert refused.status_code == 409 and "Scan the parcel at the receiving station first" in refused.text
    assert lines_by_sku(demo_engine, rma)["JN-300"].acceptance == "pending"
    arrive(warehouse, rma)
    stale = warehouse.post(f"/staff/returns/{rma}/inspect", data={
        "_csrf_token": csrf_of(page.text), "version": "1", **line_fields(line, 1, "as_new", "accepted", disposition="restock")})
    assert stale.status_code == 409
    assert lines_by_sku(demo_engine, rma)["JN-300"].acceptance == "pending"


def test_norwegian_line_in_a_worse_condition_notes_the_f01_risk(staff_client, demo_engine):
    rma = register(demo_engine, "NO-2001", {"HD-200": 1, "TS-100": 2})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    lines = lines_by_sku(demo_engine, rma)
    response = submit(warehouse, rma, {
        **line_fields(lines["HD-200"], 1, "damaged", "accepted", disposition="repair"),
        **line_fields(lines["TS-100"], 2, "opened", "accepted", disposition="restock"),
    })
    assert response.status_code == 302
    [event] = events(demo_engine, rma, "return.inspected")
    [note] = event.data["customs_relief"]
    assert note["return_line_id"] == lines["HD-200"].id and note["relief"] == "F01" and note["condition"] == "damaged"
    assert "may no longer apply" in note["note"]
    assert load(demo_engine, rma).status == "inspected"


def test_unknown_return_is_404_and_support_cannot_inspect(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001")
    warehouse = staff_client("warehouse")
    assert warehouse.get("/staff/returns/R0000000/inspect").status_code == 404
    support = staff_client("support")
    assert support.get(f"/staff/returns/{rma}/inspect").status_code == 403
    assert support.get("/staff/receive").status_code == 403
    admin = staff_client("admin")
    assert admin.get(f"/staff/returns/{rma}/inspect").status_code == 200


def test_refunded_return_cannot_be_reinspected(staff_client, demo_engine):
    from portal.models import Refund

    rma = register(demo_engine, "SE-1001", {"TS-100": 1})
    warehouse = staff_client("warehouse")
    arrive(warehouse, rma)
    line = lines_by_sku(demo_engine, rma)["TS-100"]
    csrf, version = open_inspection(warehouse, rma)
    assert submit(warehouse, rma, line_fields(line, 1, "as_new", "accepted", disposition="restock"), csrf, version).status_code == 302
    ret = load(demo_engine, rma)
    with Session(demo_engine) as s:
        s.add(Refund(return_id=ret.id, amount_minor=100, currency="SEK", state="requested"))
        s.commit()
    page = warehouse.get(f"/staff/returns/{rma}/inspect")
    assert "refund was already requested" in page.text and 'name="version"' not in page.text
    again = warehouse.post(f"/staff/returns/{rma}/inspect", data={
        "_csrf_token": csrf, "version": str(ret.version), **line_fields(line, 0, "missing", "rejected", reason="x")})
    assert again.status_code == 409
    assert lines_by_sku(demo_engine, rma)["TS-100"].acceptance == "accepted"

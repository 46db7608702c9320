"""Staff refunds and exchanges over HTTP: the itemised page, issuing once, the shop's signed callback,
retries, manual payment, the refund lists and exchanges, on a real return that was registered and inspected."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from portal.models import (
    Exchange,
    MerchantPolicy,
    Order,
    OrderLine,
    OutboxMessage,
    Refund,
    Return,
    ReturnEvent,
    ReturnLine,
    WebhookEndpoint,
)
from portal.outbox.signing import SIGNATURE_HEADER, sign
from portal.returns import policy, refunds, service
from tests.integration.conftest import csrf_of

SECRET = "shop-callback-secret-0123456789abcdef"
CALLBACK = "/webhooks/shop/refunds"
HIDDEN_RE = r'name="{name}" value="([^"]*)"'

# SE-1001 (SEK): TS-100 2 x 299.00, HD-200 1 x 1199.00 - 120.00 line discount, SK-400 1 x 149.00; delivery 49.00.
TS, HD, SK, SHIPPING = 59800, 107900, 14900, 4900


# --- set-up helpers ------------------------------------------------------------------------------


def register(engine, number: str, picks: dict[str, int], resolution: str = "refund", nonce: str | None = None) -> str:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        by_sku = {l.sku: l for l in s.exec(select(OrderLine).where(OrderLine.order_id == order.id))}
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, resolution=resolution, language="sv",
            lines=[policy.RequestedLine(by_sku[sku].id, str(qty), "too_small", "") for sku, qty in picks.items()],
            form_nonce=nonce or f"nonce-{number}-{resolution}-{sorted(picks.items())}-{time.monotonic_ns()}",
        ), date.today())
        s.commit()
        return ret.rma


def inspect(engine, rma: str, accepted: dict[str, int], rejected: tuple[str, ...] = (), arrived_days_ago: int = 1) -> None:
    """What the inspection UI (built elsewhere) leaves behind: received, accepted/rejected, condition, disposition."""
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        for rl, ol in service.return_lines_with_order_lines(s, ret.id):
            if ol.sku in accepted:
                rl.received_quantity, rl.acceptance, rl.condition, rl.disposition = accepted[ol.sku], "accepted", "as_new", "restock"
            elif ol.sku in rejected:
                rl.received_quantity, rl.acceptance, rl.condition, rl.disposition = rl.quantity, "rejected", "damaged", "discard"
                rl.rejection_reason = "Used and washed"
            s.add(rl)
        ret.arrived_at = datetime.now(timezone.utc) - timedelta(days=arrived_days_ago)
        ret.status = "inspected"
        s.add(ret)
        s.commit()


def set_fee(engine, currency: str, fee: int) -> None:
    with Session(engine) as s:
        merchant = s.exec(select(MerchantPolicy)).one()
        merchant.return_fee_minor = {**merchant.return_fee_minor, currency: fee}
        s.add(merchant)
        s.commit()


def add_endpoint(engine, events=("*",)) -> int:
    with Session(engine) as s:
        endpoint = WebhookEndpoint(url="https://shop.example/hooks", secret="endpoint-secret", event_types=list(events))
        s.add(endpoint)
        s.commit()
        return endpoint.id


def the_return(engine, rma: str) -> Return:
    with Session(engine) as s:
        return s.exec(select(Return).where(Return.rma == rma)).one()


def refunds_of(engine, rma: str) -> list[Refund]:
    with Session(engine) as s:
        return list(s.exec(select(Refund).join(Return).where(Return.rma == rma).order_by(Refund.id)))


def events_of(engine, rma: str, type_: str) -> list[ReturnEvent]:
    with Session(engine) as s:
        return list(s.exec(select(ReturnEvent).join(Return).where(Return.rma == rma, ReturnEvent.type == type_)))


def outbox(engine, event_type: str) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.event_type == event_type).order_by(OutboxMessage.id)))


def hidden(html: str, name: str) -> str:
    match = re.search(HIDDEN_RE.format(name=name), html)
    assert match, f"page has no hidden field {name}"
    return match.group(1)


def issue_form(html: str, **fields) -> dict:
    data = {"_csrf_token": csrf_of(html), "action": "issue", "version": hidden(html, "version"),
            "sequence": hidden(html, "sequence"), "shown_total": hidden(html, "shown_total")}
    if 'name="return_fee" value="1" checked' in html:
        data["return_fee"] = "1"
    data.update(fields)
    return data


def issue(client, rma: str, **fields):
    page = client.get(f"/staff/returns/{rma}/refund")
    assert page.status_code == 200, page.text
    return client.post(f"/staff/returns/{rma}/refund", data=issue_form(page.text, **fields), follow_redirects=False)


def callback(client, payload, *, secret: str = SECRET, timestamp: int | None = None, raw: bytes | None = None,
             header: str | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    signature = header if header is not None else sign(secret, body, timestamp)
    return client.post(CALLBACK, content=body, headers={SIGNATURE_HEADER: signature, "content-type": "application/json"})


def count(engine, model) -> int:
    with Session(engine) as s:
        return s.exec(select(sa.func.count()).select_from(model)).one()


def today_se() -> date:
    return datetime.now(ZoneInfo("Europe/Stockholm")).date()


@pytest.fixture
def shop_secret(monkeypatch):
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", SECRET)
    return SECRET


# --- the refund page and issuing -------------------------------------------------------------------


def test_itemised_page_with_shipping_and_deductions_then_issue_once(staff_client, demo_engine):
    set_fee(demo_engine, "SEK", 4900)
    endpoint_id = add_endpoint(demo_engine, ["refund.requested"])
    rma = register(demo_engine, "SE-1001", {"TS-100": 2, "HD-200": 1, "SK-400": 1})
    inspect(demo_engine, rma, {"TS-100": 2, "HD-200": 1, "SK-400": 1})
    admin = staff_client("admin")

    page = admin.get(f"/staff/returns/{rma}/refund")
    assert page.status_code == 200
    html = page.text
    assert "Organic cotton T-shirt" in html and "TS-100 x2 of 2" in html and "HD-200 x1 of 1" in html
    assert "Standard delivery (whole order withdrawn)" in html  # the whole order is withdrawn
    assert "Return shipping fee: Return label fee" in html  # deducted by default
    assert hidden(html, "shown_total") == str(TS + HD + SK + SHIPPING - 4900)
    assert "SEK1,826.00" in html
    ret = the_return(demo_engine, rma)
    due, explanation = refunds.legal_due_date(ret.created_at, ret.arrived_at, None)
    assert "Legal due date" in html and explanation in html

    # Recalculate with a diminished value on the hoodie: nothing is written.
    hd_line = next(l.id for l in service.order_lines(Session(demo_engine), ret.order_id) if l.sku == "HD-200")
    preview = admin.post(f"/staff/returns/{rma}/refund", data=issue_form(
        html, action="preview", diminished_amount="100,00", diminished_reason="Worn, tags removed",
        diminished_line=str(hd_line)))
    assert preview.status_code == 200
    assert "Diminished value: Worn, tags removed" in preview.text
    expected = TS + HD + SK + SHIPPING - 4900 - 10000
    assert hidden(preview.text, "shown_total") == str(expected)
    assert refunds_of(demo_engine, rma) == []

    response = admin.post(f"/staff/returns/{rma}/refund", data=issue_form(
        preview.text, diminished_amount="100.00", diminished_reason="Worn, tags removed", diminished_line=str(hd_line)),
        follow_redirects=False)
    assert response.status_code == 302, response.text
    [refund] = refunds_of(demo_engine, rma)
    assert (refund.amount_minor, refund.currency, refund.state, refund.method) == (expected, "SEK", "requested", "original_payment")
    assert refund.idempotency_key == f"{ret.id}:1" and refund.due_date == due and refund.attempts == 1
    assert refund.breakdown["total_minor"] == expected
    assert {item["kind"] for item in refund.breakdown["items"]} == {"line", "shipping", "deduction"}
    assert refund.requested_by == "admin-0@shop.example"
    [event] = events_of(demo_engine, rma, "refund.requested")
    assert event.actor == "admin-0@shop.example" and event.data["after"]["amount_minor"] == expected
    [message] = outbox(demo_engine, "refund.requested")
    assert message.endpoint_id == endpoint_id and message.return_id == ret.id
    data = message.payload["data"]
    assert (data["refund_id"], data["rma"], data["order_number"], data["amount_minor"], data["currency"], data["method"]) == (
        refund.id, rma, "SE-1001", expected, "SEK", "original_payment")
    assert len(data["items"]) == len(refund.breakdown["items"])
    assert the_return(demo_engine, rma).status == "resolved"  # everything accepted is refunded
    shown = admin.get(response.headers["location"])
    assert "The refund is requested" in shown.text and f'id="refund-{refund.id}"' in shown.text

    # The same form again (a double click, a second tab): refused, nothing paid twice.
    again = admin.post(f"/staff/returns/{rma}/refund", data=issue_form(
        preview.text, diminished_amount="100.00", diminished_reason="Worn, tags removed", diminished_line=str(hd_line)))
    assert again.status_code == 409 and "already issued" in again.text
    assert len(refunds_of(demo_engine, rma)) == 1 and len(outbox(demo_engine, "refund.requested")) == 1


def test_two_concurrent_issue_clicks_pay_once(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1004", {"SK-400": 2})
    inspect(demo_engine, rma, {"SK-400": 2})
    first, second = staff_client("admin"), staff_client("admin")
    page = first.get(f"/staff/returns/{rma}/refund").text
    form_one = issue_form(page)
    form_two = issue_form(second.get(f"/staff/returns/{rma}/refund").text)
    results = {}
    barrier = threading.Barrier(2)

    def click(name, client, form):
        barrier.wait()
        results[name] = client.post(f"/staff/returns/{rma}/refund", data=form, follow_redirects=False).status_code

    threads = [threading.Thread(target=click, args=("a", first, form_one)),
               threading.Thread(target=click, args=("b", second, form_two))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results.values()) == [302, 409]
    [refund] = refunds_of(demo_engine, rma)
    assert refund.amount_minor == 2 * 14900


def test_only_accepted_units_are_refunded_and_a_later_refund_pays_the_rest(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1001", {"TS-100": 2, "SK-400": 1})
    inspect(demo_engine, rma, {"TS-100": 1}, rejected=("SK-400",))
    admin = staff_client("admin")
    assert issue(admin, rma).status_code == 302
    [first] = refunds_of(demo_engine, rma)
    assert first.amount_minor == 29900  # one T-shirt; the rejected socks are not refunded, no shipping
    assert the_return(demo_engine, rma).status == "inspected"  # the second T-shirt has not arrived: not resolved
    with Session(demo_engine) as s:  # the second T-shirt turns up and is accepted
        rl = s.exec(select(ReturnLine).join(Return).join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
                    .where(Return.rma == rma, OrderLine.sku == "TS-100")).one()
        rl.received_quantity = 2
        s.add(rl)
        s.commit()
    page = admin.get(f"/staff/returns/{rma}/refund").text
    assert hidden(page, "shown_total") == "29900" and hidden(page, "sequence") == "2"
    assert issue(admin, rma).status_code == 302
    second = refunds_of(demo_engine, rma)[1]
    assert second.amount_minor == 29900 and second.idempotency_key.endswith(":2")
    assert the_return(demo_engine, rma).status == "resolved"
    done = admin.get(f"/staff/returns/{rma}/refund").text
    assert "Nothing to refund now" in done and "Issue refund" not in done


def test_bad_deductions_are_refused_next_to_the_field(staff_client, demo_engine):
    rma = register(demo_engine, "DK-3001", {"JN-300": 1})
    inspect(demo_engine, rma, {"JN-300": 1})
    admin = staff_client("admin")
    no_reason = issue(admin, rma, diminished_amount="50")
    assert no_reason.status_code == 400
    assert 'id="diminished_reason-error"' in no_reason.text and "Say why the value is diminished" in no_reason.text
    assert 'value="50"' in no_reason.text  # what was typed stays
    bad_amount = issue(admin, rma, diminished_amount="fifty", diminished_reason="scratched")
    assert bad_amount.status_code == 400 and 'id="diminished_amount-error"' in bad_amount.text
    too_precise = issue(admin, rma, diminished_amount="1.234", diminished_reason="scratched")
    assert too_precise.status_code == 400 and "DKK has 2 decimals" in too_precise.text
    bad_line = issue(admin, rma, diminished_amount="5", diminished_reason="scratched", diminished_line="999999")
    assert bad_line.status_code == 400 and 'id="diminished_line-error"' in bad_line.text
    # Changing a deduction without recalculating: the amount staff saw is not the amount paid.
    changed = issue(admin, rma, diminished_amount="5", diminished_reason="scratched")
    assert changed.status_code == 400 and "Check the new calculation" in changed.text
    assert hidden(changed.text, "shown_total") == str(69900 - 500)
    assert refunds_of(demo_engine, rma) == [] and events_of(demo_engine, rma, "refund.requested") == []


def test_nothing_to_refund_creates_no_refund(staff_client, demo_engine):
    not_inspected = register(demo_engine, "SE-1004", {"SK-400": 1})
    like_for_like = register(demo_engine, "DK-3001", {"TS-100": 1}, resolution="exchange")
    inspect(demo_engine, like_for_like, {"TS-100": 1})
    admin = staff_client("admin")
    page = admin.get(f"/staff/returns/{not_inspected}/refund").text
    assert "Issue refund" not in page and "not inspected yet" in page
    response = issue(admin, not_inspected)
    assert response.status_code == 400 and "no line of this return has been accepted" in response.text
    swap = issue(admin, like_for_like)
    assert swap.status_code == 400 and "No refund was created" in swap.text
    assert "exchanged like for like" in swap.text
    assert count(demo_engine, Refund) == 0


def test_support_views_but_cannot_issue_and_warehouse_has_no_access(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1004", {"SK-400": 1})
    inspect(demo_engine, rma, {"SK-400": 1})
    support = staff_client("support")
    page = support.get(f"/staff/returns/{rma}/refund")
    assert page.status_code == 200 and "SEK149.00" in page.text
    assert "Issue refund" not in page.text and "Record an exchange" not in page.text
    refused = support.post(f"/staff/returns/{rma}/refund", data={"_csrf_token": csrf_of(page.text), "action": "issue",
                                                                "sequence": "1", "version": "1", "shown_total": "14900"})
    assert refused.status_code == 403
    exchange = support.post(f"/staff/returns/{rma}/exchange", data={"_csrf_token": csrf_of(page.text)})
    assert exchange.status_code == 403
    assert support.get("/staff/refunds").status_code == 200
    warehouse = staff_client("warehouse")
    assert warehouse.get(f"/staff/returns/{rma}/refund").status_code == 403
    assert warehouse.get("/staff/refunds").status_code == 403
    assert count(demo_engine, Refund) == 0
    assert staff_client("admin").get("/staff/returns/R0000000/refund").status_code == 404


def test_stale_form_after_inspection_change_is_a_conflict(staff_client, demo_engine):
    rma = register(demo_engine, "SE-1004", {"SK-400": 2})
    inspect(demo_engine, rma, {"SK-400": 2})
    admin = staff_client("admin")
    html = admin.get(f"/staff/returns/{rma}/refund").text
    with Session(demo_engine) as s:  # someone else changes the return meanwhile
        s.exec(sa.update(Return).where(Return.rma == rma).values(version=Return.version + 1))
        s.commit()
    response = admin.post(f"/staff/returns/{rma}/refund", data=issue_form(html), follow_redirects=False)
    assert response.status_code == 409 and "Reload" in response.text
    assert refunds_of(demo_engine, rma) == []


# --- the shop's callback -----------------------------------------------------------------------------


def _issued(staff_client, demo_engine, number="SE-1004", picks=None):
    rma = register(demo_engine, number, picks or {"SK-400": 1})
    inspect(demo_engine, rma, {sku: qty for sku, qty in (picks or {"SK-400": 1}).items()})
    admin = staff_client("admin")
    assert issue(admin, rma).status_code == 302
    [refund] = refunds_of(demo_engine, rma)
    return admin, rma, refund


def test_signed_completed_callback_pays_the_refund_once(client, staff_client, demo_engine, shop_secret):
    add_endpoint(demo_engine)
    admin, rma, refund = _issued(staff_client, demo_engine)
    response = callback(client, {"refund_id": refund.id, "status": "completed", "reference": "PSP-778899"})
    assert response.status_code == 200, response.text
    assert response.json() == {"refund_id": refund.id, "state": "issued", "changed": True, "external_ref": "PSP-778899"}
    [paid] = refunds_of(demo_engine, rma)
    assert paid.state == "issued" and paid.external_ref == "PSP-778899" and paid.issued_at is not None
    [event] = events_of(demo_engine, rma, "refund.issued")
    assert event.actor == "shop" and event.data["refund_id"] == refund.id
    [message] = outbox(demo_engine, "refund.issued")
    assert message.payload["data"]["state"] == "issued"

    again = callback(client, {"refund_id": refund.id, "status": "completed", "reference": "PSP-778899"})
    assert again.status_code == 200 and again.json()["changed"] is False
    assert len(events_of(demo_engine, rma, "refund.issued")) == 1 and len(outbox(demo_engine, "refund.issued")) == 1
    late_failure = callback(client, {"refund_id": refund.id, "status": "failed", "reason": "card closed"})
    assert late_failure.status_code == 409 and refunds_of(demo_engine, rma)[0].state == "issued"

    ret = the_return(demo_engine, rma)
    status = client.get(f"/r/{ret.rma}/{ret.status_token}?lang=en")
    assert status.status_code == 200 and "paid on" in status.text and "SEK149.00" in status.text


@pytest.mark.parametrize("case", ["bad_signature", "old_timestamp", "no_header", "unknown_refund", "malformed_json",
                                  "not_an_object", "bad_fields"])
def test_refused_callbacks_change_nothing(client, staff_client, demo_engine, shop_secret, case):
    _admin, rma, refund = _issued(staff_client, demo_engine)
    good = {"refund_id": refund.id, "status": "completed", "reference": "X-1"}
    response = {
        "bad_signature": lambda: callback(client, good, secret="not-the-secret"),
        "old_timestamp": lambda: callback(client, good, timestamp=int(time.time()) - 600),
        "no_header": lambda: client.post(CALLBACK, content=json.dumps(good).encode()),
        "unknown_refund": lambda: callback(client, {**good, "refund_id": refund.id + 1000}),
        "malformed_json": lambda: callback(client, None, raw=b'{"refund_id": 1, "status": '),
        "not_an_object": lambda: callback(client, [good]),
        "bad_fields": lambda: callback(client, {"refund_id": "1", "status": "paid", "reference": 7}),
    }[case]()
    expected = {"bad_signature": 401, "old_timestamp": 401, "no_header": 401, "unknown_refund": 404,
                "malformed_json": 400, "not_an_object": 400, "bad_fields": 400}[case]
    assert response.status_code == expected, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == expected and problem["detail"]
    if case == "old_timestamp":
        assert "5-minute window" in problem["detail"]
    if case == "bad_fields":
        assert {e["field"] for e in problem["errors"]} == {"refund_id", "status", "reference"}
    [unchanged] = refunds_of(demo_engine, rma)
    assert unchanged.state == "requested" and unchanged.external_ref is None
    assert events_of(demo_engine, rma, "refund.issued") == [] and events_of(demo_engine, rma, "refund.failed") == []


def test_callbacks_are_refused_without_a_configured_secret(client, staff_client, demo_engine, monkeypatch):
    monkeypatch.delenv("SHOP_WEBHOOK_SECRET", raising=False)
    _admin, rma, refund = _issued(staff_client, demo_engine)
    response = callback(client, {"refund_id": refund.id, "status": "completed"}, secret="")
    assert response.status_code == 401 and "SHOP_WEBHOOK_SECRET" in response.json()["detail"]
    assert refunds_of(demo_engine, rma)[0].state == "requested"


def test_failed_refund_is_listed_retried_and_marked_paid(client, staff_client, demo_engine, shop_secret):
    add_endpoint(demo_engine, ["refund.requested", "refund.issued"])
    admin, rma, refund = _issued(staff_client, demo_engine)
    failed = callback(client, {"refund_id": refund.id, "status": "failed", "reason": "Card expired"})
    assert failed.status_code == 200 and failed.json()["state"] == "failed"
    assert callback(client, {"refund_id": refund.id, "status": "failed", "reason": "Card expired"}).json()["changed"] is False
    [row] = refunds_of(demo_engine, rma)
    assert row.state == "failed" and row.failure_reason == "Card expired"
    assert len(events_of(demo_engine, rma, "refund.failed")) == 1

    # While a refund is failed, no second refund can be issued for the same units.
    blocked = admin.get(f"/staff/returns/{rma}/refund").text
    assert "Issue refund" not in blocked and f"Refund #{refund.id} failed" in blocked

    listing = admin.get("/staff/refunds").text
    failed_section = listing.split('id="failed"')[1].split("</section>")[0]
    assert rma in failed_section and "Card expired" in failed_section and f'/staff/refunds/{refund.id}/retry' in failed_section
    support_listing = staff_client("support").get("/staff/refunds").text
    assert rma in support_listing and f'/staff/refunds/{refund.id}/retry' not in support_listing

    retried = admin.post(f"/staff/refunds/{refund.id}/retry", data={"_csrf_token": csrf_of(listing), "back": "list"},
                         follow_redirects=False)
    assert retried.status_code == 302 and retried.headers["location"].startswith("/staff/refunds")
    [row] = refunds_of(demo_engine, rma)
    assert row.state == "requested" and row.attempts == 2 and row.failure_reason == ""
    messages = outbox(demo_engine, "refund.requested")
    assert len(messages) == 2 and messages[0].idempotency_key != messages[1].idempotency_key
    assert messages[1].payload["data"]["attempt"] == 2
    assert len(events_of(demo_engine, rma, "refund.retried")) == 1
    not_failed = admin.post(f"/staff/refunds/{refund.id}/retry", data={"_csrf_token": csrf_of(listing)})
    assert not_failed.status_code == 409 and len(outbox(demo_engine, "refund.requested")) == 2

    page = admin.get(f"/staff/returns/{rma}/refund").text
    missing = admin.post(f"/staff/refunds/{refund.id}/mark-paid", data={"_csrf_token": csrf_of(page), "reference": "  "})
    assert missing.status_code == 400 and f'id="reference-{refund.id}-error"' in missing.text
    assert refunds_of(demo_engine, rma)[0].state == "requested"
    paid = admin.post(f"/staff/refunds/{refund.id}/mark-paid", data={"_csrf_token": csrf_of(page), "reference": "BANK-42"},
                      follow_redirects=False)
    assert paid.status_code == 302
    [row] = refunds_of(demo_engine, rma)
    assert row.state == "issued" and row.external_ref == "BANK-42" and row.issued_at is not None
    [event] = events_of(demo_engine, rma, "refund.issued")
    assert event.actor == "admin-0@shop.example" and event.data["manual"] is True
    assert len(outbox(demo_engine, "refund.issued")) == 1
    twice = admin.post(f"/staff/refunds/{refund.id}/mark-paid", data={"_csrf_token": csrf_of(page), "reference": "BANK-43"})
    assert twice.status_code == 409 and refunds_of(demo_engine, rma)[0].external_ref == "BANK-42"
    assert admin.post("/staff/refunds/999999/retry", data={"_csrf_token": csrf_of(page)}).status_code == 404
    support = staff_client("support")
    support_page = support.get(f"/staff/returns/{rma}/refund").text
    assert support.post(f"/staff/refunds/{refund.id}/mark-paid",
                        data={"_csrf_token": csrf_of(support_page), "reference": "X"}).status_code == 403


# --- lists -------------------------------------------------------------------------------------------------


def test_refund_lists_overdue_due_soon_awaiting_and_recent(staff_client, demo_engine, client, shop_secret):
    admin, overdue_rma, overdue = _issued(staff_client, demo_engine, "SE-1004", {"SK-400": 1})
    _, soon_rma, soon = _issued(staff_client, demo_engine, "DK-3001", {"JN-300": 1})
    _, paid_rma, paid = _issued(staff_client, demo_engine, "FI-4001", {"JK-500": 1})
    waiting_rma = register(demo_engine, "NO-2004", {"JN-300": 1})
    inspect(demo_engine, waiting_rma, {"JN-300": 1}, arrived_days_ago=2)
    today = today_se()
    with Session(demo_engine) as s:
        s.exec(sa.update(Refund).where(Refund.id == overdue.id).values(due_date=today - timedelta(days=3)))
        s.exec(sa.update(Refund).where(Refund.id == soon.id).values(due_date=today + timedelta(days=2)))
        s.commit()
    assert callback(client, {"refund_id": paid.id, "status": "completed", "reference": "PSP-1"}).status_code == 200

    html = staff_client("support").get("/staff/refunds").text

    def section(name):
        return html.split(f'<section class="card" id="{name}">')[1].split("</section>")[0]

    assert overdue_rma in section("overdue") and "3 day(s) late" in section("overdue")
    assert soon_rma not in section("overdue") and paid_rma not in section("overdue")
    assert soon_rma in section("due-soon") and overdue_rma not in section("due-soon")
    assert paid_rma in section("recent") and "PSP-1" in section("recent")
    awaiting = section("awaiting")
    assert waiting_rma in awaiting and overdue_rma not in awaiting
    ret = the_return(demo_engine, waiting_rma)
    due, _ = refunds.legal_due_date(ret.created_at, ret.arrived_at, None)
    from portal.i18n import local_date
    assert local_date(due, "en", "Europe/Stockholm") in awaiting
    assert "No failed refunds." in section("failed")


# --- exchanges ------------------------------------------------------------------------------------------


def test_exchange_for_a_cheaper_replacement_refunds_the_difference(staff_client, demo_engine):
    set_fee(demo_engine, "SEK", 4900)  # never deducted by default on an exchange
    endpoint_id = add_endpoint(demo_engine, ["exchange.requested", "refund.requested"])
    rma = register(demo_engine, "SE-1001", {"HD-200": 1}, resolution="exchange")
    inspect(demo_engine, rma, {"HD-200": 1})
    admin = staff_client("admin")
    page = admin.get(f"/staff/returns/{rma}/refund").text
    assert "exchanged like for like" in page and "Issue refund" not in page
    ret = the_return(demo_engine, rma)
    with Session(demo_engine) as s:
        return_line_id = s.exec(select(ReturnLine.id).where(ReturnLine.return_id == ret.id)).one()

    form = {"_csrf_token": csrf_of(page), "version": hidden(page, "version"), "return_line_id": str(return_line_id),
            "replacement_sku": "HD-201", "replacement_name": "Merino hoodie, green", "quantity": "2", "unit_price": "999"}
    too_many = admin.post(f"/staff/returns/{rma}/exchange", data=form)
    assert too_many.status_code == 400 and 'id="quantity-error"' in too_many.text and "Only 1 unit(s)" in too_many.text
    no_price = admin.post(f"/staff/returns/{rma}/exchange", data={**form, "quantity": "1", "unit_price": ""})
    assert no_price.status_code == 400 and 'id="unit_price-error"' in no_price.text
    assert count(demo_engine, Exchange) == 0

    done = admin.post(f"/staff/returns/{rma}/exchange", data={**form, "quantity": "1"}, follow_redirects=False)
    assert done.status_code == 302, done.text
    with Session(demo_engine) as s:
        [exchange] = s.exec(select(Exchange)).all()
    assert (exchange.replacement_sku, exchange.quantity, exchange.unit_price_minor) == ("HD-201", 1, 99900)
    assert exchange.price_difference_minor == HD - 99900 and exchange.currency == "SEK"
    assert exchange.created_by == "admin-0@shop.example"
    [event] = events_of(demo_engine, rma, "exchange.requested")
    assert event.data["after"]["price_difference_minor"] == 8000
    [message] = outbox(demo_engine, "exchange.requested")
    assert message.endpoint_id == endpoint_id and message.payload["data"]["replacement_sku"] == "HD-201"
    stale = admin.post(f"/staff/returns/{rma}/exchange", data={**form, "quantity": "1"})
    assert stale.status_code == 409  # the form's version is gone: no second exchange by a double click
    assert count(demo_engine, Exchange) == 1

    page = admin.get(f"/staff/returns/{rma}/refund").text
    assert "difference refunded" in page and hidden(page, "shown_total") == "8000"
    assert issue(admin, rma).status_code == 302
    [refund] = refunds_of(demo_engine, rma)
    assert refund.amount_minor == 8000 and refund.method == "original_payment"
    assert [item["kind"] for item in refund.breakdown["items"]] == ["exchange_difference"]
    assert the_return(demo_engine, rma).status == "resolved"


def test_dearer_replacement_refunds_nothing_and_shows_what_the_customer_owes(staff_client, demo_engine):
    rma = register(demo_engine, "DK-3001", {"TS-100": 1}, resolution="exchange")
    inspect(demo_engine, rma, {"TS-100": 1})
    admin = staff_client("admin")
    page = admin.get(f"/staff/returns/{rma}/refund").text
    ret = the_return(demo_engine, rma)
    with Session(demo_engine) as s:
        return_line_id = s.exec(select(ReturnLine.id).where(ReturnLine.return_id == ret.id)).one()
    response = admin.post(f"/staff/returns/{rma}/exchange", data={
        "_csrf_token": csrf_of(page), "version": hidden(page, "version"), "return_line_id": str(return_line_id),
        "replacement_sku": "TS-150", "replacement_name": "Long-sleeve shirt", "quantity": "1", "unit_price": "299.00"},
        follow_redirects=False)
    assert response.status_code == 302
    with Session(demo_engine) as s:
        assert s.exec(select(Exchange.price_difference_minor)).one() == 24900 - 29900
    page = admin.get(f"/staff/returns/{rma}/refund").text
    assert "Customer owes" in page and "DKK50.00" in page and "Issue refund" not in page

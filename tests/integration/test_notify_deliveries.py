"""The e-mail/SMS delivery log in the back-office: filters, dead letters, one message's events, retry.

Messages come from real notification rules firing on real return events; they are sent by the real
dispatcher to a real SMTP server (aiosmtpd) and a real HTTP server playing 46elks, on loopback."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import TestClient
from sqlmodel import Session, select

from portal.app import create_app
from portal.models import (
    AuditEntry, Customer, DeliveryEvent, NotificationRule, NotificationTemplate, Order, OrderLine, OutboxMessage, Return,
    ReturnEvent, utcnow,
)
from portal.notify.deliveries import PAGE_SIZE
from portal.outbox.dispatcher import claim_due, dispatch_due
from portal.outbox.service import enqueue
from portal.returns import policy, service
from tests.integration.conftest import csrf_of
from tests.integration.outbox_helpers import running_smtp
from tests.integration.sms_helpers import running_sms_provider

ROW_RE = re.compile(r'<tr id="message-(\d+)">(.*?)</tr>', re.S)
DECISION_RE = re.compile(r'<tr id="decision-(\d+)">(.*?)</tr>', re.S)


# --- Setting the scene: rules fire on real return events ---------------------------------------------


def add_rule(engine, channels=("email", "sms"), trigger="parcel.arrived", name="Parcel arrived",
             marketing=False) -> int:
    with Session(engine) as s:
        rule = NotificationRule(name=name, trigger=trigger, channels=list(channels), active=True, marketing=marketing)
        s.add(rule)
        s.flush()
        for lang in ("sv", "da", "en"):
            s.add(NotificationTemplate(rule_id=rule.id, language=lang, subject=f"[{lang}] Retur {{{{ rma }}}}",
                                       body_text=f"[{lang}] Hej {{{{ first_name }}}}, vi har fått paketet.",
                                       body_html="", sms_text=f"[{lang}] SMS {{{{ rma }}}} har kommit fram"))
        s.commit()
        return rule.id


def register_and_arrive(engine, number: str) -> tuple[int, str]:
    """A return for the order's first returnable line, then its arrival (which fires the rules)."""
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)
                      .order_by(OrderLine.line_no)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=f"nonce-{number}-0123456789abcdef"), date.today())
        s.flush()
        service.advance(s, ret, "arrived", "warehouse", "parcel.arrived")
        s.commit()
        return ret.id, ret.rma


def messages_of(engine, return_id: int) -> dict[str, OutboxMessage]:
    with Session(engine) as s:
        return {m.channel: m for m in s.exec(select(OutboxMessage).where(OutboxMessage.return_id == return_id))}


def set_state(engine, message_id: int, state: str, attempts: int = 1, last_error: str = "") -> None:
    with Session(engine) as s:
        m = s.get(OutboxMessage, message_id)
        m.state, m.attempts, m.last_error = state, attempts, last_error
        s.add(m)
        s.commit()


def rows(html: str) -> dict[int, str]:
    return {int(mid): body for mid, body in ROW_RE.findall(html)}


def events_of(engine, message_id: int) -> list[DeliveryEvent]:
    with Session(engine) as s:
        return list(s.exec(select(DeliveryEvent).where(DeliveryEvent.outbox_id == message_id).order_by(DeliveryEvent.id)))


@pytest.fixture
def two_returns(demo_engine):
    """SE-1001 (Anna) and DK-3001 (Freja) arrived: one e-mail and one SMS each. Anna's e-mail is dead,
    Freja's SMS was sent."""
    add_rule(demo_engine)
    anna_id, anna_rma = register_and_arrive(demo_engine, "SE-1001")
    freja_id, freja_rma = register_and_arrive(demo_engine, "DK-3001")
    anna, freja = messages_of(demo_engine, anna_id), messages_of(demo_engine, freja_id)
    assert set(anna) == set(freja) == {"email", "sms"}
    set_state(demo_engine, anna["email"].id, "dead", 1, "SMTP 550 5.1.1 No such user here")
    set_state(demo_engine, freja["sms"].id, "sent", 1)
    return {"anna": (anna_rma, anna), "freja": (freja_rma, freja)}


# --- The log and its filters ---------------------------------------------------------------------------


def test_log_lists_email_and_sms_newest_first_with_links(staff_client, two_returns, demo_engine):
    admin = staff_client("admin")
    anna_rma, anna = two_returns["anna"]
    freja_rma, freja = two_returns["freja"]
    with Session(demo_engine) as s:  # a webhook row must not show up in this log
        enqueue(s, key="webhook:x", channel="webhook", destination="https://erp.example/in", event_type="refund.issued",
                payload={})
        s.commit()
    page = admin.get("/staff/deliveries")
    assert page.status_code == 200
    found = rows(page.text)
    ids = [anna["email"].id, anna["sms"].id, freja["email"].id, freja["sms"].id]
    assert list(found) == sorted(ids, reverse=True)  # newest first, e-mail and SMS only
    dead_row = found[anna["email"].id]
    assert "anna.svensson@example.se" in dead_row  # admins see recipients in full
    assert f'<a href="/staff/returns/{anna_rma}">{anna_rma}</a>' in dead_row
    assert ">dead<" in dead_row and "SMTP 550 5.1.1 No such user here" in dead_row
    assert "Arrived at the merchant" in dead_row and "Parcel arrived" in dead_row and "queued" in dead_row
    assert ">sent<" in found[freja["sms"].id] and "+4520123456" in found[freja["sms"].id]
    assert re.search(r'id="dead-count">1<', page.text)


def test_filters_channel_state_search_and_dates(staff_client, two_returns, settings):
    admin = staff_client("admin")
    anna_rma, anna = two_returns["anna"]
    freja_rma, freja = two_returns["freja"]

    def ids(**params) -> set[int]:
        response = admin.get("/staff/deliveries?" + urlencode(params))
        assert response.status_code == 200, (params, response.text[:500])
        return set(rows(response.text))

    assert ids(channel="sms") == {anna["sms"].id, freja["sms"].id}
    assert ids(channel="email", state="sent") == set()
    dead = admin.get("/staff/deliveries?state=dead")
    assert set(rows(dead.text)) == {anna["email"].id} and "<h1>Dead letters</h1>" in dead.text
    assert ids(q=freja_rma) == {freja["email"].id, freja["sms"].id}
    assert ids(q=anna_rma.lower()) == {anna["email"].id, anna["sms"].id}  # RMA typed in lower case
    assert ids(q="ANNA.SVENSSON") == {anna["email"].id}  # part of an e-mail address, any case
    assert ids(q="070-123 45 67") == {anna["sms"].id}  # a phone number in its local form
    assert ids(q="nobody@nowhere.example") == set()
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    everything = {m.id for _, pair in two_returns.values() for m in pair.values()}
    assert ids(date_from=today.isoformat(), date_to=today.isoformat()) == everything
    assert ids(date_from=(today + timedelta(days=1)).isoformat()) == set()
    assert ids(date_to=(today - timedelta(days=1)).isoformat()) == set()
    assert ids(channel="email", q=freja_rma, date_from=today.isoformat()) == {freja["email"].id}


def test_support_sees_masked_recipients_in_the_list_and_full_on_the_message(staff_client, two_returns):
    support = staff_client("support")
    _, anna = two_returns["anna"]
    page = support.get("/staff/deliveries")
    assert page.status_code == 200
    found = rows(page.text)
    assert "an…@example.se" in found[anna["email"].id] and "+4670…67" in found[anna["sms"].id]
    assert "anna.svensson@example.se" not in page.text and "+46701234567" not in page.text
    detail = support.get(f"/staff/deliveries/{anna['email'].id}")
    assert detail.status_code == 200 and "anna.svensson@example.se" in detail.text


def test_pages_of_fifty(staff_client, demo_engine):
    with Session(demo_engine) as s:
        for n in range(PAGE_SIZE + 5):
            enqueue(s, key=f"mail:{n}", channel="email", destination=f"kund{n}@example.se", event_type="status_link.resent",
                    payload={"subject": f"Retur {n}", "text": "Hej"})
        s.commit()
    admin = staff_client("admin")
    first = admin.get("/staff/deliveries?channel=email")
    second = admin.get("/staff/deliveries?channel=email&page=2")
    assert first.status_code == second.status_code == 200
    assert len(rows(first.text)) == PAGE_SIZE and len(rows(second.text)) == 5
    assert min(rows(first.text)) > max(rows(second.text))
    assert "kund54@example.se" in first.text and "kund0@example.se" in second.text
    assert 'href="/staff/deliveries?channel=email&amp;page=2"' in first.text and "page 1 of 2" in first.text
    beyond = admin.get("/staff/deliveries?channel=email&page=9")
    assert beyond.status_code == 200 and "past the end" in beyond.text and rows(beyond.text) == {}


@pytest.mark.parametrize("query, field, message", [
    ("state=bogus", "state", "Unknown state 'bogus'"),
    ("channel=fax", "channel", "Unknown channel 'fax'"),
    ("page=-1", "page", "whole number from 1"),
    ("page=abc", "page", "whole number from 1"),
    ("page=99999999999999999999999", "page", "whole number from 1"),
    ("date_from=notadate", "date_from", "YYYY-MM-DD"),
    ("date_to=0001-01-01", "date_to", "between 2000-01-01"),
    ("date_from=2020-05-02&date_to=2020-05-01", "date_to", "before the start date"),
    ("q=%00%00", None, None),
])
def test_bad_filter_values_get_an_error_next_to_the_field(staff_client, two_returns, query, field, message):
    admin = staff_client("admin")
    response = admin.get(f"/staff/deliveries?{query}")
    if field is None:  # NUL characters are dropped, not a database error
        assert response.status_code == 200
        return
    assert response.status_code == 400
    error = re.search(rf'<p class="error" id="{field}-error">([^<]+)</p>', response.text)
    assert error and message in error.group(1).replace("&#39;", "'")
    if field != "page":
        assert f'aria-describedby="{field}-error"' in response.text
    assert len(rows(response.text)) == 4  # the bad filter is left out; the list still shows


# --- Decisions that never made a message: suppressed, invalid recipient, template error --------------


def decisions(html: str) -> dict[int, str]:
    return {int(eid): body for eid, body in DECISION_RE.findall(html)}


@pytest.fixture
def not_sent(demo_engine):
    """A marketing e-mail rule (nobody has consented) and an SMS rule; Freja's phone number is invalid.
    Anna: e-mail suppressed, SMS queued. Freja: e-mail suppressed, SMS invalid recipient."""
    add_rule(demo_engine, channels=("email",), name="Autumn offer", marketing=True)
    add_rule(demo_engine, channels=("sms",))
    with Session(demo_engine) as s:
        freja = s.exec(select(Order).where(Order.number == "DK-3001")).one()
        s.get(Customer, freja.customer_id).phone = "12"
        s.commit()
    anna_id, anna_rma = register_and_arrive(demo_engine, "SE-1001")
    freja_id, freja_rma = register_and_arrive(demo_engine, "DK-3001")
    with Session(demo_engine) as s:
        found = {(e.return_id, e.kind, e.detail["channel"]): e.id for e in s.exec(
            select(DeliveryEvent).where(DeliveryEvent.outbox_id.is_(None)))}
    assert set(found) == {(anna_id, "suppressed", "email"), (freja_id, "suppressed", "email"),
                          (freja_id, "invalid_recipient", "sms")}
    return {"anna_rma": anna_rma, "freja_rma": freja_rma, "anna_suppressed": found[(anna_id, "suppressed", "email")],
            "freja_suppressed": found[(freja_id, "suppressed", "email")],
            "freja_invalid": found[(freja_id, "invalid_recipient", "sms")],
            "anna_sms": messages_of(demo_engine, anna_id)["sms"].id}


def test_not_sent_lists_suppressed_and_invalid_recipient_decisions(staff_client, not_sent):
    for role in ("admin", "support"):
        page = staff_client(role).get("/staff/deliveries?state=not_sent")
        assert page.status_code == 200
        assert "<h2 id=\"not-sent-heading\">Not sent: suppressed / invalid recipient / template error</h2>" in page.text
        found = decisions(page.text)
        assert list(found) == [not_sent["freja_invalid"], not_sent["freja_suppressed"], not_sent["anna_suppressed"]]
        assert rows(page.text) == {}  # the queued SMS is in the message log, not here
        invalid = found[not_sent["freja_invalid"]]
        assert "invalid or missing phone number" in invalid and "invalid recipient" in invalid and "SMS" in invalid
        assert "Arrived at the merchant" in invalid and "Parcel arrived" in invalid
        assert f'<a href="/staff/returns/{not_sent["freja_rma"]}">{not_sent["freja_rma"]}</a>' in invalid
        suppressed = found[not_sent["anna_suppressed"]]
        assert "no marketing consent" in suppressed and "suppressed (no consent)" in suppressed
        assert "Autumn offer" in suppressed and "E-mail" in suppressed
        assert f'<a href="/staff/returns/{not_sent["anna_rma"]}">{not_sent["anna_rma"]}</a>' in suppressed
        assert "3 decisions; page 1 of 1." in page.text
    everything = staff_client("admin").get("/staff/deliveries")
    assert set(rows(everything.text)) == {not_sent["anna_sms"]} and decisions(everything.text) == {}


def test_not_sent_honours_channel_search_dates_and_pages(staff_client, not_sent, settings):
    admin = staff_client("admin")

    def ids(**params) -> list[int]:
        response = admin.get("/staff/deliveries?" + urlencode(dict(params, state="not_sent")))
        assert response.status_code == 200, (params, response.text[:500])
        return list(decisions(response.text))

    assert ids(channel="sms") == [not_sent["freja_invalid"]]
    assert ids(channel="email") == [not_sent["freja_suppressed"], not_sent["anna_suppressed"]]
    assert ids(q=not_sent["anna_rma"].lower()) == [not_sent["anna_suppressed"]]
    assert ids(q=not_sent["freja_rma"], channel="sms") == [not_sent["freja_invalid"]]
    assert ids(q="anna.svensson") == [] and ids(q="+4670 123 45 67") == []  # no recipient to match
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    assert len(ids(date_from=today.isoformat(), date_to=today.isoformat())) == 3
    assert ids(date_from=(today + timedelta(days=1)).isoformat()) == []
    assert ids(date_to=(today - timedelta(days=1)).isoformat()) == []
    beyond = admin.get("/staff/deliveries?state=not_sent&page=2")
    assert beyond.status_code == 200 and "past the end" in beyond.text and decisions(beyond.text) == {}
    assert 'href="/staff/deliveries?state=not_sent"' in beyond.text  # back to the last (only) page
    bad = admin.get("/staff/deliveries?state=not_sent&channel=fax")  # a bad filter is left out, with its error
    assert bad.status_code == 400 and len(decisions(bad.text)) == 3 and "Unknown channel" in bad.text


def test_not_sent_pages_of_fifty(staff_client, demo_engine):
    _, rma = register_and_arrive(demo_engine, "SE-1001")
    with Session(demo_engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        for n in range(PAGE_SIZE + 2):
            s.add(DeliveryEvent(return_id=ret.id, kind="failed", at=utcnow() + timedelta(seconds=n), detail={
                "rule": f"Rule {n}", "trigger": "parcel.arrived", "channel": "email", "reason": f"template error: no {n}"}))
        s.commit()
    admin = staff_client("admin")
    first, second = (admin.get(f"/staff/deliveries?state=not_sent&page={n}") for n in (1, 2))
    assert len(decisions(first.text)) == PAGE_SIZE and len(decisions(second.text)) == 2
    assert "template error: no 51" in first.text and "template error: no 0" in second.text
    assert "template error" in decisions(second.text)[min(decisions(second.text))]
    assert 'href="/staff/deliveries?state=not_sent&amp;page=2"' in first.text


# --- One message and its events ----------------------------------------------------------------------


def test_sms_detail_shows_deferral_sending_sent_and_the_delivery_report(demo_engine, settings, staff_client, monkeypatch):
    monkeypatch.setenv("SMS_WEBHOOK_SECRET", "elks-report-secret-0123456789")
    add_rule(demo_engine, channels=("sms",))
    evening = datetime(2030, 3, 4, 20, 30, tzinfo=timezone.utc)  # 21:30 in Stockholm: quiet hours
    morning = datetime(2030, 3, 5, 7, 0, tzinfo=timezone.utc)  # 08:00 in Stockholm
    return_id, rma = register_and_arrive(demo_engine, "SE-1001")
    mid = messages_of(demo_engine, return_id)["sms"].id
    with Session(demo_engine) as s:  # due in the evening, as if the parcel had arrived then
        s.get(OutboxMessage, mid).next_attempt_at = evening
        s.commit()
    with running_sms_provider() as provider:
        assert dispatch_due(demo_engine, now=evening, settings=settings, sms_config=provider.config()).deferred == 1
        assert dispatch_due(demo_engine, now=morning, settings=settings, sms_config=provider.config()).sent == 1
        [accepted] = provider.accepted
    with TestClient(create_app(settings, demo_engine), base_url="http://testserver.local") as hooks:
        report = hooks.post("/webhooks/sms/46elks?secret=elks-report-secret-0123456789",
                            content=urlencode({"id": accepted.message_id, "status": "delivered"}),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert report.status_code == 200 and report.json()["recorded"] is True

    page = staff_client("support").get(f"/staff/deliveries/{mid}")
    assert page.status_code == 200
    assert f"[sv] SMS {rma} har kommit fram" in page.text and "+46701234567" in page.text
    kinds = re.findall(r'<tr id="event-\d+" class="event-(\w+)">', page.text)
    assert kinds == ["queued", "deferred", "sending", "sent", "delivered"]
    assert "Deferred for quiet hours until 5 Mar 2030, 08:00:00" in page.text
    assert f"provider id <code>{accepted.message_id}</code>" in page.text
    assert "Delivery report: delivered" in page.text
    assert 'id="retry-form"' not in page.text  # a sent message offers no retry
    assert f'<a href="/staff/returns/{rma}">{rma}</a>' in page.text


def test_unknown_or_webhook_message_is_404(staff_client, demo_engine):
    with Session(demo_engine) as s:
        hook = enqueue(s, key="webhook:y", channel="webhook", destination="https://erp.example/in",
                       event_type="refund.issued", payload={})
        s.commit()
        hook_id = hook.id
    admin = staff_client("admin")
    assert admin.get("/staff/deliveries/99999").status_code == 404
    assert admin.get(f"/staff/deliveries/{hook_id}").status_code == 404
    token = csrf_of(admin.get("/staff/deliveries").text)
    assert admin.post(f"/staff/deliveries/{hook_id}/retry", data={"_csrf_token": token}).status_code == 404


# --- Retry ---------------------------------------------------------------------------------------------


def test_dead_email_retried_by_support_is_delivered_over_smtp(demo_engine, settings, staff_client):
    add_rule(demo_engine, channels=("email",))
    return_id, rma = register_and_arrive(demo_engine, "SE-1001")
    mid = messages_of(demo_engine, return_id)["email"].id
    support = staff_client("support")
    with running_smtp() as (sink, port):
        smtp = replace(settings, smtp_url=f"smtp://127.0.0.1:{port}")
        sink.rcpt_reply = "550 5.1.1 No such user here"
        assert dispatch_due(demo_engine, now=utcnow(), settings=smtp).dead == 1
        assert sink.received == []

        dead_list = support.get("/staff/deliveries?state=dead")
        assert set(rows(dead_list.text)) == {mid} and "SMTP 550 recipient refused: 5.1.1 No such user here" in dead_list.text
        assert "Dead letters" in support.get("/staff/notifications").text  # linked from the rules page
        detail = support.get(f"/staff/deliveries/{mid}")
        assert 'id="retry-form"' in detail.text and "dead letter" in detail.text
        assert re.findall(r'class="event-(\w+)"', detail.text) == ["queued", "dead"]
        assert "SMTP 550 recipient refused: 5.1.1 No such user here" in \
            re.search(r'class="event-dead">(.*?)</tr>', detail.text, re.S).group(1)

        token = csrf_of(detail.text)
        response = support.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == f"/staff/deliveries/{mid}?done=retried"
        assert f"Message #{mid} is queued again" in support.get(response.headers["location"]).text
        with Session(demo_engine) as s:
            m = s.get(OutboxMessage, mid)
            assert (m.state, m.attempts, m.last_error, m.sent_at) == ("pending", 0, "", None)
            assert m.next_attempt_at <= utcnow()
        retried = [e for e in events_of(demo_engine, mid) if e.kind == "retried"]
        assert len(retried) == 1 and retried[0].detail["by"] == "support-0@shop.example"
        assert retried[0].detail["previous_state"] == "dead" and "550" in retried[0].detail["previous_error"]

        again = support.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": token}, follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].endswith("?done=already")  # double submit
        assert len([e for e in events_of(demo_engine, mid) if e.kind == "retried"]) == 1

        sink.rcpt_reply = None  # the mailbox exists now
        report = dispatch_due(demo_engine, now=utcnow() + timedelta(seconds=1), settings=smtp)
        assert report.sent == 1
    [raw] = sink.received
    assert b"To: anna.svensson@example.se" in raw and f"[sv] Retur {rma}".encode() in raw
    assert sink.envelopes[0][1] == ["anna.svensson@example.se"]
    with Session(demo_engine) as s:
        m = s.get(OutboxMessage, mid)
        assert (m.state, m.attempts) == ("sent", 1)
        [timeline] = s.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id,
                                                      ReturnEvent.type == "notification.retried")).all()
        assert timeline.actor == "support-0@shop.example" and timeline.data["outbox_id"] == mid
        assert timeline.data["before"]["state"] == "dead" and timeline.data["after"]["state"] == "pending"
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "notification.retried")).all()
        assert entry.target == f"outbox:{mid}" and entry.before["state"] == "dead"
    assert [e.kind for e in events_of(demo_engine, mid)] == ["queued", "dead", "retried", "sent"]
    staff_page = support.get(f"/staff/returns/{rma}")
    assert "notification.retried" in staff_page.text
    after = support.get(f"/staff/deliveries/{mid}")
    assert "Retried by support-0@shop.example" in after.text and 'id="retry-form"' not in after.text
    # once sent, a late third submit is refused with a clear message, and nothing changes
    late = support.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": token})
    assert late.status_code == 409 and f"Message #{mid} was sent; only failed or dead messages can be retried" in late.text


def test_failed_message_can_be_retried_now(staff_client, two_returns, demo_engine):
    _, anna = two_returns["anna"]
    mid = anna["sms"].id
    with Session(demo_engine) as s:
        m = s.get(OutboxMessage, mid)
        m.state, m.attempts, m.last_error = "failed", 3, "HTTP 503 from the SMS provider"
        m.next_attempt_at = utcnow() + timedelta(hours=1)
        s.commit()
    admin = staff_client("admin")
    token = csrf_of(admin.get(f"/staff/deliveries/{mid}").text)
    response = admin.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    [claimed] = [c for c in claim_due(demo_engine, utcnow() + timedelta(seconds=1)) if c.id == mid]
    assert claimed.attempts == 1  # due now, with a fresh budget


@pytest.mark.parametrize("state", ["sent", "pending", "sending"])
def test_retry_of_a_message_that_is_not_failed_or_dead_is_409(staff_client, two_returns, demo_engine, state):
    _, freja = two_returns["freja"]
    mid = freja["sms"].id
    set_state(demo_engine, mid, state, 1)
    if state == "sending":
        with Session(demo_engine) as s:
            s.get(OutboxMessage, mid).next_attempt_at = utcnow() + timedelta(seconds=60)  # a worker's lease
            s.commit()
    admin = staff_client("admin")
    token = csrf_of(admin.get(f"/staff/deliveries/{mid}").text)
    response = admin.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": token})
    assert response.status_code == 409
    error = re.search(r'<div class="alert" role="alert" id="retry-error">([^<]+)</div>', response.text)
    assert error and f"Message #{mid}" in error.group(1)
    assert ("being sent right now" if state == "sending" else "only failed or dead messages can be retried") in error.group(1)
    with Session(demo_engine) as s:
        assert s.get(OutboxMessage, mid).state == state
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "notification.retried")).all() == []
    assert [e.kind for e in events_of(demo_engine, mid)] == ["queued"]


def test_retry_without_csrf_is_refused(staff_client, two_returns, demo_engine):
    _, anna = two_returns["anna"]
    mid = anna["email"].id
    admin = staff_client("admin")
    assert admin.post(f"/staff/deliveries/{mid}/retry").status_code == 403
    assert admin.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": "forged"}).status_code == 403
    detail = admin.get(f"/staff/deliveries/{mid}")
    assert len(re.findall(r'name="_csrf_token" value="[^"]+"', detail.text)) == 3  # log-out, language and retry
    with Session(demo_engine) as s:
        assert s.get(OutboxMessage, mid).state == "dead"


# --- Who may --------------------------------------------------------------------------------------------


def test_warehouse_is_refused_and_anonymous_goes_to_log_in(staff_client, client, two_returns):
    _, anna = two_returns["anna"]
    mid = anna["email"].id
    warehouse = staff_client("warehouse")
    assert warehouse.get("/staff/deliveries", follow_redirects=False).status_code == 403
    assert warehouse.get("/staff/deliveries?state=not_sent", follow_redirects=False).status_code == 403
    assert warehouse.get(f"/staff/deliveries/{mid}", follow_redirects=False).status_code == 403
    token = csrf_of(warehouse.get("/staff/").text)
    assert warehouse.post(f"/staff/deliveries/{mid}/retry", data={"_csrf_token": token},
                          follow_redirects=False).status_code == 403
    for path in ("/staff/deliveries", f"/staff/deliveries/{mid}"):
        anon = client.get(path, follow_redirects=False)
        assert anon.status_code == 302 and anon.headers["location"].startswith("/staff/login")
    with Session(client.app.state.engine) as s:
        assert s.get(OutboxMessage, mid).state == "dead"
        assert s.exec(select(Return)).all()  # the scene is there; only access was refused

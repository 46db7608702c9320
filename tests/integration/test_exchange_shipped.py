"""Marking an exchange's replacement shipped, over HTTP: the validated tracking number, once only, the roles,
the `exchange.shipped` rule sending exactly one e-mail in the return's language through a real SMTP server
(aiosmtpd on loopback), and the tracking number on the consumer's status page and the staff timeline."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from email import message_from_bytes, policy as email_policy

import pytest
from sqlmodel import Session, select

from portal.models import Exchange, Order, OrderLine, OutboxMessage, Return, ReturnEvent, ReturnLine
from portal.notify import admin
from portal.outbox.dispatcher import Throttle, dispatch_due
from portal.returns import policy, service
from tests.integration.conftest import csrf_of
from tests.integration.outbox_helpers import running_smtp
from tests.integration.test_refunds_staff import add_endpoint, hidden, inspect, outbox

TRACKING = "JJFI64560000123456"
SHIPPED_TEXTS = {  # (subject, text body) per language; the items loop uses the new list variable
    "da": ("Din erstatning til {{ rma }} er afsendt",
           "Hej {{ first_name }}! Sporingsnummer: {{ exchange_tracking_number }}. "
           "{% for item in exchange_items %}{{ item.quantity }} x {{ item.name }} ({{ item.sku }}){% endfor %}"),
    "sv": ("Din ersättning för {{ rma }} är skickad", "Hej {{ first_name }}! Spårning: {{ exchange_tracking_number }}."),
    "en": ("Your replacement for {{ rma }} is on its way", "Hi {{ first_name }}, tracking {{ exchange_tracking_number }}."),
}


def shipped_rule(engine) -> int:
    """Saved through the rule editor's validation (which refuses undocumented variables), then activated."""
    templates = {lang: {"subject": subject, "body_text": body, "body_html": f"<p>{body}</p>", "sms_text": ""}
                 for lang, (subject, body) in SHIPPED_TEXTS.items()}
    with Session(engine) as s:
        rule = admin.save_rule(s, None, admin.RuleInput(name="Replacement shipped", trigger="exchange.shipped",
                                                        channels=["email"], templates=templates))
        admin.set_active(s, rule, True)
        s.commit()
        return rule.id


def register(engine, number: str, sku: str, language: str, resolution: str = "exchange") -> str:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.sku == sku)).one()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution=resolution,
            language=language, form_nonce=f"exchange-shipped-{number}-{resolution}"), date.today())
        s.commit()
        return ret.rma


def record_exchange(admin_client, engine, rma: str) -> None:
    """The admin decides the replacement on the refund page (the existing exchange form)."""
    page = admin_client.get(f"/staff/returns/{rma}/refund").text
    with Session(engine) as s:
        line_id = s.exec(select(ReturnLine.id).join(Return).where(Return.rma == rma)).one()
    response = admin_client.post(f"/staff/returns/{rma}/exchange", data={
        "_csrf_token": csrf_of(page), "version": hidden(page, "version"), "return_line_id": str(line_id),
        "replacement_sku": "TS-101", "replacement_name": "Organic cotton T-shirt, L", "quantity": "1",
        "unit_price": "249.00"}, follow_redirects=False)
    assert response.status_code == 302, response.text


def ship_form(page: str, tracking: str, version: int | None = None) -> dict:
    """The ship form's fields; `version` for a post without the form on the page (forged, or a role without it)."""
    return {"_csrf_token": csrf_of(page), "version": hidden(page, "version") if version is None else str(version),
            "tracking_number": tracking}


def version_of(engine, rma: str) -> int:
    with Session(engine) as s:
        return s.exec(select(Return.version).where(Return.rma == rma)).one()


def state(engine, rma: str) -> tuple[list[tuple[str, str | None]], list[ReturnEvent], list[OutboxMessage]]:
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        exchanges = [(e.state, e.external_ref) for e in s.exec(select(Exchange).where(Exchange.return_id == ret.id))]
        events = list(s.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id,
                                                       ReturnEvent.type == "exchange.shipped")))
        messages = list(s.exec(select(OutboxMessage).where(OutboxMessage.return_id == ret.id,
                                                           OutboxMessage.event_type == "notify.exchange.shipped")))
        return exchanges, events, messages


def status_link(engine, rma: str) -> str:
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rma)).one()
        return f"/r/{ret.rma}/{ret.status_token}"


@pytest.fixture
def shipped_return(demo_engine, staff_client):
    """A Danish exchange return, inspected, with its replacement recorded; the rule for exchange.shipped active."""
    rule_id = shipped_rule(demo_engine)
    rma = register(demo_engine, "DK-3001", "TS-100", "da")
    inspect(demo_engine, rma, {"TS-100": 1})
    record_exchange(staff_client("admin"), demo_engine, rma)
    return rma, rule_id


def test_warehouse_marks_the_replacement_shipped_once_and_the_customer_hears_once(
        shipped_return, demo_engine, staff_client, client, settings):
    rma, rule_id = shipped_return
    endpoint_id = add_endpoint(demo_engine, ["exchange.shipped"])
    warehouse = staff_client("warehouse")
    page = warehouse.get(f"/staff/returns/{rma}").text
    assert 'action="/staff/returns/%s/exchange-shipped"' % rma in page and "Mark exchange shipped" in page

    # Bad tracking numbers: the specific message next to the field, the typed value kept, nothing written.
    for typed, message in (("", "Enter the carrier"), ("AB12", "this one has 4"), ("X" * 41, "this one has 41"),
                           ("JJFI-6456-0000", "remove “-”"), ("ÅÄÖ123456", "remove")):
        refused = warehouse.post(f"/staff/returns/{rma}/exchange-shipped", data=ship_form(page, typed))
        assert refused.status_code == 400, (typed, refused.status_code)
        error = re.search(r'<p class="error" id="exchange-tracking-error">([^<]*)</p>', refused.text)
        assert error and message in error.group(1), (typed, error)
        assert 'aria-invalid="true"' in refused.text
        if typed:
            assert f'value="{typed}"' in refused.text
    assert state(demo_engine, rma) == ([("requested", None)], [], [])

    # Typed with spaces and lower case: stored as the carrier prints it.
    done = warehouse.post(f"/staff/returns/{rma}/exchange-shipped",
                          data=ship_form(page, "jjfi 6456 0000 123456"), follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/staff/returns/{rma}?done=shipped"
    exchanges, [event], [message] = state(demo_engine, rma)
    assert exchanges == [("shipped", TRACKING)]
    assert event.data["tracking_number"] == TRACKING and event.actor == "warehouse-1@shop.example"
    assert event.data["items"] == [{"name": "Organic cotton T-shirt, L", "sku": "TS-101", "quantity": 1}]
    assert (event.data["before"], event.data["after"]) == ({"state": "requested"},
                                                           {"state": "shipped", "tracking_number": TRACKING})
    assert message.idempotency_key == f"notify:{event.return_id}:{rule_id}:email:0"

    # The same form again (a double click) and a fresh one: 409 with the reason, nothing recorded twice.
    again = warehouse.post(f"/staff/returns/{rma}/exchange-shipped", data=ship_form(page, TRACKING))
    assert again.status_code == 409 and "already marked shipped" in again.text and TRACKING in again.text
    fresh = warehouse.get(f"/staff/returns/{rma}").text
    assert "Mark exchange shipped" not in fresh  # nothing left to ship: no form
    later = warehouse.post(f"/staff/returns/{rma}/exchange-shipped", data=ship_form(fresh, "OTHER123456", version_of(demo_engine, rma)))
    assert later.status_code == 409 and "already marked shipped" in later.text
    assert len(state(demo_engine, rma)[1]) == 1 and len(state(demo_engine, rma)[2]) == 1
    [hook] = outbox(demo_engine, "exchange.shipped")  # the shop's webhook, once
    assert (hook.channel, hook.endpoint_id, hook.payload["type"]) == ("webhook", endpoint_id, "exchange.shipped")
    assert hook.payload["data"] == {"rma": rma, "order_number": "DK-3001", "tracking_number": TRACKING,
                                    "exchange_ids": event.data["exchange_ids"], "items": event.data["items"]}

    # The staff page: the timeline entry and the exchange's tracking number.
    assert 'data-type="exchange.shipped"' in fresh and f"tracking {TRACKING}" in fresh
    assert "The replacement is marked as shipped" in warehouse.get(f"/staff/returns/{rma}?done=shipped").text

    # The real dispatcher sends exactly one e-mail, in Danish, with the variables filled.
    with running_smtp() as (sink, port):
        report = dispatch_due(demo_engine, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"),
                              throttle=Throttle({}))
        assert report.sent == 1
        assert dispatch_due(demo_engine, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"),
                            throttle=Throttle({})).claimed == 0
        [raw] = sink.received
    mail = message_from_bytes(raw, policy=email_policy.default)
    with Session(demo_engine) as s:
        order = s.exec(select(Order).where(Order.number == "DK-3001")).one()
    assert mail["To"] == order.email and mail["Subject"] == f"Din erstatning til {rma} er afsendt"
    text = mail.get_body(("plain",)).get_content()
    assert f"Sporingsnummer: {TRACKING}." in text and "1 x Organic cotton T-shirt, L (TS-101)" in text

    # The consumer's status page, in the return's language and in English.
    link = status_link(demo_engine, rma)
    danish = client.get(link)
    assert danish.status_code == 200
    assert "Din erstatningsvare er på vej" in danish.text and f"Sporingsnummer: {TRACKING}" in danish.text
    assert "Din ombyttede vare er på vej." in danish.text  # the timeline line
    english = client.get(link + "?lang=en").text
    assert "Your replacement is on its way" in english and f"Tracking number: {TRACKING}" in english


@pytest.mark.parametrize("language, heading, tracking", [
    ("sv", "Din ersättningsvara är på väg", "Spårningsnummer"),
    ("nb", "Erstatningsvaren din er på vei", "Sporingsnummer"),
    ("fi", "Korvaava tuotteesi on matkalla", "Seurantanumero"),
])
def test_status_page_shows_the_shipment_in_each_language(language, heading, tracking, demo_engine, staff_client,
                                                         client):
    rma = register(demo_engine, "DK-3001", "TS-100", language)
    inspect(demo_engine, rma, {"TS-100": 1})
    admin_client = staff_client("admin")
    record_exchange(admin_client, demo_engine, rma)
    page = admin_client.get(f"/staff/returns/{rma}").text
    assert admin_client.post(f"/staff/returns/{rma}/exchange-shipped", data=ship_form(page, "00370712345678901234"),
                             follow_redirects=False).status_code == 303  # admins may too
    text = client.get(status_link(demo_engine, rma)).text
    assert heading in text and f"{tracking}: 00370712345678901234" in text


def test_only_warehouse_and_admin_may_ship_and_only_a_decided_exchange(demo_engine, staff_client):
    support = staff_client("support")
    warehouse = staff_client("warehouse")
    admin_client = staff_client("admin")
    exchange_rma = register(demo_engine, "DK-3001", "TS-100", "da")
    refund_rma = register(demo_engine, "SE-1001", "TS-100", "sv", resolution="refund")
    inspect(demo_engine, exchange_rma, {"TS-100": 1})

    # No replacement decided yet: no form; a forged post gets 409 and the reason.
    page = warehouse.get(f"/staff/returns/{exchange_rma}").text
    assert "Mark exchange shipped" not in page
    early = warehouse.post(f"/staff/returns/{exchange_rma}/exchange-shipped",
                           data=ship_form(page, TRACKING, version_of(demo_engine, exchange_rma)))
    assert early.status_code == 409 and "No replacement is recorded" in early.text
    # A refund return has nothing to ship.
    page = warehouse.get(f"/staff/returns/{refund_rma}").text
    not_exchange = warehouse.post(f"/staff/returns/{refund_rma}/exchange-shipped",
                                  data=ship_form(page, TRACKING, version_of(demo_engine, refund_rma)))
    assert not_exchange.status_code == 409 and "is not an exchange" in not_exchange.text

    # A form rendered before someone else changed the return is stale.
    record_exchange(admin_client, demo_engine, exchange_rma)
    stale_page = warehouse.get(f"/staff/returns/{exchange_rma}").text
    with Session(demo_engine) as s:  # a colleague's change in between bumps the version
        ret = s.exec(select(Return).where(Return.rma == exchange_rma)).one()
        ret.version += 1
        s.add(ret)
        s.commit()
    stale = warehouse.post(f"/staff/returns/{exchange_rma}/exchange-shipped", data=ship_form(stale_page, TRACKING))
    assert stale.status_code == 409 and "Reload" in stale.text
    assert f'value="{TRACKING}"' in stale.text  # the typed number is still there
    assert state(demo_engine, exchange_rma)[0] == [("requested", None)]

    # Support sees the return but no form, and the action is refused.
    page = support.get(f"/staff/returns/{exchange_rma}").text
    assert 'id="exchanges"' in page and "Mark exchange shipped" not in page
    assert support.post(f"/staff/returns/{exchange_rma}/exchange-shipped",
                        data=ship_form(page, TRACKING, version_of(demo_engine, exchange_rma))).status_code == 403
    assert state(demo_engine, exchange_rma)[0] == [("requested", None)]

    fresh = warehouse.get(f"/staff/returns/{exchange_rma}").text
    assert warehouse.post(f"/staff/returns/{exchange_rma}/exchange-shipped", data=ship_form(fresh, TRACKING),
                          follow_redirects=False).status_code == 303
    exchanges, [event], messages = state(demo_engine, exchange_rma)
    assert exchanges == [("shipped", TRACKING)] and messages == []  # no active rule here: the event, no message

"""A rule's own sender reaches the wire: the e-mail From name (the address stays the merchant's) at a real SMTP
server (aiosmtpd), and the SMS sender ID in the `from` field of a real HTTP server playing 46elks and Twilio;
rules without one use the configured defaults."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from email import message_from_bytes, policy

import pytest
from sqlmodel import Session, select

from portal.models import NotificationRule, NotificationTemplate, Order, OrderLine, OutboxMessage, Return
from portal.notify import admin
from portal.outbox.dispatcher import dispatch_due
from portal.returns import policy as return_policy, service
from tests.integration.outbox_helpers import running_smtp
from tests.integration.sms_helpers import running_sms_provider

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)  # 10:00 in Stockholm: outside the SMS quiet hours
MERCHANT_ADDRESS = "kundservice@nordicoutdoor.example"  # the demo merchant's support address


def _rule(engine, name: str, channels: list[str], conditions: dict) -> int:
    with Session(engine) as s:
        rule = NotificationRule(name=name, trigger="parcel.arrived", channels=channels, active=True,
                                conditions=conditions)
        s.add(rule)
        s.flush()
        s.add(NotificationTemplate(rule_id=rule.id, language="sv", subject=f"{name} {{{{ rma }}}}",
                                   body_text=f"{name}: hej {{{{ first_name }}}}", sms_text=f"{name} {{{{ rma }}}}"))
        s.commit()
        return rule.id


def _arrive(engine, number: str = "SE-1001") -> int:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)
                      .order_by(OrderLine.line_no)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[return_policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=f"sender-{number}-0123456789"), date.today())
        service.advance(s, ret, "arrived", "warehouse", "parcel.arrived")
        s.commit()
        return ret.id


def test_rule_sender_name_is_the_from_name_and_the_address_stays_the_merchants(demo_engine, settings):
    _rule(demo_engine, "Egen", ["email"], {"sender_name": "Åsa på Nordic Outdoor, kundtjänst"})
    _rule(demo_engine, "Standard", ["email"], {})
    _arrive(demo_engine)
    with running_smtp() as (sink, port):
        report = dispatch_due(demo_engine, now=T0, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    assert report.sent == 2
    mails = {}
    for raw, (mail_from, _) in zip(sink.received, sink.envelopes):
        msg = message_from_bytes(raw, policy=policy.default)
        mails[msg["Subject"].split(" ")[0]] = (msg["From"].addresses[0], mail_from, raw)
    own, own_envelope, own_raw = mails["Egen"]
    default, default_envelope, _ = mails["Standard"]
    assert (own.display_name, own.addr_spec) == ("Åsa på Nordic Outdoor, kundtjänst", MERCHANT_ADDRESS)
    assert b"=?utf-8?b?" in own_raw.split(b"\r\n\r\n", 1)[0]  # encoded, not raw 8-bit, in the header
    assert (default.display_name, default.addr_spec) == ("Nordic Outdoor AB", MERCHANT_ADDRESS)
    assert own_envelope == default_envelope == MERCHANT_ADDRESS


@pytest.mark.parametrize("provider, field", [("46elks", "from"), ("twilio", "From")])
def test_rule_sms_sender_id_is_the_providers_from(demo_engine, settings, provider, field, monkeypatch):
    monkeypatch.setenv("NOTIFY_QUIET_HOURS", "00:00-00:00")
    _rule(demo_engine, "Egen", ["sms"], {"sms_sender_id": "NordicOut"})
    _rule(demo_engine, "Standard", ["sms"], {})
    _arrive(demo_engine)
    with running_sms_provider() as sms:
        report = dispatch_due(demo_engine, now=T0, settings=settings, sms_config=sms.config(provider, "Butiken"))
        assert report.sent == 2
        senders = {r.form["message" if provider == "46elks" else "Body"].split(" ")[0]: r.form[field]
                   for r in sms.accepted}
    assert senders == {"Egen": "NordicOut", "Standard": "Butiken"}


def test_a_bad_sender_id_in_a_payload_is_a_clear_permanent_failure(demo_engine, settings, monkeypatch):
    monkeypatch.setenv("NOTIFY_QUIET_HOURS", "00:00-00:00")
    _rule(demo_engine, "Egen", ["sms"], {"sms_sender_id": "1-bad id!"})  # the admin form refuses this; old rows
    _arrive(demo_engine)
    with running_sms_provider() as sms:
        report = dispatch_due(demo_engine, now=T0, settings=settings, sms_config=sms.config("46elks", "Butiken"))
        assert report.dead == 1 and sms.requests == []
    with Session(demo_engine) as s:
        row = s.exec(select(OutboxMessage).where(OutboxMessage.channel == "sms")).one()
    assert "not a valid SMS sender ID" in row.last_error


def test_test_send_uses_the_rules_sender_too(demo_engine, settings):
    rule_id = _rule(demo_engine, "Egen", ["email", "sms"], {"sender_name": "Kundtjänst", "sms_sender_id": "NordicOut"})
    return_id = _arrive(demo_engine, "SE-1002")
    with Session(demo_engine) as s:
        rule, ret = s.get(NotificationRule, rule_id), s.get(Return, return_id)
        mail_id = admin.test_send(s, rule, ret, "sv", "email", "staff@shop.example", settings)
        sms_id = admin.test_send(s, rule, ret, "sv", "sms", "+46701112233", settings)
        s.commit()
        mail, text = s.get(OutboxMessage, mail_id), s.get(OutboxMessage, sms_id)
        assert mail.payload["sender_name"] == "Kundtjänst" and "marketing" not in mail.payload
        assert text.payload["sender"] == "NordicOut"

"""Notification rules fire inside the event's transaction and leave exactly the expected outbox rows."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session, select

from portal.models import (
    Consent, Customer, DeliveryEvent, NotificationRule, NotificationTemplate, Order, OrderLine, OutboxMessage,
    Refund, Return, ReturnEvent, utcnow,
)
from portal.notify.hooks import on_return_event
from portal.notify.rules import FireResult
from portal.notify.starter import install_starter_rules
from portal.notify.sweep import sweep
from portal.returns import policy, service


def _register(engine, number: str, nonce: str, language: str | None = None) -> int:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        customer = s.get(Customer, order.customer_id)
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)
                      .order_by(OrderLine.line_no)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language=language or customer.language, form_nonce=nonce), date.today())
        s.commit()
        return ret.id


def _rule(engine, *, trigger="parcel.arrived", channels=("email", "sms"), languages=("nb", "sv", "en"),
          active=True, **fields) -> int:
    with Session(engine) as s:
        rule = NotificationRule(name=f"rule {trigger}", trigger=trigger, channels=list(channels), active=active, **fields)
        s.add(rule)
        s.flush()
        for lang in languages:
            s.add(NotificationTemplate(
                rule_id=rule.id, language=lang, subject=f"[{lang}] Retur {{{{ rma }}}}",
                body_text=f"[{lang}] Hei {{{{ first_name }}}} {{{{ refund_amount }}}} {{{{ status_link }}}}",
                body_html=f"<p>[{lang}] {{{{ first_name }}}}</p>", sms_text=f"[{lang}] SMS {{{{ rma }}}}"))
        s.commit()
        return rule.id


def _arrive(engine, return_id: int):
    with Session(engine) as s:
        ret = s.get(Return, return_id)
        s.info["notify_results"] = []
        service.advance(s, ret, "arrived", "warehouse", "parcel.arrived")  # record_event fires the rules
        results = s.info["notify_results"]
        s.commit()
        return FireResult(sum(r.queued for r in results), sum(r.suppressed for r in results),
                          sum(r.invalid for r in results), sum(r.failed for r in results))


def _outbox(engine, return_id: int) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.return_id == return_id,
                                                       OutboxMessage.channel.in_(("email", "sms")))
                           .order_by(OutboxMessage.channel)))


def _events(engine, return_id: int, prefix="notification.") -> list[ReturnEvent]:
    with Session(engine) as s:
        return [e for e in service.events_of(s, return_id) if e.type.startswith(prefix)]


def _deliveries(engine, return_id: int, kind: str) -> list[DeliveryEvent]:
    with Session(engine) as s:
        return list(s.exec(select(DeliveryEvent).where(DeliveryEvent.return_id == return_id, DeliveryEvent.kind == kind)))


def test_rule_fires_once_in_the_returns_language(demo_engine):
    rule_id = _rule(demo_engine)
    _rule(demo_engine, active=False)  # inactive: never fires
    _rule(demo_engine, conditions={"country": ["SE"]})  # another country: does not apply
    return_id = _register(demo_engine, "NO-2001", "notify-nb-0001")
    assert _outbox(demo_engine, return_id) == []  # registration has no rule

    result = _arrive(demo_engine, return_id)
    assert result.queued == 2
    email, sms = _outbox(demo_engine, return_id)
    with Session(demo_engine) as s:
        ret = s.get(Return, return_id)
        rma, token = ret.rma, ret.status_token
    assert (email.channel, email.destination) == ("email", "ola.nordmann@example.no")
    assert email.idempotency_key == f"notify:{return_id}:{rule_id}:email:0"
    assert email.payload["subject"] == f"[nb] Retur {rma}"
    assert email.payload["text"].startswith("[nb] Hei Ola ") and f"/r/{rma}/{token}" in email.payload["text"]
    assert "kr" in email.payload["text"]  # refund amount formatted in Norwegian kroner
    # The body, once, inside the brand's frame (tests/integration/test_brand_settings.py checks the frame).
    assert email.payload["html"].count("<p>[nb] Ola</p>") == 1 and email.payload["html"].startswith("<!doctype html>")
    assert (sms.channel, sms.destination, sms.payload) == ("sms", "+4791234567", {"text": f"[nb] SMS {rma}"})
    queued = _events(demo_engine, return_id)
    assert [e.type for e in queued] == ["notification.queued", "notification.queued"]
    assert len(_deliveries(demo_engine, return_id, "queued")) == 2

    # The same event again (a second scan) queues nothing more.
    with Session(demo_engine) as s:
        ret = s.get(Return, return_id)
        assert on_return_event(s, ret, "parcel.arrived").queued == 0
        s.commit()
    assert len(_outbox(demo_engine, return_id)) == 2


def test_language_falls_back_to_merchant_default(demo_engine):
    _rule(demo_engine, channels=("email",), languages=("sv", "en"))
    return_id = _register(demo_engine, "DK-3001", "notify-da-0001")  # Danish: no Danish template
    _arrive(demo_engine, return_id)
    (email,) = _outbox(demo_engine, return_id)
    assert email.payload["subject"].startswith("[sv] ")  # DEFAULT_LANGUAGE sv before en


def test_marketing_without_consent_is_suppressed_and_on_the_timeline(demo_engine, staff_client):
    _rule(demo_engine, marketing=True)
    return_id = _register(demo_engine, "SE-1001", "notify-mkt-0001")
    result = _arrive(demo_engine, return_id)
    assert result.queued == 0 and result.suppressed == 2
    assert _outbox(demo_engine, return_id) == []
    suppressed = _events(demo_engine, return_id, "notification.suppressed")
    assert {e.data["channel"] for e in suppressed} == {"email", "sms"}
    assert all(e.data["reason"] == "no marketing consent" for e in suppressed)
    assert len(_deliveries(demo_engine, return_id, "suppressed")) == 2

    with Session(demo_engine) as s:
        rma = s.get(Return, return_id).rma
    page = staff_client("support").get(f"/staff/returns/{rma}")
    assert page.status_code == 200 and 'data-type="notification.suppressed"' in page.text
    assert "no marketing consent" in page.text
    consumer = _events(demo_engine, return_id)
    from portal.returns.status import CONSUMER_EVENTS
    assert not any(e.type in CONSUMER_EVENTS for e in consumer)

    # Consent for e-mail given: the e-mail goes, the SMS stays suppressed (and is not recorded twice).
    with Session(demo_engine) as s:
        ret = s.get(Return, return_id)
        order = s.get(Order, ret.order_id)
        s.add(Consent(customer_id=order.customer_id, channel="email", purpose="marketing", granted=True, source="test"))
        s.flush()
        result = on_return_event(s, ret, "parcel.arrived")
        s.commit()
    assert (result.queued, result.suppressed) == (1, 0)
    assert [m.channel for m in _outbox(demo_engine, return_id)] == ["email"]
    assert len(_deliveries(demo_engine, return_id, "suppressed")) == 2


def test_invalid_phone_number_is_reported_not_sent(demo_engine):
    _rule(demo_engine)
    return_id = _register(demo_engine, "FI-4001", "notify-phone-0001")
    with Session(demo_engine) as s:
        order = s.get(Order, s.get(Return, return_id).order_id)
        s.get(Customer, order.customer_id).phone = "12345"
        s.commit()
    result = _arrive(demo_engine, return_id)
    assert (result.queued, result.invalid) == (1, 1)
    assert [m.channel for m in _outbox(demo_engine, return_id)] == ["email"]
    (invalid,) = _deliveries(demo_engine, return_id, "invalid_recipient")
    assert invalid.detail["channel"] == "sms" and invalid.outbox_id is None
    assert [e.type for e in _events(demo_engine, return_id, "notification.invalid")] == ["notification.invalid_recipient"]


def test_date_window_limits_the_rule(demo_engine):
    today = date.today()
    _rule(demo_engine, starts_on=today + timedelta(days=2), ends_on=today + timedelta(days=9))
    return_id = _register(demo_engine, "SE-1004", "notify-window-0001")
    assert _arrive(demo_engine, return_id).queued == 0
    assert _outbox(demo_engine, return_id) == []


def test_sweep_label_unused_queues_once(demo_engine, settings):
    rule_id = _rule(demo_engine, trigger="time.label_unused", offset_days=7, channels=("email",))
    return_id = _register(demo_engine, "SE-1001", "notify-sweep-0001")
    with Session(demo_engine) as s:
        created = s.get(Return, return_id).created_at
    assert sweep(demo_engine, created + timedelta(days=3), settings) == 0 or not _outbox(demo_engine, return_id)
    assert _outbox(demo_engine, return_id) == []
    first = sweep(demo_engine, created + timedelta(days=7, minutes=1), settings)
    second = sweep(demo_engine, created + timedelta(days=8), settings)
    assert first >= 1 and second == 0
    (email,) = _outbox(demo_engine, return_id)
    assert email.idempotency_key == f"notify:{return_id}:{rule_id}:email:7"
    assert email.payload["subject"].startswith("[sv] ")


def test_sweep_refund_overdue_goes_to_staff(demo_engine, settings):
    _rule(demo_engine, trigger="time.refund_overdue", audience="internal", channels=("email", "sms"),
          internal_recipients=["refunds@shop.example", "+46 70 111 22 33"], offset_days=1)
    return_id = _register(demo_engine, "NO-2001", "notify-overdue-0001")
    today = date.today()
    with Session(demo_engine) as s:
        s.add(Refund(return_id=return_id, amount_minor=1000, currency="NOK", state="due", due_date=today - timedelta(days=5)))
        s.commit()
    now = utcnow()
    assert sweep(demo_engine, now, settings) >= 2
    assert sweep(demo_engine, now + timedelta(hours=1), settings) == 0
    email, sms = _outbox(demo_engine, return_id)
    assert email.destination == "refunds@shop.example" and sms.destination == "+46701112233"
    assert email.payload["subject"].startswith("[sv] ")  # staff get the merchant language, not the return's nb


def test_starter_rules_are_installed_once_and_inactive(demo_engine):
    with Session(demo_engine) as s:
        first = install_starter_rules(s)
        s.commit()
        second = install_starter_rules(s)
        s.commit()
        rules = list(s.exec(select(NotificationRule)))
        templates = list(s.exec(select(NotificationTemplate)))
    assert (first, second) == (5, 0)
    assert len(rules) == 5 and not any(r.active for r in rules)
    assert len(templates) == 25 and {t.language for t in templates} == {"sv", "nb", "da", "fi", "en"}


def test_activated_starter_rule_sends_real_text(demo_engine):
    with Session(demo_engine) as s:
        install_starter_rules(s)
        rule = s.exec(select(NotificationRule).where(NotificationRule.name == "Return received")).one()
        rule.active = True
        s.commit()
    return_id = _register(demo_engine, "FI-4001", "notify-starter-0001")
    _arrive(demo_engine, return_id)
    email, sms = _outbox(demo_engine, return_id)
    assert email.payload["subject"].startswith("Palautuksesi ") and "Hei Aino!" in email.payload["text"]
    assert "€" in email.payload["text"] and "<p>Hei Aino!" in email.payload["html"]
    assert sms.payload["text"].startswith("Hei Aino! Palautuksesi ") and sms.destination == "+358401234567"

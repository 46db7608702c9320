"""The internal refund reminders (time.refund_due / time.refund_overdue) for returns that are back but have no
refund yet: the legal due date runs from the arrival, so staff are reminded once before and once after it, on a
clock the test controls, and a refund created later does not repeat the reminder. Real SMTP server (aiosmtpd)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from email import message_from_bytes, policy as email_policy
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlmodel import Session, select

from portal.i18n import babel_locale, money
from portal.models import Order, OutboxMessage, Refund, Return
from portal.notify import admin
from portal.notify.sweep import sweep
from portal.outbox.dispatcher import Throttle, dispatch_due
from portal.returns.refund_estimate import estimate_refund
from tests.integration import test_receiving as warehouse_http
from tests.integration.outbox_helpers import running_smtp
from tests.integration.test_exchange_shipped import register
from tests.integration.test_refunds_staff import inspect, issue

STOCKHOLM = ZoneInfo("Europe/Stockholm")
TODAY = datetime.now(STOCKHOLM).date()  # the returns are registered and arrive today, for real
DESK = "refunds@shop.example"
TEXTS = {  # internal rules are written in the merchant's language (DEFAULT_LANGUAGE sv); English as a fallback
    "time.refund_due": {
        "sv": ("Återbetalning snart: {{ rma }}", "Retur {{ rma }} ska återbetalas senast {{ refund_expected_date }} "
                                                  "({{ days }} dagar kvar): {{ refund_amount }}."),
        "en": ("Refund due soon: {{ rma }}", "Return {{ rma }} must be refunded by {{ refund_expected_date }}."),
    },
    "time.refund_overdue": {
        "sv": ("Återbetalning försenad: {{ rma }}", "Retur {{ rma }} skulle ha återbetalats senast "
                                                     "{{ refund_expected_date }}: {{ refund_amount }}."),
        "en": ("Refund overdue: {{ rma }}", "Return {{ rma }} had to be refunded by {{ refund_expected_date }}."),
    },
}


def clock(days: int, hour: int) -> datetime:
    return datetime.combine(TODAY + timedelta(days=days), time(hour), tzinfo=STOCKHOLM).astimezone(timezone.utc)


def reminder_rules(engine) -> dict[str, int]:
    ids = {}
    with Session(engine) as s:
        for trigger, offset in (("time.refund_due", "2"), ("time.refund_overdue", "1")):
            templates = {lang: {"subject": subject, "body_text": body, "body_html": f"<p>{body}</p>", "sms_text": ""}
                         for lang, (subject, body) in TEXTS[trigger].items()}
            rule = admin.save_rule(s, None, admin.RuleInput(
                name=trigger, trigger=trigger, channels=["email"], audience="internal", internal_recipients=DESK,
                offset_days=offset, templates=templates))
            admin.set_active(s, rule, True)
            ids[trigger] = rule.id
        s.commit()
    return ids


def reminders(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.event_type.like("notify.time.refund_%"))
                           .order_by(OutboxMessage.id)))


def return_id(engine, rma: str) -> int:
    with Session(engine) as s:
        return s.exec(select(Return.id).where(Return.rma == rma)).one()


def test_returns_back_without_a_refund_remind_staff_once_before_and_once_after_the_due_date(
        demo_engine, staff_client, settings):
    engine = demo_engine
    rules = reminder_rules(engine)
    warehouse = staff_client("warehouse")
    arrived = register(engine, "SE-1001", "TS-100", "sv", resolution="refund")  # scanned in, not inspected
    warehouse_http.arrive(warehouse, arrived)
    accepted = register(engine, "FI-4001", "JK-500", "fi", resolution="refund")  # inspected, accepted
    inspect(engine, accepted, {"JK-500": 1})
    rejected = register(engine, "SE-1004", "SK-400", "en", resolution="refund")  # nothing accepted: nothing owed
    inspect(engine, rejected, {}, rejected=("SK-400",))
    exchange = register(engine, "DK-3001", "TS-100", "da")  # an exchange: no 14-day refund duty
    warehouse_http.arrive(warehouse, exchange)
    with Session(engine) as s:
        statuses = dict(s.exec(select(Return.rma, Return.status)).all())
        assert s.exec(select(Refund)).all() == []
    assert [statuses[r] for r in (arrived, accepted, rejected, exchange)] == ["arrived", "inspected", "inspected",
                                                                              "arrived"]
    due = TODAY + timedelta(days=14)  # registered today, back today: 14 days after the withdrawal

    assert sweep(engine, clock(11, 10), settings) == 0  # three days before: too early for "due in 2 days"
    assert sweep(engine, clock(12, 10), settings) == 2
    assert sweep(engine, clock(12, 16), settings) == 0 and sweep(engine, clock(14, 9), settings) == 0
    rows = reminders(engine)
    assert sorted(r.return_id for r in rows) == sorted([return_id(engine, arrived), return_id(engine, accepted)])
    assert {r.idempotency_key.split(":")[2] for r in rows} == {str(rules["time.refund_due"])}

    # The refund of one of them is created now: its reminder was sent already and is not sent again.
    assert issue(staff_client("admin"), accepted).status_code == 302
    with Session(engine) as s:
        assert s.exec(select(Refund.due_date)).one() == due
    assert sweep(engine, clock(13, 10), settings) == 0

    assert sweep(engine, clock(15, 10), settings) == 0  # one day late: the rule waits for more than 1
    assert sweep(engine, clock(16, 10), settings) == 2  # one without a refund, one with an unpaid refund
    for later in (clock(16, 11), clock(20, 10), clock(40, 10)):
        assert sweep(engine, later, settings) == 0

    with running_smtp() as (sink, port):
        send = replace(settings, smtp_url=f"smtp://127.0.0.1:{port}")
        assert dispatch_due(engine, settings=send, throttle=Throttle({})).sent == 4
        assert dispatch_due(engine, settings=send, throttle=Throttle({})).claimed == 0
        mails = [message_from_bytes(raw, policy=email_policy.default) for raw in sink.received]
    assert len(mails) == 4 and {m["To"] for m in mails} == {DESK}
    subjects = sorted(m["Subject"] for m in mails)
    assert subjects == sorted([f"Återbetalning snart: {arrived}", f"Återbetalning snart: {accepted}",
                               f"Återbetalning försenad: {arrived}", f"Återbetalning försenad: {accepted}"])
    swedish_due = format_date(due, format="long", locale=babel_locale("sv"))
    for mail in mails:
        text = mail.get_body(("plain",)).get_content()
        assert swedish_due in text, text  # the legal due date, written the merchant's way
        if "snart" in mail["Subject"]:
            assert "(2 dagar kvar)" in text
    anna = next(m for m in mails if m["Subject"] == f"Återbetalning snart: {arrived}")
    with Session(engine) as s:  # no refund yet: the amount is the expected refund the staff page shows
        ret = s.exec(select(Return).where(Return.rma == arrived)).one()
        expected = estimate_refund(s, ret, s.get(Order, ret.order_id), settings.timezone).breakdown.total_minor
    assert expected > 0 and f"{money(expected, 'SEK', 'sv')}." in anna.get_body(("plain",)).get_content()

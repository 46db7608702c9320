"""One return's whole life, walked through the real endpoints, with the notification rules active and the real
dispatcher sending to a real SMTP server (aiosmtpd) and a real HTTP server playing 46elks, both on loopback.

The consumer registers over HTTP, the carrier reports scans on its signed webhook, the warehouse scans the parcel
and inspects it, an admin issues the refund, the refund sweep reminds staff while it is unpaid, and the shop's signed
callback marks it paid. The dispatcher and the sweep run on a clock the test controls (days ahead, inside and
outside the SMS quiet hours). What must come out: exactly the expected messages, in order, each once, in the
return's language (Swedish for a Swedish return, Norwegian for a Norwegian one; staff alerts in the merchant's),
with the variables filled, and every decision (queued, sent, deferred, suppressed) on the return's timeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from sqlmodel import Session, select

from portal.i18n import babel_locale
from portal.models import DeliveryEvent, NotificationRule, OutboxMessage, Refund, Return, ReturnEvent, ReturnLine
from portal.notify import admin
from portal.notify.starter import STARTER_RULES, install_starter_rules
from portal.notify.sweep import sweep
from portal.outbox.dispatcher import DispatchReport, Throttle, dispatch_due
from tests.integration import test_carriers as carrier_http
from tests.integration import test_consumer_flow as consumer_http
from tests.integration import test_receiving as warehouse_http
from tests.integration import test_refunds_staff as refund_http
from tests.integration.outbox_helpers import running_smtp
from tests.integration.sms_helpers import running_sms_provider

STOCKHOLM = ZoneInfo("Europe/Stockholm")
TODAY = datetime.now(STOCKHOLM).date()  # the day the return is registered (the events happen now, for real)
STAFF_EMAIL = "kundservice@nordicoutdoor.example"  # the demo merchant's support address: starter staff alerts go here
REFUNDS_DESK = ("refunds@shop.example", "+46 70 111 22 33")  # the overdue alert's staff recipients
REFUNDS_DESK_PHONE = "+46701112233"
MESSAGE_ID_RE = re.compile(r"<outbox-(\d+)@testserver\.local>")


def clock(days: int, hour: int, minute: int = 0) -> datetime:
    """`days` after today at hh:mm in Stockholm, as UTC: the dispatcher's and the sweep's 'now'."""
    return datetime.combine(TODAY + timedelta(days=days), time(hour, minute), tzinfo=STOCKHOLM).astimezone(timezone.utc)


@dataclass(frozen=True)
class Walk:
    language: str
    order: str
    email: str
    phone: str
    first_name: str
    sku: str
    tracking: str
    scans: tuple[str, ...]  # the carrier's codes before the parcel reaches the warehouse
    status: str  # the return's status after those scans
    refund: str  # the refund as the customer's language writes it
    refund_for_staff: str  # the same amount as the merchant's language (Swedish) writes it
    greeting: str  # how the starter texts greet the customer
    other_greeting: str  # the other language's greeting, which must not appear


WALKS = {
    "sv": Walk("sv", "SE-1001", "anna.svensson@example.se", "+46701234567", "Anna", "TS-100", "PN000000001SE",
               ("AA",), "dropped_off", "299,00\xa0kr", "299,00\xa0kr", "Hej Anna!", "Hei "),
    "nb": Walk("nb", "NO-2001", "ola.nordmann@example.no", "+4791234567", "Ola", "HD-200", "PN000000002NO",
               ("AA", "NO_CONSOL"), "at_consolidation", "1\xa0399,00\xa0kr", "1\xa0399,00\xa0Nkr", "Hei Ola!", "Hej "),
}

# Customer texts for the triggers the starter rules do not cover: (subject, text body, SMS) per language.
REGISTERED = {
    "sv": ("Vi har registrerat din retur {{ rma }}",
           "Hej {{ first_name }}! Din retur {{ rma }} av order {{ order_number }} är registrerad. Lämna paketet till "
           "{{ carrier_name }} senast {{ drop_off_deadline }}.\n\nFölj returen: {{ status_link }}", ""),
    "nb": ("Vi har registrert returen din {{ rma }}",
           "Hei {{ first_name }}! Returen din {{ rma }} for ordre {{ order_number }} er registrert. Lever pakken til "
           "{{ carrier_name }} innen {{ drop_off_deadline }}.\n\nFølg returen: {{ status_link }}", ""),
    "en": ("We have registered your return {{ rma }}",
           "Hi {{ first_name }}, your return {{ rma }} is registered. Hand the parcel to {{ carrier_name }} by "
           "{{ drop_off_deadline }}.\n\nFollow it: {{ status_link }}", ""),
}
DROPPED_OFF = {
    "sv": ("", "", "Hej {{ first_name }}! {{ carrier_name }} har tagit emot din retur {{ rma }}. {{ status_link }}"),
    "nb": ("", "", "Hei {{ first_name }}! {{ carrier_name }} har mottatt returen din {{ rma }}. {{ status_link }}"),
    "en": ("", "", "Hi {{ first_name }}, {{ carrier_name }} has your return {{ rma }}. {{ status_link }}"),
}
IN_TRANSIT = {
    "sv": ("", "", "Din retur {{ rma }} är på väg till oss."),
    "nb": ("", "", "Returen din {{ rma }} er på vei til oss."),
}
ACCEPTED = {
    "sv": ("Din retur {{ rma }} är godkänd",
           "Hej {{ first_name }}! Vi har kontrollerat varorna i retur {{ rma }} och godkänt allt. Du får tillbaka "
           "{{ refund_amount }} senast {{ refund_expected_date }}.", ""),
    "nb": ("Returen din {{ rma }} er godkjent",
           "Hei {{ first_name }}! Vi har sjekket varene i retur {{ rma }} og godkjent alt. Du får tilbake "
           "{{ refund_amount }} innen {{ refund_expected_date }}.", ""),
    "en": ("Your return {{ rma }} is accepted",
           "Hi {{ first_name }}, we checked return {{ rma }} and accepted everything: {{ refund_amount }} by "
           "{{ refund_expected_date }}.", ""),
}
REVIEW = {  # marketing: needs consent, which these customers have not given
    "sv": ("Vad tyckte du, {{ first_name }}?", "Betygsätt ditt köp hos {{ merchant_name }}.", ""),
    "nb": ("Hva syntes du, {{ first_name }}?", "Gi en vurdering av kjøpet ditt hos {{ merchant_name }}.", ""),
}
OVERDUE_STAFF = {
    "sv": ("Återbetalning försenad: {{ rma }}",
           "Returen {{ rma }} (order {{ order_number }}) skulle ha återbetalats senast {{ refund_expected_date }}: "
           "{{ refund_amount }}.", "Försenad återbetalning {{ rma }}: {{ refund_amount }}"),
    "en": ("Refund overdue: {{ rma }}",
           "Return {{ rma }} (order {{ order_number }}) had to be refunded by {{ refund_expected_date }}: "
           "{{ refund_amount }}.", "Refund overdue {{ rma }}: {{ refund_amount }}"),
}


def _templates(texts: dict) -> dict:
    return {lang: {"subject": subject, "body_text": body,
                   "body_html": "\n".join(f"<p>{p}</p>" for p in body.split("\n\n")) if body else "", "sms_text": sms}
            for lang, (subject, body, sms) in texts.items()}


def set_up_rules(engine) -> dict[str, int]:
    """The five starter rules, activated, and the merchant's own rules (saved through the editor's validation)."""
    custom = [
        ("Return registered", "return.registered", ["email"], REGISTERED, {}),
        ("Dropped off", "parcel.dropped_off", ["sms"], DROPPED_OFF, {}),
        ("In transit", "parcel.in_transit", ["sms"], IN_TRANSIT, {}),
        ("Inspection accepted", "return.inspected.accepted", ["email"], ACCEPTED, {}),
        ("Review request", "return.inspected.accepted", ["email"], REVIEW, {"marketing": True}),
        ("Refund overdue (staff)", "time.refund_overdue", ["email", "sms"], OVERDUE_STAFF,
         {"audience": "internal", "internal_recipients": "\n".join(REFUNDS_DESK), "offset_days": "1"}),
        ("Registered by SMS (never activated)", "return.registered", ["sms"], DROPPED_OFF, {}),
    ]
    with Session(engine) as s:
        assert install_starter_rules(s) == len(STARTER_RULES)
        ids = {}
        for name, trigger, channels, texts, extra in custom:
            rule = admin.save_rule(s, None, admin.RuleInput(name=name, trigger=trigger, channels=channels,
                                                            templates=_templates(texts), **extra))
            ids[name] = rule.id
        for rule in s.exec(select(NotificationRule)):
            ids.setdefault(rule.name, rule.id)
            if rule.name != "Registered by SMS (never activated)":
                admin.set_active(s, rule, True)
        s.commit()
    return ids


# --- what arrived at the SMTP server and the SMS provider ------------------------------------------------


@dataclass
class Delivered:
    channel: str
    trigger: str
    recipient: str
    row: OutboxMessage
    mail: EmailMessage | None = None
    sms: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.channel, self.trigger, self.recipient


def decode(engine, trace: list) -> list[Delivered]:
    """Each received message with the outbox row it came from: e-mail by its Message-ID, SMS by the provider id
    the dispatcher recorded as sent."""
    out = []
    with Session(engine) as s:
        for channel, item in trace:
            if channel == "email":
                recipients, raw = item
                mail = message_from_bytes(raw, policy=policy.default)
                match = MESSAGE_ID_RE.fullmatch(mail["Message-ID"])
                assert match, f"not an outbox Message-ID: {mail['Message-ID']}"
                row = s.get(OutboxMessage, int(match.group(1)))
                assert recipients == [row.destination] and mail["To"] == row.destination
                out.append(Delivered("email", row.event_type.removeprefix("notify."), row.destination, row, mail=mail))
            else:
                sent = s.exec(select(DeliveryEvent).where(DeliveryEvent.kind == "sent",
                                                          DeliveryEvent.provider_message_id == item.message_id)).one()
                row = s.get(OutboxMessage, sent.outbox_id)
                assert item.form["to"] == row.destination
                out.append(Delivered("sms", row.event_type.removeprefix("notify."), item.form["to"], row,
                                     sms=item.form["message"]))
    return out


def bodies(mail: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative e-mail; fails if it is anything else."""
    assert mail.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content().replace("\r\n", "\n") for part in mail.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    return parts["text/plain"].rstrip("\n"), parts["text/html"]


# --- the walk ----------------------------------------------------------------------------------------------


def notification_events(engine, return_id: int) -> list[ReturnEvent]:
    with Session(engine) as s:
        return [e for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id)
                                  .order_by(ReturnEvent.id)) if e.type.startswith("notification.")]


def outbox_rows(engine, return_id: int) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.return_id == return_id,
                                                       OutboxMessage.channel.in_(("email", "sms")))
                           .order_by(OutboxMessage.id)))


@pytest.fixture
def quiet_env(monkeypatch):
    """The default SMS quiet hours (21:00–08:00) and no throttle, whatever the environment says."""
    for name in ("NOTIFY_QUIET_HOURS", "NOTIFY_THROTTLE_EMAIL", "NOTIFY_THROTTLE_SMS", "NOTIFY_THROTTLE_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARRIER_WEBHOOK_SECRET_POSTNORD", carrier_http.SECRET)
    monkeypatch.setenv("SHOP_WEBHOOK_SECRET", refund_http.SECRET)


@pytest.mark.parametrize("language", ["sv", "nb"])
def test_a_returns_life_sends_exactly_the_expected_messages(language, client, staff_client, demo_engine, settings,
                                                            quiet_env):
    walk = WALKS[language]
    rules = set_up_rules(demo_engine)
    engine = demo_engine
    trace: list = []
    with running_smtp() as (sink, port), running_sms_provider() as sms:
        original_data = sink.handle_DATA

        async def record_mail(server, session, envelope):
            trace.append(("email", (list(envelope.rcpt_tos), envelope.content)))
            return await original_data(server, session, envelope)

        sink.handle_DATA = record_mail
        sms.observer = lambda request: trace.append(("sms", request)) if request.message_id else None
        send_settings = replace(settings, smtp_url=f"smtp://127.0.0.1:{port}")

        def dispatch(when: datetime) -> DispatchReport:
            return dispatch_due(engine, now=when, settings=send_settings, sms_config=sms.config(), throttle=Throttle({}))

        def received() -> list[tuple[str, str, str]]:
            return [d.key for d in decode(engine, trace)]

        # 1. The consumer registers the return over HTTP; the order's market picks the language.
        html = consumer_http.open_order(client, walk.order, walk.email)
        line_id = consumer_http.lines_of(engine, walk.order)[walk.sku].id
        response = consumer_http.submit(client, walk.order, html, {f"qty_{line_id}": "1", f"reason_{line_id}": "too_small"})
        assert response.status_code == 302, response.text
        rma, token = consumer_http.STATUS_LINK_RE.search(response.headers["location"]).groups()
        with Session(engine) as s:
            ret = s.exec(select(Return).where(Return.rma == rma)).one()
            assert (ret.language, ret.status) == (language, "label_issued")
            return_id = ret.id
            ret.tracking_number = walk.tracking  # booked with the carrier (the label booking is outside the portal)
            s.add(ret)
            s.commit()
        status_link = f"{settings.base_url}/r/{rma}/{token}"
        assert dispatch(clock(1, 9)).sent == 1
        assert received() == [("email", "return.registered", walk.email)]

        # 2. The carrier's first scans (proof of sending); the same webhook twice changes nothing.
        now = datetime.now(timezone.utc)
        scans = {"events": [carrier_http.scan(f"{rma}-{i}", walk.tracking, code, now + timedelta(seconds=i))
                            for i, code in enumerate(walk.scans)]}
        first = carrier_http.post_signed(client, "postnord", scans)
        assert first.status_code == 200, first.text
        assert [r["moved"] for r in first.json()["results"]] == [True] * len(walk.scans)
        again = carrier_http.post_signed(client, "postnord", scans)
        assert [r["duplicate"] for r in again.json()["results"]] == [True] * len(walk.scans)
        with Session(engine) as s:
            assert s.get(Return, return_id).status == walk.status
        assert dispatch(clock(1, 12)).sent == 1
        assert received()[1:] == [("sms", "parcel.dropped_off", walk.phone)]

        # 3. The warehouse scans the parcel. Dispatched at 22:00, the e-mail goes and the SMS waits for 08:00.
        warehouse = staff_client("warehouse")
        warehouse_http.arrive(warehouse, rma)
        evening = dispatch(clock(1, 22))
        assert (evening.sent, evening.deferred) == (1, 1)
        assert received()[2:] == [("email", "parcel.arrived", walk.email)]
        assert dispatch(clock(1, 23, 30)).claimed == 0  # still quiet: not even claimed
        assert dispatch(clock(2, 7, 59)).claimed == 0
        assert dispatch(clock(2, 8)).sent == 1
        assert received()[3:] == [("sms", "parcel.arrived", walk.phone)]

        # Late scans after the arrival are recorded but move nothing and notify nobody.
        late = carrier_http.post_signed(client, "postnord", {"events": [
            carrier_http.scan(f"{rma}-late-1", walk.tracking, "EN_ROUTE", datetime.now(timezone.utc)),
            carrier_http.scan(f"{rma}-late-2", walk.tracking, "DELIVERED", datetime.now(timezone.utc))]})
        assert [r["moved"] for r in late.json()["results"]] == [False, False]

        # 4. Inspection: a saved draft (line undecided) announces nothing; the finished one does.
        with Session(engine) as s:
            line = s.exec(select(ReturnLine).where(ReturnLine.return_id == return_id)).one()
        draft = warehouse_http.submit(warehouse, rma, warehouse_http.line_fields(line, 1, "as_new", "pending"))
        assert draft.status_code == 302 and "outcome=saved" in draft.headers["location"]
        assert outbox_rows(engine, return_id)[-1].event_type == "notify.parcel.arrived"
        done = warehouse_http.submit(warehouse, rma, warehouse_http.line_fields(line, 1, "as_new", "accepted",
                                                                                disposition="restock"))
        assert done.status_code == 302 and "outcome=inspected" in done.headers["location"]
        assert dispatch(clock(2, 10)).sent == 1
        assert received()[4:] == [("email", "return.inspected.accepted", walk.email)]

        # 5. An admin issues the refund; the shop has not paid it yet. The sweep reminds staff, then warns them.
        response = refund_http.issue(staff_client("admin"), rma)
        assert response.status_code == 302, response.text
        with Session(engine) as s:
            refund = s.exec(select(Refund).where(Refund.return_id == return_id)).one()
        due = TODAY + timedelta(days=14)  # withdrawal + 14 days: the goods and the proof came earlier
        assert (refund.state, refund.due_date) == ("requested", due)
        assert sweep(engine, clock(11, 10), settings) == 0  # more than 2 days before the due date
        assert sweep(engine, clock(13, 10), settings) == 1
        assert sweep(engine, clock(13, 16), settings) == 0
        assert dispatch(clock(13, 10)).sent == 1
        assert received()[5:] == [("email", "time.refund_due", STAFF_EMAIL)]
        assert sweep(engine, clock(15, 10), settings) == 0  # one day late: the rule waits for more than 1
        assert sweep(engine, clock(16, 10), settings) == 2
        assert dispatch(clock(16, 10)).sent == 2
        assert received()[6:] == [("email", "time.refund_overdue", REFUNDS_DESK[0]),
                                  ("sms", "time.refund_overdue", REFUNDS_DESK_PHONE)]

        # 6. The shop's signed callback: paid. The customer hears it by e-mail and SMS.
        paid = refund_http.callback(client, {"refund_id": refund.id, "status": "completed", "reference": "PSP-1"})
        assert paid.status_code == 200 and paid.json()["changed"] is True
        assert dispatch(clock(16, 11)).sent == 2

        # Running everything again sends nothing more.
        repeat = refund_http.callback(client, {"refund_id": refund.id, "status": "completed", "reference": "PSP-1"})
        assert repeat.json()["changed"] is False
        for when in (clock(16, 12), clock(17, 9), clock(30, 12)):
            assert sweep(engine, when, settings) == 0
            assert dispatch(when).claimed == 0
        delivered = decode(engine, trace)

    # Exactly these messages, in this order, each once.
    assert [d.key for d in delivered] == [
        ("email", "return.registered", walk.email),
        ("sms", "parcel.dropped_off", walk.phone),
        ("email", "parcel.arrived", walk.email),
        ("sms", "parcel.arrived", walk.phone),
        ("email", "return.inspected.accepted", walk.email),
        ("email", "time.refund_due", STAFF_EMAIL),
        ("email", "time.refund_overdue", REFUNDS_DESK[0]),
        ("sms", "time.refund_overdue", REFUNDS_DESK_PHONE),
        ("email", "refund.issued", walk.email),
        ("sms", "refund.issued", walk.phone),
    ]
    rows = outbox_rows(engine, return_id)
    assert sorted(d.row.id for d in delivered) == [r.id for r in rows]  # every row delivered once, nothing else queued
    assert {r.state for r in rows} == {"sent"}
    assert not any(r.event_type == "notify.parcel.in_transit" for r in rows)
    assert all(r.idempotency_key.split(":")[2] != str(rules["Registered by SMS (never activated)"]) for r in rows)
    # Staff alerts reach staff only; the customer gets only customer messages.
    for d in delivered:
        if d.trigger.startswith("time.refund_"):
            assert d.recipient in (STAFF_EMAIL, REFUNDS_DESK[0], REFUNDS_DESK_PHONE)
        else:
            assert d.recipient in (walk.email, walk.phone)

    by_key = {d.key: d for d in delivered}
    mails = [d.mail for d in delivered if d.mail is not None]
    assert len({m["Message-ID"] for m in mails}) == len(mails)  # one stable Message-ID per outbox row
    assert all(m["Date"] for m in mails)
    refund_date = format_date(due, format="long", locale=babel_locale(language))

    def customer_mail(trigger: str) -> tuple[str, str, str]:
        mail = by_key[("email", trigger, walk.email)].mail
        text, html = bodies(mail)
        assert walk.other_greeting not in text
        assert walk.first_name in html and rma in html
        return mail["Subject"], text, html

    subject, text, _ = customer_mail("return.registered")
    assert subject == {"sv": f"Vi har registrerat din retur {rma}", "nb": f"Vi har registrert returen din {rma}"}[language]
    assert text.startswith({"sv": "Hej Anna! Din retur", "nb": "Hei Ola! Returen din"}[language])
    body, footer = text.split("\n\n-- \n")  # the brand's support contact under the text, in the same language
    assert f"{walk.order} " in body and "PostNord" in body and body.endswith(status_link)
    assert footer.startswith({"sv": "Frågor om din retur? Kontakta Nordic Outdoor AB:",
                              "nb": "Spørsmål om returen din? Kontakt Nordic Outdoor AB:"}[language])
    assert {"sv": "E-post: ", "nb": "E-post: "}[language] in footer
    with Session(engine) as s:
        created = s.get(Return, return_id).created_at
    deadline = format_date(created.astimezone(STOCKHOLM).date() + timedelta(days=settings.return_expiry_days),
                           format="long", locale=babel_locale(language))
    assert deadline in text  # the label's last drop-off day (RETURN_EXPIRY_DAYS after registration)

    subject, text, html = customer_mail("parcel.arrived")  # the starter text
    assert subject == {"sv": f"Vi har tagit emot din retur {rma}", "nb": f"Vi har mottatt returen din {rma}"}[language]
    assert text.startswith(walk.greeting) and walk.refund in text and refund_date in text and status_link in text
    assert f"<p>{walk.greeting}</p>" in html and "Nordic Outdoor AB" in text

    subject, text, _ = customer_mail("return.inspected.accepted")
    assert subject == {"sv": f"Din retur {rma} är godkänd", "nb": f"Returen din {rma} er godkjent"}[language]
    assert walk.refund in text and refund_date in text

    subject, text, _ = customer_mail("refund.issued")
    assert subject == {"sv": f"Din återbetalning för retur {rma} är på väg",
                       "nb": f"Refusjonen for retur {rma} er på vei"}[language]
    assert text.startswith(walk.greeting) and walk.refund in text and status_link in text

    sms_texts = {d.trigger: d.sms for d in delivered if d.channel == "sms" and d.recipient == walk.phone}
    assert sms_texts["parcel.dropped_off"] == {
        "sv": f"Hej Anna! PostNord har tagit emot din retur {rma}. {status_link}",
        "nb": f"Hei Ola! PostNord har mottatt returen din {rma}. {status_link}"}[language]
    assert sms_texts["parcel.arrived"].startswith(walk.greeting) and refund_date in sms_texts["parcel.arrived"]
    assert sms_texts["refund.issued"] == {
        "sv": f"Hej Anna! Vi har betalat tillbaka {walk.refund} för retur {rma}. /Nordic Outdoor AB",
        "nb": f"Hei Ola! Vi har refundert {walk.refund} for retur {rma}. /Nordic Outdoor AB"}[language]

    # Staff read the merchant's language (Swedish), whatever the customer's.
    staff_due = by_key[("email", "time.refund_due", STAFF_EMAIL)].mail
    text, _ = bodies(staff_due)
    assert staff_due["Subject"] == f"Återbetalning förfaller om 2 dagar: {rma}"
    sv_date = format_date(due, format="long", locale=babel_locale("sv"))
    assert text.startswith(f"Returen {rma} (order {walk.order}) ska återbetalas senast {sv_date}: {walk.refund_for_staff}.")
    overdue = by_key[("email", "time.refund_overdue", REFUNDS_DESK[0])].mail
    assert overdue["Subject"] == f"Återbetalning försenad: {rma}" and walk.refund_for_staff in bodies(overdue)[0]
    assert by_key[("sms", "time.refund_overdue", REFUNDS_DESK_PHONE)].sms == \
        f"Försenad återbetalning {rma}: {walk.refund_for_staff}"

    # The status link in the messages works, and shows the return in its language.
    page = client.get(status_link)
    assert page.status_code == 200 and rma in page.text and f'<html lang="{language}">' in page.text
    assert "notification." not in page.text  # decisions are for staff, not the customer's timeline

    # The timeline holds every decision: queued, sent, deferred (quiet hours), suppressed (marketing, no consent).
    events = notification_events(engine, return_id)
    types = [e.type for e in events]
    assert types.count("notification.queued") == 10 and types.count("notification.sent") == 10
    [deferred] = [e for e in events if e.type == "notification.deferred"]
    sms_arrived = by_key[("sms", "parcel.arrived", walk.phone)].row
    assert deferred.data["outbox_id"] == sms_arrived.id and deferred.data["reason"] == "quiet_hours"
    assert datetime.fromisoformat(deferred.data["until"]) == clock(2, 8)
    [suppressed] = [e for e in events if e.type == "notification.suppressed"]
    assert suppressed.data["rule"] == "Review request" and suppressed.data["reason"] == "no marketing consent"
    assert {e.data["outbox_id"] for e in events if e.type == "notification.sent"} == {d.row.id for d in delivered}
    assert set(types) == {"notification.queued", "notification.sent", "notification.deferred",
                          "notification.suppressed"}
    [sms_arrived_sent] = [e for e in events if e.type == "notification.sent" and e.data["outbox_id"] == sms_arrived.id]
    assert deferred.id < sms_arrived_sent.id
    with Session(engine) as s:
        ignored = [e for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id))
                   if "ignored_state" in e.data]
    assert sorted(e.type for e in ignored) == ["parcel.arrived", "parcel.in_transit"]  # the late scans

    staff_page = staff_client("support").get(f"/staff/returns/{rma}")
    assert staff_page.status_code == 200
    for kind in ("queued", "sent", "deferred", "suppressed"):
        assert f'data-type="notification.{kind}"' in staff_page.text

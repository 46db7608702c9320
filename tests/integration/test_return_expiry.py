"""Returns whose label was never used expire RETURN_EXPIRY_DAYS after registration: on a clock the test controls,
through the lifecycle, never after a carrier scan, freeing the quantities, with the `return.expired` rule sending
exactly one e-mail in the return's language through a real SMTP server; the CLI and the daily job."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from email import message_from_bytes, policy as email_policy
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from portal.carriers.service import apply_carrier_event
from portal.jobs.scheduler import guarded, periodic_jobs
from portal.models import Order, OrderLine, OutboxMessage, Return, ReturnEvent
from portal.notify import admin
from portal.outbox.dispatcher import Throttle, dispatch_due
from portal.returns import policy, service
from portal.returns.expiry import expire_returns
from tests.integration.conftest import run_cli
from tests.integration.outbox_helpers import running_smtp

STOCKHOLM = ZoneInfo("Europe/Stockholm")
REGISTERED = datetime(2026, 1, 10, 12, 0, tzinfo=STOCKHOLM)  # the test's registration time: 30 days → 9 February
EXPIRED_TEXTS = {
    "sv": ("Retur {{ rma }} har gått ut", "Hej {{ first_name }}! Returen {{ rma }} ({{ return_status }}) har gått ut."),
    "nb": ("Retur {{ rma }} er utløpt", "Hei {{ first_name }}! Returen {{ rma }} er utløpt."),
    "fi": ("Palautus {{ rma }} on vanhentunut", "Hei {{ first_name }}! Palautus {{ rma }} on vanhentunut."),
    "en": ("Return {{ rma }} has expired", "Hi {{ first_name }}, return {{ rma }} has expired."),
}


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """That wall-clock time in Stockholm, as the UTC instant the job is given."""
    return datetime.combine(day, time(hour, minute), tzinfo=STOCKHOLM).astimezone(timezone.utc)


def expired_rule(engine) -> int:
    templates = {lang: {"subject": subject, "body_text": body, "body_html": f"<p>{body}</p>", "sms_text": ""}
                 for lang, (subject, body) in EXPIRED_TEXTS.items()}
    with Session(engine) as s:
        rule = admin.save_rule(s, None, admin.RuleInput(name="Return expired", trigger="return.expired",
                                                        channels=["email"], templates=templates))
        admin.set_active(s, rule, True)
        s.commit()
        return rule.id


def register(engine, number: str, sku: str, quantity: int, nonce: str, registered: datetime | None = REGISTERED,
             tracking: str | None = None) -> str:
    """Registered today (the policy checks the real dates), then dated back to `registered`."""
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.sku == sku)).one()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, str(quantity), "too_small", "")],
            resolution="refund", language=order_language(s, order), form_nonce=nonce), date.today())
        if registered is not None:
            ret.created_at = registered.astimezone(timezone.utc)
        ret.tracking_number = tracking
        s.add(ret)
        s.commit()
        return ret.rma


def order_language(session: Session, order: Order) -> str:
    return {"SE": "sv", "NO": "nb", "DK": "da", "FI": "fi"}[order.country]


def the_return(engine, rma: str) -> Return:
    with Session(engine) as s:
        return s.exec(select(Return).where(Return.rma == rma)).one()


def notify_rows(engine) -> list[OutboxMessage]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxMessage).where(OutboxMessage.event_type == "notify.return.expired")
                           .order_by(OutboxMessage.id)))


def can_register(engine, number: str, sku: str, quantity: int, nonce: str) -> bool:
    try:
        register(engine, number, sku, quantity, nonce, registered=None)
    except service.ReturnError as exc:
        assert exc.code == "invalid_selection"
        return False
    return True


@pytest.fixture
def world(demo_engine):
    """A: unused label (Swedish). B: unused label but the carrier reported an exception scan. C: registered ten
    days later (Finnish). D: outside the window, waiting for approval. E: cancelled by the customer."""
    engine = demo_engine
    rmas = {
        "A": register(engine, "SE-1001", "TS-100", 2, "expiry-a"),
        "B": register(engine, "NO-2001", "TS-100", 1, "expiry-b", tracking="PN000000777NO"),
        "C": register(engine, "FI-4002", "BT-600", 1, "expiry-c", registered=REGISTERED + timedelta(days=10)),
        "D": register(engine, "SE-1003", "BT-600", 1, "expiry-d"),
        "E": register(engine, "DK-3001", "TS-100", 1, "expiry-e"),
    }
    with Session(engine) as s:
        applied = apply_carrier_event(s, "postnord", "expiry-b-1", "PN000000777NO", "DELAYED",
                                      at(date(2026, 1, 12), 9), {})
        assert applied.return_id is not None and not applied.moved  # an exception: the state stays label_issued
        service.cancel_return(s, s.exec(select(Return).where(Return.rma == rmas["E"])).one())
        s.commit()
    statuses = {key: the_return(engine, rma).status for key, rma in rmas.items()}
    assert statuses == {"A": "label_issued", "B": "label_issued", "C": "label_issued", "D": "pending_approval",
                        "E": "cancelled"}
    return rmas


def test_unused_labels_expire_the_day_after_the_deadline_once(world, demo_engine, settings, client):
    engine, rmas = demo_engine, world
    rule_id = expired_rule(engine)
    deadline = date(2026, 2, 9)  # registered 10 January + RETURN_EXPIRY_DAYS (30)
    assert settings.return_expiry_days == 30
    assert service.last_drop_off_day(the_return(engine, rmas["A"]).created_at, settings) == deadline
    assert not can_register(engine, "SE-1001", "TS-100", 1, "expiry-a-again-early")  # both units are claimed

    # The deadline day itself still belongs to the customer; a dry run changes nothing.
    assert expire_returns(engine, at(deadline, 23, 59), settings).count == 0
    dry = expire_returns(engine, at(deadline + timedelta(days=1), 0, 1), settings, dry_run=True)
    assert (dry.count, dry.expired, dry.dry_run) == (1, [rmas["A"]], True)
    assert the_return(engine, rmas["A"]).status == "label_issued" and notify_rows(engine) == []

    # Just after midnight: A expires, the rest stays as it is.
    report = expire_returns(engine, at(deadline + timedelta(days=1), 0, 1), settings)
    assert report.expired == [rmas["A"]]
    assert {key: the_return(engine, rma).status for key, rma in rmas.items()} == {
        "A": "expired", "B": "label_issued", "C": "label_issued", "D": "pending_approval", "E": "cancelled"}
    with Session(engine) as s:
        ret = s.exec(select(Return).where(Return.rma == rmas["A"])).one()
        [event] = s.exec(select(ReturnEvent).where(ReturnEvent.return_id == ret.id,
                                                   ReturnEvent.type == "return.expired")).all()
    assert event.actor == "system" and event.at == at(deadline + timedelta(days=1), 0, 1)
    assert (event.data["from"], event.data["to"], event.data["drop_off_deadline"]) == ("label_issued", "expired",
                                                                                         "2026-02-09")
    [row] = notify_rows(engine)
    assert row.idempotency_key == f"notify:{ret.id}:{rule_id}:email:0" and row.destination == "anna.svensson@example.se"

    # Idempotent: later runs find nothing more to do.
    for later in (at(deadline + timedelta(days=1), 0, 2), at(deadline + timedelta(days=5), 3)):
        assert expire_returns(engine, later, settings).count == 0
    assert len(notify_rows(engine)) == 1

    # The units are free for a new return, as after a cancellation.
    assert can_register(engine, "SE-1001", "TS-100", 2, "expiry-a-again")

    # Exactly one e-mail through the real dispatcher, in the return's language.
    with running_smtp() as (sink, port):
        send_settings = replace(settings, smtp_url=f"smtp://127.0.0.1:{port}")
        assert dispatch_due(engine, settings=send_settings, throttle=Throttle({})).sent == 1
        assert dispatch_due(engine, settings=send_settings, throttle=Throttle({})).claimed == 0
        [raw] = sink.received
    mail = message_from_bytes(raw, policy=email_policy.default)
    assert mail["To"] == "anna.svensson@example.se" and mail["Subject"] == f"Retur {rmas['A']} har gått ut"
    assert f"Returen {rmas['A']} (expired) har gått ut." in mail.get_body(("plain",)).get_content()

    # The status page says so, and there is no label any more.
    ret = the_return(engine, rmas["A"])
    page = client.get(f"/r/{ret.rma}/{ret.status_token}")
    assert "Returen har gått ut eftersom paketet inte skickades i tid." in page.text
    assert "Du kan registrera en ny retur från startsidan" in page.text
    assert client.get(f"/r/{ret.rma}/{ret.status_token}/label.pdf?layout=a4").status_code == 409


def test_the_period_is_configurable_and_is_the_labels_drop_off_deadline(world, demo_engine, settings, client):
    engine, rmas = demo_engine, world
    short = replace(settings, return_expiry_days=5)
    ret = the_return(engine, rmas["C"])  # registered 20 January: last day 25 January with 5 days
    assert service.drop_off_deadline(ret, short) == date(2026, 1, 25)
    # A (registered 10 January) is long due with 5 days; C's last day is still running.
    assert expire_returns(engine, at(date(2026, 1, 25), 23, 59), short).expired == [rmas["A"]]
    assert expire_returns(engine, at(date(2026, 1, 26), 0, 1), short).expired == [rmas["C"]]
    # One definition: the consumer's page shows the same last day the job uses (default 30 days here).
    b = the_return(engine, rmas["B"])
    page = client.get(f"/r/{b.rma}/{b.status_token}?lang=en").text
    assert "Please drop it off by 9 February 2026." in page


def _cli(args, env: dict, monkeypatch):
    return run_cli(args, env, monkeypatch)


def test_cli_and_the_daily_job(world, demo_engine, settings, monkeypatch):
    engine, rmas = demo_engine, world
    env = {"DATABASE_URL": settings.database_url, "RETURN_EXPIRY_DAYS": "30", "TIMEZONE": "Europe/Stockholm"}
    # Today is long after January: A and C are due (B was scanned, D waits for approval, E is cancelled).
    dry = _cli(["expire-returns", "--dry-run"], env, monkeypatch)
    assert dry.exit_code == 0, dry.output
    assert "2 returns would expire" in dry.output and "RETURN_EXPIRY_DAYS=30" in dry.output and "Dry run" in dry.output
    assert the_return(engine, rmas["A"]).status == "label_issued"
    bad = _cli(["expire-returns"], dict(env, RETURN_EXPIRY_DAYS="a month"), monkeypatch)
    assert bad.exit_code != 0 and "RETURN_EXPIRY_DAYS must be a whole number" in bad.output
    done = _cli(["expire-returns"], env, monkeypatch)
    assert done.exit_code == 0 and "2 returns expired" in done.output
    assert rmas["A"] in done.output and rmas["C"] in done.output
    assert "0 returns expired" in _cli(["expire-returns"], env, monkeypatch).output

    jobs = {job_id: (func, trigger) for job_id, _, func, trigger in periodic_jobs(settings)}
    func, trigger = jobs["return-expiry"]
    assert str(trigger).startswith("cron[") and "hour='0'" in str(trigger)
    late = register(engine, "NO-2002", "JK-500", 1, "expiry-late")  # another unused label, long ago
    assert guarded("return-expiry", func, engine) is True
    assert the_return(engine, late).status == "expired"
    assert the_return(engine, rmas["B"]).status == "label_issued"

"""SMS delivery through the outbox against a real HTTP server playing 46elks and Twilio; quiet hours and
the throttle against a clock we control; delivery reports on the webhook with good and bad signatures."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from litestar.testing import TestClient
from sqlmodel import Session, select

from portal.app import create_app
from portal.models import DeliveryEvent, Order, OrderLine, OutboxMessage, ReturnEvent
from portal.notify.sms_providers import SmsConfig, twilio_signature
from portal.outbox.dispatcher import Throttle, dispatch_due, quiet_until, recipient_zones
from portal.outbox.service import enqueue
from portal.returns import policy, service
from tests.integration.outbox_helpers import free_port
from tests.integration.sms_helpers import ELKS_PASSWORD, ELKS_USER, TWILIO_SID, TWILIO_TOKEN, running_sms_provider

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)  # 10:00 in Stockholm: outside the quiet hours
SE_MOBILE, NO_MOBILE = "+46701234567", "+4791234567"


@pytest.fixture
def sms():
    with running_sms_provider() as provider:
        yield provider


def register(engine, number: str = "SE-1001") -> int:
    with Session(engine) as s:
        order = s.exec(select(Order).where(Order.number == number)).one()
        line = s.exec(select(OrderLine).where(OrderLine.order_id == order.id, OrderLine.returnable)).first()
        ret = service.register_return(s, service.ReturnRequest(
            order_id=order.id, lines=[policy.RequestedLine(line.id, "1", "too_small", "")], resolution="refund",
            language="sv", form_nonce=f"nonce-{number}-0123456789"), date.today())
        s.commit()
        return ret.id


def queue_sms(engine, to: str = SE_MOBILE, key: str = "sms:1", text: str = "Hej Anna! Vi har tagit emot din retur.",
              return_id: int | None = None, at: datetime = T0) -> int:
    with Session(engine) as s:
        m = enqueue(s, key=key, channel="sms", destination=to, event_type="return.received", payload={"text": text},
                    return_id=return_id, not_before=at)
        s.commit()
        return m.id


def row(engine, mid: int) -> OutboxMessage:
    with Session(engine) as s:
        return s.get(OutboxMessage, mid)


def delivery_log(engine, mid: int) -> list[DeliveryEvent]:
    with Session(engine) as s:
        return list(s.exec(select(DeliveryEvent).where(DeliveryEvent.outbox_id == mid).order_by(DeliveryEvent.id)))


def timeline(engine, return_id: int, prefix: str = "notification.") -> list[ReturnEvent]:
    with Session(engine) as s:
        return [e for e in s.exec(select(ReturnEvent).where(ReturnEvent.return_id == return_id)
                                  .order_by(ReturnEvent.id)) if e.type.startswith(prefix)]


# --- Providers -----------------------------------------------------------------------------


def test_46elks_form_auth_and_message_id_recorded(demo_engine, settings, sms):
    return_id = register(demo_engine)
    mid = queue_sms(demo_engine, return_id=return_id)
    report = dispatch_due(demo_engine, now=T0, settings=settings, sms_config=sms.config("46elks", "Butiken"))
    assert report.sent == 1
    [req] = sms.requests
    assert req.provider == "46elks" and req.auth == (ELKS_USER, ELKS_PASSWORD)
    assert req.form == {"from": "Butiken", "to": SE_MOBILE, "message": "Hej Anna! Vi har tagit emot din retur."}
    assert req.headers["idempotency-key"] == "sms:1"
    m = row(demo_engine, mid)
    assert (m.state, m.attempts) == ("sent", 1)
    kinds = [(e.kind, e.provider_message_id) for e in delivery_log(demo_engine, mid)]
    assert kinds == [("sending", None), ("sent", req.message_id)]
    [event] = timeline(demo_engine, return_id)
    assert event.type == "notification.sent" and event.data["provider_message_id"] == req.message_id
    assert event.data["channel"] == "sms" and event.data["outbox_id"] == mid


def test_twilio_form_auth_and_sid(engine, settings, sms):
    mid = queue_sms(engine, to=NO_MOBILE, text="Hei Ola! Returen din er mottatt.")
    report = dispatch_due(engine, now=T0, settings=settings, sms_config=sms.config("twilio", "+46766860001"))
    assert report.sent == 1
    [req] = sms.requests
    assert req.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert req.auth == (TWILIO_SID, TWILIO_TOKEN)
    assert req.form == {"From": "+46766860001", "To": NO_MOBILE, "Body": "Hei Ola! Returen din er mottatt."}
    assert req.message_id.startswith("SM")
    assert [e.kind for e in delivery_log(engine, mid)][-1] == "sent"
    assert delivery_log(engine, mid)[-1].provider_message_id == req.message_id


def test_invalid_number_is_permanent(demo_engine, settings, sms):
    return_id = register(demo_engine)
    mid = queue_sms(demo_engine, to="+46000000001", return_id=return_id)
    report = dispatch_due(demo_engine, now=T0, settings=settings, sms_config=sms.config())
    assert report.dead == 1
    m = row(demo_engine, mid)
    assert m.state == "dead" and "400" in m.last_error and "Invalid" in m.last_error
    assert [e.kind for e in delivery_log(demo_engine, mid)] == ["sending", "dead"]
    assert [e.type for e in timeline(demo_engine, return_id)] == ["notification.failed"]


def test_server_error_and_timeout_are_temporary_then_sent_once(engine, settings, sms):
    mid = queue_sms(engine)
    sms.script = [503, ("sleep", 1.5)]
    first = dispatch_due(engine, now=T0, settings=settings, sms_config=sms.config())
    assert first.retried == 1 and "503" in row(engine, mid).last_error
    second = dispatch_due(engine, now=row(engine, mid).next_attempt_at, settings=settings, sms_config=sms.config(),
                          webhook_timeout_s=0.5)
    assert second.retried == 1 and "timeout" in row(engine, mid).last_error
    third = dispatch_due(engine, now=row(engine, mid).next_attempt_at, settings=settings, sms_config=sms.config())
    assert third.sent == 1
    assert row(engine, mid).attempts == 3
    assert [e.kind for e in delivery_log(engine, mid)] == ["sending", "failed", "sending", "failed", "sending", "sent"]
    assert len(sms.accepted) == 1


def test_bad_credentials_are_permanent(engine, settings, sms):
    mid = queue_sms(engine)
    wrong = SmsConfig("46elks", sms.url, ELKS_USER, "wrong", "Butiken")
    assert dispatch_due(engine, now=T0, settings=settings, sms_config=wrong).dead == 1
    assert "401" in row(engine, mid).last_error


def test_provider_down_is_temporary(engine, settings):
    mid = queue_sms(engine)
    down = SmsConfig("46elks", f"http://127.0.0.1:{free_port()}", ELKS_USER, ELKS_PASSWORD, "Butiken")
    assert dispatch_due(engine, now=T0, settings=settings, sms_config=down).retried == 1
    assert row(engine, mid).state == "failed"


def test_without_a_provider_sms_rows_wait(engine, settings):
    mid = queue_sms(engine)
    unconfigured = SmsConfig("46elks", "https://api.46elks.com", "", "", "")
    assert dispatch_due(engine, now=T0, settings=settings, sms_config=unconfigured).claimed == 0
    assert row(engine, mid).state == "pending"


# --- Quiet hours ---------------------------------------------------------------------------


def test_recipient_zone_from_country_code():
    assert recipient_zones(SE_MOBILE, "UTC") == ("Europe/Stockholm",)
    assert "Europe/Helsinki" in recipient_zones("+358401234567", "UTC")
    assert recipient_zones("+99912345678", "Europe/Oslo") == ("Europe/Oslo",)  # no such country code


def test_quiet_hours_defer_to_eight_in_the_morning_then_send(demo_engine, settings, sms):
    return_id = register(demo_engine)
    evening = datetime(2030, 3, 4, 20, 30, tzinfo=timezone.utc)  # 21:30 in Stockholm
    mid = queue_sms(demo_engine, return_id=return_id, at=evening)
    report = dispatch_due(demo_engine, now=evening, settings=settings, sms_config=sms.config())
    assert report.deferred == 1 and sms.requests == []
    m = row(demo_engine, mid)
    morning = datetime(2030, 3, 5, 7, 0, tzinfo=timezone.utc)  # 08:00 in Stockholm (CET)
    assert (m.state, m.attempts, m.next_attempt_at) == ("pending", 0, morning)
    [deferred] = delivery_log(demo_engine, mid)
    assert deferred.kind == "deferred" and deferred.detail["until"] == morning.isoformat()
    assert [e.type for e in timeline(demo_engine, return_id)] == ["notification.deferred"]
    # a minute before eight: still not due; at eight: sent
    assert dispatch_due(demo_engine, now=morning - timedelta(minutes=1), settings=settings,
                        sms_config=sms.config()).claimed == 0
    assert dispatch_due(demo_engine, now=morning, settings=settings, sms_config=sms.config()).sent == 1
    assert row(demo_engine, mid).attempts == 1 and len(sms.requests) == 1
    assert [e.type for e in timeline(demo_engine, return_id)] == ["notification.deferred", "notification.sent"]


def test_quiet_hours_follow_the_recipient_not_the_merchant(engine, settings, sms):
    # 06:30 UTC: 07:30 in Stockholm (quiet), 08:30 in Helsinki (not quiet)
    at = datetime(2030, 3, 4, 6, 30, tzinfo=timezone.utc)
    se = queue_sms(engine, key="sms:se", at=at)
    fi = queue_sms(engine, to="+358401234567", key="sms:fi", at=at)
    report = dispatch_due(engine, now=at, settings=settings, sms_config=sms.config())
    assert {o.message_id: o.result for o in report.outcomes} == {se: "deferred", fi: "sent"}
    assert row(engine, se).next_attempt_at == datetime(2030, 3, 4, 7, 0, tzinfo=timezone.utc)
    assert [r.form["to"] for r in sms.requests] == ["+358401234567"]


def test_quiet_until_edges():
    stockholm = ("Europe/Stockholm",)
    assert quiet_until(datetime(2030, 3, 4, 19, 59, tzinfo=timezone.utc), stockholm) is None  # 20:59
    assert quiet_until(datetime(2030, 3, 4, 20, 0, tzinfo=timezone.utc), stockholm) == \
        datetime(2030, 3, 5, 7, 0, tzinfo=timezone.utc)  # 21:00 → next morning
    assert quiet_until(datetime(2030, 3, 4, 7, 0, tzinfo=timezone.utc), stockholm) is None  # 08:00 sharp
    # summer time: 08:00 CEST is 06:00 UTC
    assert quiet_until(datetime(2030, 7, 1, 2, 0, tzinfo=timezone.utc), stockholm) == \
        datetime(2030, 7, 1, 6, 0, tzinfo=timezone.utc)


# --- Throttle ------------------------------------------------------------------------------


class FakeClock:
    """monotonic() and sleep() for the dispatcher: sleeping moves the clock, nothing really waits."""

    def __init__(self):
        self.t = 1000.0
        self.trace: list = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.trace.append(("pause", seconds))
        self.t += seconds


def test_throttle_sends_x_then_pauses_y(engine, settings, sms, monkeypatch):
    ids = [queue_sms(engine, key=f"sms:{i}", text=f"Meddelande {i}") for i in range(7)]
    monkeypatch.setenv("NOTIFY_THROTTLE_SMS", "3/2.5")
    clock = FakeClock()
    # each SMS the server gets goes into the same trace as the pauses
    sms.observer = lambda item: clock.trace.append(("sms", item.form["message"]))
    report = dispatch_due(engine, now=T0, settings=settings, sms_config=sms.config(), sleep=clock.sleep,
                          monotonic=clock.monotonic)
    assert report.sent == 7 and all(row(engine, i).state == "sent" for i in ids)
    assert [kind for kind, _ in clock.trace] == ["sms"] * 3 + ["pause"] + ["sms"] * 3 + ["pause"] + ["sms"]
    assert [v for k, v in clock.trace if k == "pause"] == [2.5, 2.5]
    assert [v for k, v in clock.trace if k == "sms"] == [f"Meddelande {i}" for i in range(7)]


def test_throttle_pauses_count_against_the_lease(engine, settings, sms):
    ids = [queue_sms(engine, key=f"sms:{i}") for i in range(5)]
    clock = FakeClock()
    throttle = Throttle({"sms": (2, 50.0)}, clock.sleep)
    # lease 60 s, budget 10 + 5 s per SMS: 2 sent, then a 50 s pause would overrun the lease → released
    report = dispatch_due(engine, now=T0, settings=settings, sms_config=sms.config(), throttle=throttle,
                          sleep=clock.sleep, monotonic=clock.monotonic)
    assert (report.sent, report.released) == (2, 3) and clock.trace == []
    assert sorted(row(engine, i).state for i in ids) == ["pending"] * 3 + ["sent"] * 2


def test_throttle_settings_parse():
    assert Throttle.from_env(environ={"NOTIFY_THROTTLE_EMAIL": "100/5"}).limits == {"email": (100, 5.0)}
    assert Throttle.from_env(environ={"NOTIFY_THROTTLE_SMS": "nonsense", "NOTIFY_THROTTLE_EMAIL": "0/1"}).limits == {}


# --- Delivery reports ----------------------------------------------------------------------


@pytest.fixture
def sent_sms(demo_engine, settings, sms):
    """A return with one SMS sent through 46elks and one through Twilio: (return id, elks id, twilio sid)."""
    return_id = register(demo_engine)
    queue_sms(demo_engine, key="sms:elks", return_id=return_id)
    dispatch_due(demo_engine, now=T0, settings=settings, sms_config=sms.config("46elks"))
    queue_sms(demo_engine, key="sms:twilio", return_id=return_id)
    dispatch_due(demo_engine, now=T0, settings=settings, sms_config=sms.config("twilio"))
    elks, twilio = (r.message_id for r in sms.accepted)
    return return_id, elks, twilio


@pytest.fixture
def app_client(settings, demo_engine, monkeypatch):
    monkeypatch.setenv("SMS_WEBHOOK_SECRET", "elks-report-secret-0123456789")
    monkeypatch.setenv("SMS_PROVIDER", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", TWILIO_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    with TestClient(create_app(settings, demo_engine), base_url="http://testserver.local") as c:
        yield c


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def reports(engine, provider_id: str) -> list[str]:
    with Session(engine) as s:
        return [e.kind for e in s.exec(select(DeliveryEvent).where(DeliveryEvent.provider_message_id == provider_id)
                                       .order_by(DeliveryEvent.id))]


def test_46elks_report_with_the_secret_is_stored_once(app_client, demo_engine, sent_sms):
    _, elks, _ = sent_sms
    body = urlencode({"id": elks, "status": "delivered", "delivered": "2030-03-04T09:00:05"})
    r = app_client.post("/webhooks/sms/46elks?secret=elks-report-secret-0123456789", content=body, headers=FORM)
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] is True and r.json()["kind"] == "delivered"
    again = app_client.post("/webhooks/sms/46elks?secret=elks-report-secret-0123456789", content=body, headers=FORM)
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert reports(demo_engine, elks) == ["sent", "delivered"]


@pytest.mark.parametrize("query", ["", "?secret=wrong", "?secret=elks-report-secret-012345678"])
def test_46elks_report_without_the_right_secret_is_refused(app_client, demo_engine, sent_sms, query):
    _, elks, _ = sent_sms
    r = app_client.post(f"/webhooks/sms/46elks{query}", content=urlencode({"id": elks, "status": "delivered"}),
                        headers=FORM)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["status"] == 401
    assert reports(demo_engine, elks) == ["sent"]


def test_46elks_report_for_an_unknown_id_is_404(app_client, sent_sms):
    r = app_client.post("/webhooks/sms/46elks?secret=elks-report-secret-0123456789",
                        content=urlencode({"id": "s-nobody", "status": "delivered"}), headers=FORM)
    assert r.status_code == 404 and "s-nobody" in r.json()["detail"]


def test_46elks_intermediate_status_and_missing_fields(app_client, demo_engine, sent_sms):
    _, elks, _ = sent_sms
    url = "/webhooks/sms/46elks?secret=elks-report-secret-0123456789"
    r = app_client.post(url, content=urlencode({"id": elks, "status": "sent"}), headers=FORM)
    assert r.status_code == 200 and r.json()["recorded"] is False
    r = app_client.post(url, content=urlencode({"status": "delivered"}), headers=FORM)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "id"
    assert reports(demo_engine, elks) == ["sent"]


def test_twilio_report_with_a_good_signature_failed_goes_to_the_timeline(app_client, demo_engine, sent_sms):
    return_id, _, sid = sent_sms
    params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003", "AccountSid": TWILIO_SID}
    url = "http://testserver.local/webhooks/sms/twilio"
    signature = twilio_signature(TWILIO_TOKEN, url, params)
    r = app_client.post("/webhooks/sms/twilio", content=urlencode(params),
                        headers={**FORM, "X-Twilio-Signature": signature})
    assert r.status_code == 200, r.text
    assert r.json() == {"recorded": True, "kind": "failed", "outbox_id": r.json()["outbox_id"]}
    assert reports(demo_engine, sid) == ["sent", "failed"]
    failed = [e for e in timeline(demo_engine, return_id) if e.type == "notification.failed"]
    assert len(failed) == 1 and failed[0].data["ErrorCode"] == "30003"


def test_twilio_report_with_a_bad_signature_is_refused(app_client, demo_engine, sent_sms):
    _, _, sid = sent_sms
    params = {"MessageSid": sid, "MessageStatus": "delivered"}
    url = "http://testserver.local/webhooks/sms/twilio"
    forged = twilio_signature("not-the-token", url, params)
    tampered = twilio_signature(TWILIO_TOKEN, url, {"MessageSid": sid, "MessageStatus": "failed"})
    for headers in ({"X-Twilio-Signature": forged}, {"X-Twilio-Signature": tampered}, {}):
        r = app_client.post("/webhooks/sms/twilio", content=urlencode(params), headers={**FORM, **headers})
        assert r.status_code == 401 and r.json()["title"] == "The delivery report is not authenticated"
    assert reports(demo_engine, sid) == ["sent"]


def test_unknown_provider_is_404(app_client):
    r = app_client.post("/webhooks/sms/nexmo", content="id=1&status=delivered", headers=FORM)
    assert r.status_code == 404

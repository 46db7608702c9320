"""The outbox dispatcher against real servers on loopback: a webhook receiver that checks signatures,
an SMTP server (aiosmtpd), the mail folder, backoff with a clock we control, leases and two workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from portal.models import OutboxMessage, WebhookEndpoint
from portal.outbox import dispatcher, endpoints
from portal.outbox.dispatcher import MAX_ATTEMPTS, backoff_delay, claim_due, dispatch_due
from portal.outbox.service import enqueue, enqueue_webhook_event
from tests.integration.outbox_helpers import free_port, running_receiver, running_smtp

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)  # our clock: far from the real one on purpose


@pytest.fixture
def receiver():
    with running_receiver() as r:
        yield r


def add_endpoint(engine, url: str, types=("return.registered",), active: bool = True) -> tuple[int, str]:
    with Session(engine) as s:
        endpoint, secret = endpoints.create_endpoint(s, url, list(types), "test", "test@shop.example")
        endpoint.active = active
        s.commit()
        return endpoint.id, secret


def queue_event(engine, event_type: str = "return.registered", unique: str = "1", data: dict | None = None) -> list[int]:
    with Session(engine) as s:
        queued = enqueue_webhook_event(s, event_type, data or {"rma": "R4KX9P2T"}, unique=unique)
        for m in queued:  # due at our clock's start, not at the real "now"
            m.next_attempt_at = T0
        s.commit()
        return [m.id for m in queued]


def queue_email(engine, to: str = "anna.svensson@example.se", key: str = "mail:1", html: bool = True) -> int:
    payload = {"subject": "Vi har tagit emot din retur R4KX9P2T", "text": "Hej Anna,\nvi har tagit emot paketet."}
    if html:
        payload["html"] = "<p>Hej Anna,</p><p>vi har tagit emot <b>paketet</b>.</p>"
    with Session(engine) as s:
        m = enqueue(s, key=key, channel="email", destination=to, event_type="return.received", payload=payload,
                    not_before=T0)
        s.commit()
        return m.id


def row(engine, message_id: int) -> OutboxMessage:
    with Session(engine) as s:
        return s.get(OutboxMessage, message_id)


# --- Webhooks ------------------------------------------------------------------------------


def test_webhook_is_signed_sent_once_and_marked_sent(engine, settings, receiver):
    endpoint_id, secret = add_endpoint(engine, receiver.url)
    receiver.secret = secret
    [mid] = queue_event(engine, data={"rma": "R4KX9P2T", "amount_minor": 49900})

    before = dispatch_due(engine, now=T0 - timedelta(seconds=1), settings=settings)
    assert before.claimed == 0 and receiver.requests == []  # not due yet

    report = dispatch_due(engine, now=T0, settings=settings)
    assert (report.claimed, report.sent) == (1, 1)
    [got] = receiver.requests
    assert got.signature_ok, got.signature_error
    body = json.loads(got.body)
    assert body["type"] == "return.registered" and body["data"] == {"rma": "R4KX9P2T", "amount_minor": 49900}
    assert got.headers["x-portal-event"] == "return.registered"
    assert got.headers["x-portal-delivery"] == f"webhook:{endpoint_id}:return.registered:1"
    assert got.headers["content-type"] == "application/json"
    m = row(engine, mid)
    assert (m.state, m.attempts, m.last_error) == ("sent", 1, "") and m.sent_at is not None

    again = dispatch_due(engine, now=T0 + timedelta(days=1), settings=settings)
    assert again.claimed == 0 and len(receiver.requests) == 1


def test_server_error_is_retried_with_backoff_then_sent(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    receiver.script = [500]
    [mid] = queue_event(engine)

    first = dispatch_due(engine, now=T0, settings=settings)
    assert (first.retried, first.sent) == (1, 0)
    m = row(engine, mid)
    assert m.state == "failed" and m.attempts == 1 and "HTTP 500" in m.last_error
    assert T0 + timedelta(seconds=22.5) <= m.next_attempt_at <= T0 + timedelta(seconds=30)

    early = dispatch_due(engine, now=T0 + timedelta(seconds=20), settings=settings)
    assert early.claimed == 0 and len(receiver.requests) == 1

    second = dispatch_due(engine, now=m.next_attempt_at, settings=settings)
    assert second.sent == 1
    m = row(engine, mid)
    assert (m.state, m.attempts, m.last_error) == ("sent", 2, "")
    first_try, retry = receiver.requests
    assert first_try.body == retry.body  # the same delivery, byte for byte
    assert first_try.headers["x-portal-delivery"] == retry.headers["x-portal-delivery"]
    assert retry.signature_ok


@pytest.mark.parametrize("status", [400, 410, 301])
def test_client_error_goes_to_the_dead_letter_at_once(engine, settings, receiver, status):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    receiver.script = [status]
    [mid] = queue_event(engine)
    report = dispatch_due(engine, now=T0, settings=settings)
    assert report.dead == 1
    m = row(engine, mid)
    assert m.state == "dead" and m.attempts == 1 and f"HTTP {status}" in m.last_error
    assert dispatch_due(engine, now=T0 + timedelta(days=2), settings=settings).claimed == 0
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 503])
def test_retryable_statuses_are_temporary(engine, settings, receiver, status):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    receiver.script = [status]
    [mid] = queue_event(engine)
    dispatch_due(engine, now=T0, settings=settings)
    m = row(engine, mid)
    assert m.state == "failed" and f"HTTP {status}" in m.last_error


def test_timeout_is_temporary(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    receiver.script = [("sleep", 1.5)]
    [mid] = queue_event(engine)
    started = time.monotonic()
    report = dispatch_due(engine, now=T0, settings=settings, webhook_timeout_s=0.4)
    assert time.monotonic() - started < 1.4  # we did not wait for the slow receiver
    assert report.retried == 1
    m = row(engine, mid)
    assert m.state == "failed" and "timeout" in m.last_error


def test_connection_refused_is_temporary(engine, settings):
    add_endpoint(engine, f"http://127.0.0.1:{free_port()}/nobody-listens")
    [mid] = queue_event(engine)
    report = dispatch_due(engine, now=T0, settings=settings)
    assert report.retried == 1
    m = row(engine, mid)
    assert m.state == "failed" and m.attempts == 1 and m.last_error


def test_gives_up_after_eight_attempts_with_growing_delays(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    receiver.script = [500] * 20
    [mid] = queue_event(engine)
    now = T0
    delays = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report = dispatch_due(engine, now=now, settings=settings)
        assert report.claimed == 1, attempt
        m = row(engine, mid)
        assert m.attempts == attempt
        if attempt < MAX_ATTEMPTS:
            assert m.state == "failed"
            delays.append((m.next_attempt_at - now).total_seconds())
            now = m.next_attempt_at
    assert m.state == "dead" and "HTTP 500" in m.last_error
    assert len(receiver.requests) == MAX_ATTEMPTS
    for attempt, delay in enumerate(delays, start=1):
        cap = min(30 * 2 ** (attempt - 1), 3600)
        assert 0.75 * cap <= delay <= cap, (attempt, delay)
    assert dispatch_due(engine, now=now + timedelta(days=1), settings=settings).claimed == 0


def test_backoff_is_capped_at_an_hour():
    assert backoff_delay(1, rand=lambda: 1.0) == 30
    assert backoff_delay(2, rand=lambda: 1.0) == 60
    assert backoff_delay(7, rand=lambda: 1.0) == 1920
    assert backoff_delay(8, rand=lambda: 1.0) == 3600 and backoff_delay(30, rand=lambda: 1.0) == 3600
    assert backoff_delay(3, rand=lambda: 0.0) == 90


def test_deactivated_endpoint_is_not_sent_to(engine, settings, receiver):
    endpoint_id, receiver.secret = add_endpoint(engine, receiver.url)
    [mid] = queue_event(engine)
    with Session(engine) as s:
        s.get(WebhookEndpoint, endpoint_id).active = False
        s.commit()
    report = dispatch_due(engine, now=T0, settings=settings)
    assert report.dead == 1 and receiver.requests == []
    assert "deactivated" in row(engine, mid).last_error


def test_crashed_worker_lease_runs_out_and_the_row_is_sent_later(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    [mid] = queue_event(engine)
    [claimed] = claim_due(engine, T0)  # a worker claims it, then dies before sending
    assert claimed.id == mid and claimed.attempts == 1
    assert row(engine, mid).state == "sending"
    assert dispatch_due(engine, now=T0 + timedelta(seconds=30), settings=settings).claimed == 0  # still leased
    report = dispatch_due(engine, now=T0 + timedelta(seconds=61), settings=settings)
    assert report.sent == 1 and len(receiver.requests) == 1
    m = row(engine, mid)
    assert (m.state, m.attempts) == ("sent", 2)


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_outcome(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url)
    [mid] = queue_event(engine)
    [stale] = claim_due(engine, T0)
    assert dispatch_due(engine, now=T0 + timedelta(seconds=61), settings=settings).sent == 1  # the next worker
    assert dispatcher._finish(engine, stale, state="failed", last_error="stale worker") is False
    m = row(engine, mid)
    assert m.state == "sent" and m.last_error == ""


def test_rows_beyond_the_lease_budget_are_released_not_sent_late(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url, types=("*",))
    ids = [queue_event(engine, unique=str(i))[0] for i in range(3)]
    receiver.script = [("sleep", 0.5)] * 3
    # lease 2 s, each webhook may take 0.5 + 5 s margin: none fits, all go back unsent and uncounted
    report = dispatch_due(engine, now=T0, settings=settings, webhook_timeout_s=0.5, lease_s=2)
    assert report.released == 3 and receiver.requests == []
    assert {(row(engine, i).state, row(engine, i).attempts) for i in ids} == {("pending", 0)}
    assert dispatch_due(engine, now=T0, settings=settings).sent == 3


def test_sms_rows_wait_for_an_sms_sender(engine, settings):
    with Session(engine) as s:
        m = enqueue(s, key="sms:1", channel="sms", destination="+46701234567", event_type="return.received",
                    payload={"text": "Hej"}, not_before=T0)
        s.commit()
        mid = m.id
    assert dispatch_due(engine, now=T0 + timedelta(hours=1), settings=settings).claimed == 0
    assert row(engine, mid).state == "pending"


def test_two_workers_at_once_never_send_a_row_twice(engine, settings, receiver):
    _, receiver.secret = add_endpoint(engine, receiver.url, types=("*",))
    ids = [queue_event(engine, unique=str(i))[0] for i in range(40)]
    start = threading.Barrier(2)
    reports: list = []
    errors: list = []

    def work():
        try:
            start.wait()
            while True:
                report = dispatch_due(engine, now=T0, limit=3, settings=settings)
                reports.append(report)
                if report.claimed == 0:
                    return
        except Exception as exc:  # pragma: no cover - shown in the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    deliveries = [r.headers["x-portal-delivery"] for r in receiver.requests]
    assert len(deliveries) == len(set(deliveries)) == 40
    assert sum(r.sent for r in reports) == 40
    with Session(engine) as s:
        rows = s.exec(select(OutboxMessage).where(OutboxMessage.id.in_(ids))).all()
        assert {(m.state, m.attempts) for m in rows} == {("sent", 1)}


# --- E-mail --------------------------------------------------------------------------------


def _parts(raw: bytes):
    msg = message_from_bytes(raw, policy=policy.default)
    return msg, msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_email_over_smtp_with_a_stable_message_id_across_a_retry(demo_engine, settings):
    with running_smtp() as (sink, port):
        smtp_settings = replace(settings, smtp_url=f"smtp://127.0.0.1:{port}")
        sink.data_replies = ["451 4.3.0 Mailbox busy, try later"]
        mid = queue_email(demo_engine)

        first = dispatch_due(demo_engine, now=T0, settings=smtp_settings)
        assert first.retried == 1
        m = row(demo_engine, mid)
        assert m.state == "failed" and "451" in m.last_error

        second = dispatch_due(demo_engine, now=m.next_attempt_at, settings=smtp_settings)
        assert second.sent == 1
        assert row(demo_engine, mid).state == "sent"

    assert len(sink.received) == 2
    (refused, _, _), (msg, text, html) = _parts(sink.received[0]), _parts(sink.received[1])
    assert msg["Message-ID"] == refused["Message-ID"] == f"<outbox-{mid}@testserver.local>"
    assert msg["Subject"] == "Vi har tagit emot din retur R4KX9P2T"
    assert msg["To"] == "anna.svensson@example.se"
    assert "vi har tagit emot paketet." in text and "<b>paketet</b>" in html
    assert msg.get_content_type() == "multipart/alternative"
    assert sink.envelopes[1][1] == ["anna.svensson@example.se"]
    with Session(demo_engine) as s:
        from portal.returns.service import get_policy
        assert get_policy(s).support_email in msg["From"]


def test_smtp_5xx_is_permanent(engine, settings):
    with running_smtp() as (sink, port):
        sink.rcpt_reply = "550 5.1.1 No such user here"
        mid = queue_email(engine, to="nobody@example.se")
        report = dispatch_due(engine, now=T0, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    assert report.dead == 1
    m = row(engine, mid)
    assert m.state == "dead" and "550" in m.last_error and sink.received == []


def test_smtp_server_down_is_temporary(engine, settings):
    mid = queue_email(engine)
    report = dispatch_due(engine, now=T0, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}"),
                          smtp_timeout_s=2)
    assert report.retried == 1
    m = row(engine, mid)
    assert m.state == "failed" and "SMTP" in m.last_error


def test_bad_email_payload_is_dead(engine, settings):
    with Session(engine) as s:
        m = enqueue(s, key="mail:bad", channel="email", destination="anna@example.se", event_type="x",
                    payload={"text": "no subject"}, not_before=T0)
        s.commit()
        mid = m.id
    assert dispatch_due(engine, now=T0, settings=settings).dead == 1
    assert "subject" in row(engine, mid).last_error


def test_mail_folder_without_smtp(engine, settings):
    assert settings.smtp_url == ""
    mid = queue_email(engine)
    report = dispatch_due(engine, now=T0, settings=settings)
    assert report.sent == 1
    files = sorted(Path(settings.mail_dir).iterdir())
    assert [f.name for f in files] == [f"outbox-{mid}.eml"]  # no temporary files left behind
    msg, text, html = _parts(files[0].read_bytes())
    assert msg["Message-ID"] == f"<outbox-{mid}@testserver.local>"
    assert msg["Subject"].startswith("Vi har tagit emot") and "paketet" in text and "<b>paketet</b>" in html


# --- The worker process ------------------------------------------------------------------------


def _worker_env(database_url: str, settings) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SMTP_URL", "PORTAL_ENV")}
    env.update(DATABASE_URL=database_url, MAIL_DIR=str(settings.mail_dir), BASE_URL="http://testserver.local",
               SMTP_URL="")
    return env


def test_worker_process_sends_and_stops_on_sigterm(engine, settings, database_url):
    with Session(engine) as s:
        enqueue(s, key="mail:worker", channel="email", destination="ola@example.no", event_type="return.received",
                payload={"subject": "Returen er mottatt", "text": "Hei Ola"})
        s.commit()
    proc = subprocess.Popen([sys.executable, "-m", "portal.cli", "worker", "--interval", "1"],
                            env=_worker_env(database_url, settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(Path(settings.mail_dir).glob("*.eml")):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Worker started: outbox every 1 s" in out and "Worker stopped." in out
    assert "sent to ola@example.no" in err  # the log line of what it sent
    [eml] = Path(settings.mail_dir).glob("*.eml")
    assert "Returen er mottatt" in eml.read_text()
    with Session(engine) as s:
        assert s.exec(select(OutboxMessage.state)).all() == ["sent"]


def test_worker_once(engine, settings, database_url, monkeypatch):
    queue_email(engine)
    with Session(engine) as s:  # due now, for a worker using the real clock
        s.exec(select(OutboxMessage)).one().next_attempt_at = datetime.now(timezone.utc)
        s.commit()
    for key, value in _worker_env(database_url, settings).items():
        monkeypatch.setenv(key, value)
    from portal.cli import main
    from portal.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["worker", "--once"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "1 messages handled" in result.output
    assert len(list(Path(settings.mail_dir).glob("*.eml"))) == 1


def test_scheduler_has_the_dispatcher_and_the_periodic_jobs(engine, settings):
    from portal.jobs.scheduler import start_scheduler

    scheduler = start_scheduler(engine, settings, interval_s=2)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=True)
    assert {"outbox-dispatch", "norway-cutoffs", "norway-storage-check", "ecb-rates"} <= set(jobs)
    dispatch = jobs["outbox-dispatch"]
    assert dispatch.max_instances == 1 and dispatch.coalesce and dispatch.trigger.interval == timedelta(seconds=2)


def test_a_periodic_job_runs_in_one_worker_at_a_time(engine):
    from portal.jobs.scheduler import guarded, job_lock

    calls = []
    with job_lock(engine, "demo-job") as first:
        assert first
        ran_meanwhile = guarded("demo-job", lambda e, now: calls.append(now), engine)
    if engine.dialect.name == "postgresql":
        assert ran_meanwhile is False and calls == []  # the other worker holds it
    assert guarded("demo-job", lambda e, now: calls.append(now), engine) is True
    assert len(calls) == (1 if engine.dialect.name == "postgresql" else 2)
    assert guarded("demo-job", lambda e, now: 1 / 0, engine) is False  # logged, not raised

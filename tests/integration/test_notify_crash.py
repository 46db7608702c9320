"""The crash test: a dispatcher process is SIGKILLed in the middle of a batch — once while an SMS is at the
provider, once while an e-mail is in the SMTP server's hands — and restarted; real SMTP (aiosmtpd) and a
real HTTP server playing 46elks on loopback, the database on a real file (and PostgreSQL in CI).

What "exactly once" means here (see portal/outbox/dispatcher.py):
- e-mail: every one of the 200 messages reaches the SMTP server, and after de-duplicating by Message-ID
  (stable per outbox row, as a receiving MTA or mail client does) each arrives exactly once. The only raw
  duplicate is the message whose DATA was accepted just as the worker died: it was never recorded as sent,
  so it goes again after the lease, with the same Message-ID.
- SMS: no phone gets a text twice, ever. The one whose worker died after the provider took it and before
  the answer was recorded is not sent again: it goes to the dead letter as "outcome unknown"; the other 49
  are sent exactly once and marked sent with the provider's id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

from sqlmodel import Session, select

from portal.models import DeliveryEvent, OutboxMessage, utcnow
from portal.outbox.dispatcher import UNKNOWN_OUTCOME
from portal.outbox.service import enqueue
from tests.integration.outbox_helpers import running_smtp
from tests.integration.sms_helpers import ELKS_PASSWORD, ELKS_USER, running_sms_provider

EMAILS, SMSES = 200, 50
KILL_AT_SMS, KILL_AT_EMAIL = 20, 120
LEASE_S = 10  # short, so the restarted worker reclaims the interrupted rows soon (budget 1 s + 5 s margin)

WORKER = """
import sys, time
from portal.config import get_settings
from portal.db import make_engine
from portal.outbox.dispatcher import dispatch_due
settings = get_settings()
engine = make_engine(settings.database_url)
print("worker up", flush=True)
while True:
    report = dispatch_due(engine, limit=25, settings=settings, lease_s=%d, smtp_timeout_s=1, webhook_timeout_s=1)
    print(report, file=sys.stderr, flush=True)
    if not report.claimed:
        time.sleep(0.2)
""" % LEASE_S


def _queue(engine) -> tuple[list[int], list[int]]:
    emails, smses = [], []
    with Session(engine) as s:
        now = utcnow()
        for i in range(EMAILS):
            m = enqueue(s, key=f"crash:mail:{i}", channel="email", destination=f"kund{i}@example.se",
                        event_type="return.received", not_before=now,
                        payload={"subject": f"Retur {i} mottagen", "text": f"Hej kund {i}!"})
            emails.append(m)
            if i % 4 == 3 and len(smses) < SMSES:  # interleave: four e-mails, one SMS
                smses.append(enqueue(s, key=f"crash:sms:{len(smses)}", channel="sms", not_before=now,
                                     destination=f"+4670123{len(smses):04d}", event_type="return.received",
                                     payload={"text": f"SMS {len(smses)}"}))
        s.commit()
        return [m.id for m in emails], [m.id for m in smses]


def _start(env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, stderr=open(os.environ.get("CRASH_LOG", os.devnull), "a"),
                            text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout.readline().strip() == "worker up"
    return proc


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what} ({predicate.__doc__ or ''})"
        if proc is not None:
            assert proc.poll() is None or proc.returncode == -signal.SIGKILL, "the worker exited on its own"
        time.sleep(0.05)


def test_killed_dispatcher_delivers_every_email_once_and_no_sms_twice(engine, settings, database_url):
    email_ids, sms_ids = _queue(engine)
    assert len(sms_ids) == SMSES
    current: dict = {}
    killed: dict = {}

    def kill(what: str, key) -> None:
        os.kill(current["proc"].pid, signal.SIGKILL)  # no clean-up, no outcome recorded
        killed[what] = key

    with running_smtp() as (sink, port), running_sms_provider() as sms:
        original_data = sink.handle_DATA

        async def data_then_maybe_kill(server, session, envelope):
            reply = await original_data(server, session, envelope)  # the server has the message now
            if len(sink.received) == KILL_AT_EMAIL and "email" not in killed:
                msg = message_from_bytes(envelope.content, policy=policy.default)
                kill("email", msg["Message-ID"])
            return reply

        sink.handle_DATA = data_then_maybe_kill

        def sms_then_maybe_kill(item) -> None:  # the provider took the SMS; the worker dies before the answer
            if len(sms.accepted) == KILL_AT_SMS and "sms" not in killed:
                kill("sms", item.form["message"])

        sms.observer = sms_then_maybe_kill
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "NOTIFY_", "TWILIO_"))}
        env.update(DATABASE_URL=database_url, SMTP_URL=f"smtp://127.0.0.1:{port}", BASE_URL="http://testserver.local",
                   PORTAL_ENV="development", EMBEDDED_WORKER="0", SMS_PROVIDER="46elks", SMS_API_URL=sms.url,
                   SMS_USERNAME=ELKS_USER, SMS_PASSWORD=ELKS_PASSWORD, SMS_SENDER="Butiken",
                   NOTIFY_QUIET_HOURS="00:00-00:00")  # no quiet hours: the test must not depend on the hour

        runs = 0
        try:
            while True:  # run until everything is final, restarting the worker after each kill
                kills_before = len(killed)
                current["proc"] = proc = _start(env)
                runs += 1
                _wait(lambda: len(killed) > kills_before or _all_final(engine), 120,
                      f"a kill or the end (run {runs}, killed {killed}, {len(sink.received)} mails, "
                      f"{len(sms.accepted)} SMS)", proc)
                if len(killed) > kills_before:
                    proc.wait(timeout=10)
                    assert proc.returncode == -signal.SIGKILL
                    continue
                break
        finally:
            for p in [current.get("proc")]:
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)

        received = list(sink.received)
        accepted = list(sms.accepted)

    assert runs == 3 and set(killed) == {"email", "sms"}

    # E-mail: every message arrived; the only raw duplicate is the one in the server's hands at the kill.
    ids = Counter(message_from_bytes(raw, policy=policy.default)["Message-ID"] for raw in received)
    expected = {f"<outbox-{i}@testserver.local>" for i in email_ids}
    assert set(ids) == expected
    assert {mid: n for mid, n in ids.items() if n > 1} == {killed["email"]: 2}
    assert len(received) == EMAILS + 1
    with Session(engine) as s:
        states = Counter(s.exec(select(OutboxMessage.state).where(OutboxMessage.channel == "email")).all())
    assert states == {"sent": EMAILS}

    # SMS: no text twice; the interrupted one is in the dead letter, not re-sent; the rest sent once.
    texts = Counter(r.form["message"] for r in accepted)
    assert max(texts.values()) == 1
    assert set(texts) == {f"SMS {i}" for i in range(SMSES)}
    with Session(engine) as s:
        rows = {m.payload["text"]: m for m in s.exec(select(OutboxMessage).where(OutboxMessage.channel == "sms"))}
        interrupted = rows.pop(killed["sms"])
        assert (interrupted.state, interrupted.last_error) == ("dead", UNKNOWN_OUTCOME)
        assert {m.state for m in rows.values()} == {"sent"}
        provider_ids = {r.form["message"]: r.message_id for r in accepted}
        sent_events = s.exec(select(DeliveryEvent).where(DeliveryEvent.kind == "sent",
                                                         DeliveryEvent.provider_message_id.is_not(None))).all()
        by_outbox = {e.outbox_id: e.provider_message_id for e in sent_events}
        assert {text: by_outbox[m.id] for text, m in rows.items()} == {t: provider_ids[t] for t in rows}


def _all_final(engine) -> bool:
    with Session(engine) as s:
        return not s.exec(select(OutboxMessage.id).where(OutboxMessage.state.not_in(("sent", "dead")))).first()

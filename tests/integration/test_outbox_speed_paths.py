"""The dispatcher's fast paths keep its promises: one SMTP connection per batch, each message's outcome
committed before the relay has the next one (so a crash repeats at most the one in flight), the claim
reading only unsent rows, and the exact bytes sent matching what the mail folder gets."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from portal.models import DeliveryEvent, OutboxMessage
from portal.outbox.dispatcher import claim_due, dispatch_due, due_ids
from portal.outbox.service import enqueue
from tests.integration.outbox_helpers import running_smtp

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=timezone.utc)


def _queue(engine, n: int, prefix: str = "speed") -> list[int]:
    with Session(engine) as s:
        rows = [enqueue(s, key=f"{prefix}:{i}", channel="email", destination=f"kund{i}@example.se",
                        event_type="return.received", not_before=T0,
                        payload={"subject": f"Retur {i} mottagen – tack, Åsa!", "text": f"Hej {i}!\n.Återbetalning snart.\n.\n",
                                 "html": f"<p>Hej {i}!</p>"})
                for i in range(n)]
        s.commit()
        return [m.id for m in rows]


def test_one_connection_per_batch_and_each_outcome_committed_before_the_next_message(engine, settings):
    ids = _queue(engine, 12)
    seen_before: list[tuple[str, int]] = []

    with running_smtp() as (sink, port):
        original = sink.handle_DATA
        sessions = set()

        async def data_and_look(server, session, envelope):
            # The relay has a message: every earlier one of this batch must already be recorded as sent.
            sessions.add(id(session))
            message_id = message_from_bytes(envelope.content, policy=policy.default)["Message-ID"]
            with engine.connect() as conn:
                sent = conn.execute(sa.select(sa.func.count()).select_from(OutboxMessage.__table__)
                                    .where(OutboxMessage.__table__.c.state == "sent")).scalar()
            seen_before.append((message_id, sent))
            return await original(server, session, envelope)

        sink.handle_DATA = data_and_look
        report = dispatch_due(engine, now=T0, limit=12, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))

    assert report.sent == 12 and len(sink.received) == 12
    assert len(sessions) == 1  # connect and EHLO once for the batch
    assert [sent for _, sent in seen_before] == list(range(12))
    assert [mid for mid, _ in seen_before] == [f"<outbox-{i}@testserver.local>" for i in ids]
    with Session(engine) as s:
        events = s.exec(select(DeliveryEvent).where(DeliveryEvent.kind == "sent")).all()
    assert sorted(e.outbox_id for e in events) == ids
    assert all(e.detail == {"channel": "email", "attempt": 1} for e in events)


def test_smtp_and_mail_folder_get_the_same_message(engine, settings):
    [mid] = _queue(engine, 1, "same")
    with running_smtp() as (sink, port):
        dispatch_due(engine, now=T0, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    with Session(engine) as s:  # once more, to the folder (a retry after SMTP_URL was removed)
        s.get(OutboxMessage, mid).state = "pending"
        s.commit()
    dispatch_due(engine, now=T0 + timedelta(hours=1), settings=settings)
    over_smtp = message_from_bytes(sink.received[0], policy=policy.default)
    in_folder = message_from_bytes((settings.mail_dir / f"outbox-{mid}.eml").read_bytes(), policy=policy.default)
    for name in ("Message-ID", "Subject", "From", "To", "X-Portal-Delivery"):
        assert over_smtp[name] == in_folder[name], name
    assert over_smtp["Subject"] == "Retur 0 mottagen – tack, Åsa!"
    text = "Hej 0!\n.Återbetalning snart.\n.\n"  # lines starting with a dot: SMTP dot-stuffing round trip
    assert in_folder.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert over_smtp.get_body(("plain",)).get_content().replace("\r\n", "\n") == text


def test_claim_reads_only_unsent_rows_on_sqlite(engine, settings):
    """SQLite must not walk the channel index (all mail ever sent) to find the few due rows."""
    if engine.dialect.name != "sqlite":
        due = due_ids("postgresql", T0, 50, ("email",))
        assert "SKIP LOCKED" in str(due.compile(dialect=engine.dialect))
        return
    compiled = due_ids("sqlite", T0, 50, ("webhook", "email")).compile(dialect=engine.dialect,
                                                                       compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = " | ".join(row[3] for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_outbox_message_channel" not in plan and "ix_outbox_message_state" in plan, plan


def test_claim_still_filters_by_channel(engine, settings):
    _queue(engine, 2, "mail")
    with Session(engine) as s:
        enqueue(s, key="sms:0", channel="sms", destination="+46701234567", event_type="x", payload={"text": "t"},
                not_before=T0)
        s.commit()
    claimed = claim_due(engine, T0, 10, channel_names=("webhook", "email"))
    assert sorted(c.channel for c in claimed) == ["email", "email"]
    assert [c.channel for c in claim_due(engine, T0, 10, channel_names=("sms",))] == ["sms"]


def test_a_failed_outcome_write_stops_the_run_before_the_next_message_is_accepted(engine, settings):
    """The outcome is written in the background; if that write fails, the error surfaces at the next message's
    barrier (before DATA), so the relay never gets a message while an earlier outcome is unrecorded."""
    _queue(engine, 6, "fail")
    events = DeliveryEvent.__table__.name

    with running_smtp() as (sink, port):
        original = sink.handle_DATA

        async def data_then_break_the_log(server, session, envelope):
            reply = await original(server, session, envelope)
            if len(sink.received) == 3:  # a real database error for the third outcome's DeliveryEvent
                with engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE {events} RENAME TO {events}_gone"))
            return reply

        sink.handle_DATA = data_then_break_the_log
        try:
            with pytest.raises(sa.exc.DBAPIError):
                dispatch_due(engine, now=T0, limit=6, settings=replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {events}_gone RENAME TO {events}"))
        assert len(sink.received) == 3  # the fourth never reached DATA

    with Session(engine) as s:
        states = [m.state for m in s.exec(select(OutboxMessage).order_by(OutboxMessage.id))]
    # Two recorded; the third's write was rolled back whole, so it stays leased and goes again (same Message-ID).
    assert states == ["sent", "sent", "sending", "sending", "sending", "sending"]

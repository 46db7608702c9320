"""`portal backup`: a consistent, verified copy of the SQLite database while the portal writes; PostgreSQL is
sent to pg_dump (and the command it prints works)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from portal.db import ensure_migrated, head_revision, make_engine, session_scope
from portal.demo import load_demo
from portal.models import Order, OrderLine, OutboxMessage, Return, ReturnEvent, ReturnLine, utcnow
from portal.outbox.service import enqueue
from portal.returns.identifiers import new_rma, new_status_token
from tests.integration.conftest import run_cli


def _cli(args, database_url: str, monkeypatch):
    return run_cli(args, {"DATABASE_URL": database_url}, monkeypatch)


@pytest.fixture
def sqlite_db(sqlite_template, tmp_path):
    path = tmp_path / "portal.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    with session_scope(engine) as session:
        load_demo(session)
    now = utcnow()
    with engine.begin() as conn:  # ~25 MB of sent mail, so the copy takes long enough to overlap many writes
        conn.execute(sa.insert(OutboxMessage.__table__), [
            {"idempotency_key": f"filler-{i}", "channel": "email", "destination": "x@example.se", "event_type": "filler",
             "payload": {"text": "x" * 5000}, "state": "sent", "attempts": 1, "last_error": "",
             "next_attempt_at": now, "created_at": now}
            for i in range(5_000)])
    yield url, engine
    engine.dispose()


def _write_returns(engine, stop: threading.Event, written: list[float]) -> None:
    """What the portal does all day: one transaction = a return, its line, its event and an outbox message."""
    with Session(engine) as s:
        order = s.exec(sa.select(Order).where(Order.number == "SE-1001")).scalars().one()
        line_id = s.exec(sa.select(OrderLine.id).where(OrderLine.order_id == order.id)).scalars().first()
    while not stop.is_set():
        with session_scope(engine) as s:
            ret = Return(rma=new_rma(), order_id=order.id, status="registered", status_token=new_status_token(),
                         idempotency_key=uuid.uuid4().hex)
            s.add(ret)
            s.flush()
            s.add(ReturnLine(return_id=ret.id, order_line_id=line_id, quantity=1, reason="too_small"))
            s.add(ReturnEvent(return_id=ret.id, type="return.registered", actor="load", data={}))
            enqueue(s, key=f"load:{ret.id}", channel="email", destination="anna.svensson@example.se",
                    event_type="load", payload={"text": "hej"}, return_id=ret.id)
        written.append(time.monotonic())


def _count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def test_backup_while_the_portal_writes_is_consistent_and_verified(sqlite_db, tmp_path, monkeypatch):
    url, engine = sqlite_db
    stop, written = threading.Event(), []
    writer = threading.Thread(target=_write_returns, args=(engine, stop, written), daemon=True)
    writer.start()
    try:
        while len(written) < 5:  # the writer is in full swing before the copy starts
            time.sleep(0.01)
        started = time.monotonic()
        result = _cli(["backup", str(tmp_path / "copy.db")], url, monkeypatch)
        finished = time.monotonic()
        time.sleep(0.2)
    finally:
        stop.set()
        writer.join(30)
    assert result.exit_code == 0, result.output
    during = [t for t in written if started <= t <= finished]
    assert len(during) >= 3, f"only {len(during)} writes overlapped the backup: the test proves nothing"

    copy = tmp_path / "copy.db"
    assert not list(tmp_path.glob("*.partial")) and not (tmp_path / "copy.db-wal").exists()
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        returns = _count(conn, "return")
        # Whole transactions only: every return copied has its line, its event and its outbox message.
        assert _count(conn, "return_line") == returns
        assert conn.execute("SELECT count(*) FROM return_event WHERE type = 'return.registered'").fetchone()[0] == returns
        assert conn.execute("SELECT count(*) FROM outbox_message WHERE event_type = 'load'").fetchone()[0] == returns
        printed = dict(re.findall(r"^\s+(\w+)\s+(\d+)$", result.output, re.MULTILINE))
        assert int(printed["return"]) == returns and int(printed["outbox_message"]) == _count(conn, "outbox_message")
        assert int(printed["total"]) == sum(int(v) for k, v in printed.items() if k != "total")
    finally:
        conn.close()
    with engine.connect() as live:
        final = live.execute(sa.select(sa.func.count()).select_from(Return.__table__)).scalar()
    assert 5 <= returns < final  # a snapshot from the middle of the writing
    size = copy.stat().st_size
    assert f"({size} bytes)" in result.output and "integrity_check ok" in result.output and f"migration {head_revision(url)}" in result.output

    copy_engine = make_engine(f"sqlite:///{copy}")
    try:
        ensure_migrated(copy_engine)  # what `portal serve` checks before it serves a database
    finally:
        copy_engine.dispose()
    served = _cli(["demo"], f"sqlite:///{copy}", monkeypatch)  # the copy is a working portal database
    assert served.exit_code == 0 and "already loaded" in served.output


def test_backup_never_overwrites_and_names_missing_things(sqlite_db, tmp_path, monkeypatch):
    url, _ = sqlite_db
    existing = tmp_path / "exists.db"
    existing.write_bytes(b"keep me")
    refused = _cli(["backup", str(existing)], url, monkeypatch)
    assert refused.exit_code == 1 and "already exists" in refused.output and existing.read_bytes() == b"keep me"
    no_folder = _cli(["backup", str(tmp_path / "nope" / "x.db")], url, monkeypatch)
    assert no_folder.exit_code == 1 and "does not exist" in no_folder.output
    missing = _cli(["backup", str(tmp_path / "y.db")], f"sqlite:///{tmp_path / 'absent.db'}", monkeypatch)
    assert missing.exit_code == 1 and "no database at" in missing.output and not (tmp_path / "y.db").exists()


def test_postgres_is_refused_with_a_pg_dump_command_that_works(postgres_url, tmp_path, monkeypatch):
    engine = make_engine(postgres_url)
    try:
        with session_scope(engine) as session:
            load_demo(session)
    finally:
        engine.dispose()
    dump = tmp_path / "portal.dump"
    result = _cli(["backup", str(dump)], postgres_url, monkeypatch)
    assert result.exit_code == 1 and "SQLite databases only" in result.output
    command = next(line.strip() for line in result.output.splitlines() if line.strip().startswith("pg_dump "))
    password = sa.engine.make_url(postgres_url).password
    assert not password or password not in result.output
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed here; the refusal was checked")
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    assert done.returncode == 0, done.stderr
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "TABLE DATA public orders" in listing.stdout

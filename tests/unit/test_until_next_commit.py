"""Answers kept until the next commit: SQLite's commit counter moves on every commit by any connection of any
process (and on nothing else), and the memo never keeps an answer read across a commit."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from portal.commit_counter import BatchedRead, PostgresSnapshotStamp, SQLiteCommitCounter, commit_counter
from portal.db import make_engine
from portal.returns.status_cache import UntilNextCommit


def run_async(coroutine):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "counter.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    yield path, writer
    writer.close()


def test_the_counter_moves_on_commits_by_other_connections_and_processes_only(database):
    path, writer = database
    counter = SQLiteCommitCounter(str(path))
    start = counter()
    assert counter() == start  # nothing committed
    writer.execute("INSERT INTO t VALUES (1)")
    after_insert = counter()
    assert after_insert != start
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (2)")
    assert counter() == after_insert  # not committed yet
    writer.execute("ROLLBACK")
    assert counter() == after_insert
    subprocess.run([sys.executable, "-c", f"import sqlite3; sqlite3.connect({str(path)!r}, isolation_level=None)"
                    ".execute('INSERT INTO t VALUES (3)')"], check=True)
    assert counter() != after_insert


def settles(read, tries: int = 5) -> bool:
    """Two reads in a row agree (on a shared test server another database's commit may come in between)."""
    return any(read() == read() for _ in range(tries))


@pytest.mark.postgres
def test_the_postgres_snapshot_moves_on_commits_only(postgres_url):
    engine = make_engine(postgres_url)
    stamp = commit_counter(engine)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS stamp_probe (x INTEGER)"))
        assert isinstance(stamp(), str) and settles(stamp)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM stamp_probe")).scalar()
            assert settles(stamp)  # reading commits nothing
            conn.execute(sa.text("INSERT INTO stamp_probe VALUES (1)"))
            in_progress = stamp()  # read while the writing transaction is open (what a request may see)
            conn.commit()
        assert stamp() != in_progress  # its commit moves it
        with engine.connect() as conn:
            conn.execute(sa.text("INSERT INTO stamp_probe VALUES (2)"))
            conn.rollback()
        assert settles(stamp)  # quiet again after a rollback
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS stamp_probe"))
        engine.dispose()
        run_async(stamp.aclose())


def test_an_unreadable_database_gives_no_counter_value(tmp_path):
    (tmp_path / "dir.db").mkdir()  # a directory where the database file should be
    assert SQLiteCommitCounter(str(tmp_path / "dir.db"))() is None


def test_only_file_sqlite_databases_have_a_counter(tmp_path):
    assert isinstance(commit_counter(make_engine(f"sqlite:///{tmp_path}/a.db")), SQLiteCommitCounter)
    assert commit_counter(sa.create_engine("sqlite://")) is None  # in memory: no file to watch
    assert isinstance(commit_counter(make_engine("postgresql://postgres@127.0.0.1:1/none")), PostgresSnapshotStamp)
    assert PostgresSnapshotStamp("postgresql://postgres@127.0.0.1:1/none")() is None  # unreachable: nothing kept


class Counter:
    """A commit counter the test moves by hand."""

    def __init__(self):
        self.value: int | None = 1

    def __call__(self) -> int | None:
        return self.value


def test_answers_are_kept_until_the_counter_moves():
    counter = Counter()
    memo = UntilNextCommit(counter)
    version = memo.version()
    memo.put("k", "answer", version)
    assert memo.get("k", memo.version()) == "answer"
    counter.value = 2
    assert memo.get("k", memo.version()) is None  # a commit: everything is forgotten
    assert memo.get("k", version) is None  # also under the old version


def test_an_answer_read_across_a_commit_is_not_kept():
    counter = Counter()
    memo = UntilNextCommit(counter)
    version = memo.version()  # read before the database ...
    counter.value = 2  # ... someone commits while the answer is being read ...
    memo.version()  # ... and another request notices
    memo.put("k", "maybe stale", version)
    assert memo.get("k", memo.version()) is None


def test_no_counter_keeps_nothing():
    for counter in (None, lambda: None):
        memo = UntilNextCommit(counter)
        version = memo.version()
        memo.put("k", "answer", version)
        assert memo.get("k", memo.version()) is None


def test_the_memo_is_bounded():
    memo = UntilNextCommit(Counter(), max_entries=3)
    version = memo.version()
    for i in range(10):
        memo.put(i, i, version)
    assert memo.get(9, version) == 9 and sum(memo.get(i, version) is not None for i in range(10)) <= 3


def test_callers_waiting_together_share_one_read_started_after_they_arrived():
    started: list[int] = []

    async def scenario():
        release = asyncio.Event()

        async def read():
            started.append(len(started) + 1)
            await release.wait()
            return len(started)

        batched = BatchedRead(read)
        first = asyncio.create_task(batched())
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # read 1 is in flight now
        later = [asyncio.create_task(batched()) for _ in range(10)]
        await asyncio.sleep(0)
        release.set()
        return await first, await asyncio.gather(*later)

    first, later = run_async(scenario())
    assert first == 1  # the first caller's read
    assert later == [2] * 10  # ten callers, one more read, which began after all of them had asked
    assert started == [1, 2]


def test_a_failed_read_answers_none_and_the_next_read_goes_ahead():
    calls = []

    async def read():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("connection refused")
        return "stamp"

    async def scenario():
        batched = BatchedRead(read)
        return await batched(), await batched()

    assert run_async(scenario()) == (None, "stamp")


@pytest.mark.postgres
def test_the_postgres_snapshot_reads_the_same_from_the_event_loop(postgres_url):
    stamp = commit_counter(make_engine(postgres_url))

    async def both():
        try:
            return await stamp.read_async(), await stamp.read_async(), stamp()
        finally:
            await stamp.aclose()

    assert any(len(set(run_async(both()))) == 1 for _ in range(5))
    assert run_async(PostgresSnapshotStamp("postgresql://postgres@127.0.0.1:1/none").read_async()) is None

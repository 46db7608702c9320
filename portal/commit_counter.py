"""Values that change whenever anything is committed to the database, by any process, and only then: answers
read from the database can be reused until the value moves (portal.returns.status_cache.UntilNextCommit)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Engine


class SQLiteCommitCounter:
    """`PRAGMA data_version` on a connection of its own that never writes: SQLite documents that it changes
    on commits by other connections, of this process or any other. A few microseconds, no query."""

    def __init__(self, path: str):
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int | None:
        """The current number; None when it cannot be read (then nothing may be reused)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
                return self._conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                self._conn = None
                return None

    async def read_async(self) -> int | None:
        return self()

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text"


class PostgresSnapshotStamp:
    """The server's current snapshot as text (`pg_current_snapshot()`: xmin, xmax and the transactions in
    progress). It changes whenever any transaction commits: its id leaves the in-progress list, or xmax moves
    past it; it stays the same while nobody commits, and never comes back to an earlier value. One round
    trip reading no table. Commits in other databases of the same server move it too (only costs a re-read).

    Worker threads read it on a connection of their own (`__call__`); the event loop reads it on an async
    connection, and requests waiting at the same time share one read that started after they all arrived
    (`read_async`), so 64 requests in flight cost one round trip, not 64."""

    def __init__(self, conninfo: str):
        self._conninfo = conninfo
        self._conn = None
        self._lock = threading.Lock()
        self._async_conn = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._batched = BatchedRead(self._read_on_async_connection)

    def __call__(self) -> str | None:
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                return self._conn.execute(SNAPSHOT_SQL).fetchone()[0]
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                return None

    async def read_async(self) -> str | None:
        return await self._batched()

    async def aclose(self) -> None:
        """Close both connections (from the event loop that read on the async one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        conn, self._async_conn = self._async_conn, None
        if conn is not None and not conn.closed and self._async_loop is asyncio.get_running_loop():
            await conn.close()

    async def _read_on_async_connection(self) -> str | None:
        import psycopg

        loop = asyncio.get_running_loop()
        try:
            if self._async_conn is None or self._async_conn.closed or self._async_loop is not loop:
                self._async_conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                                         connect_timeout=5)
                self._async_loop = loop
            cursor = await self._async_conn.execute(SNAPSHOT_SQL)
            return (await cursor.fetchone())[0]
        except (psycopg.Error, OSError):  # reconnect next time; meanwhile nothing kept is used
            conn, self._async_conn = self._async_conn, None
            if conn is not None:
                await conn.close()
            return None


class BatchedRead:
    """Callers waiting at the same time share one call of `read`; each call starts after every caller it
    answers had arrived, so no caller gets a value read before it asked."""

    def __init__(self, read: Callable[[], Awaitable]):
        self._read = read
        self._waiting: list[asyncio.Future] = []
        self._busy = False

    async def __call__(self):
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._waiting.append(answer)
        if not self._busy:
            self._busy = True
            loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    value = await self._read()
                except Exception:  # noqa: BLE001 - a failed read only means "nothing may be reused"
                    value = None
                for answer in batch:
                    if not answer.done():  # a caller that gave up (client gone) is cancelled
                        answer.set_result(value)
        finally:
            self._busy = False


def commit_counter(engine: Engine) -> SQLiteCommitCounter | PostgresSnapshotStamp | None:
    """Something that changes on every commit to `engine`'s database; None for an in-memory SQLite."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresSnapshotStamp(url.set(drivername="postgresql").render_as_string(hide_password=False))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return SQLiteCommitCounter(url.database)

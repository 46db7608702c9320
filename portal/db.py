"""Engine, sessions and the migration gate."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class NotMigratedError(RuntimeError):
    """The database schema is behind the code."""


def normalise_url(url: str) -> str:
    """Accept the usual postgres:// spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Keep enough connections for every handler thread (a request may use two: its session and a rate
        # limit): connections beyond pool_size are closed on return, and opening one runs the pragmas again.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=16, max_overflow=16)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class SQLiteCommitCounter:
    """A number that changes whenever anything is committed to an SQLite database file, by any connection of
    any process: `PRAGMA data_version` on a connection of its own that never writes (SQLite documents that it
    changes on commits by other connections). A few microseconds, no query; lets answers read from the
    database be reused, without a query, until the next commit."""

    in_memory = True  # cheap enough to read in the event loop

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


class PostgresSnapshotStamp:
    """The server's current snapshot as text (`pg_current_snapshot()`: xmin, xmax and the transactions in
    progress). It changes whenever any transaction commits: its id leaves the in-progress list, or xmax moves
    past it; it stays the same while nobody commits. One round trip on a connection of its own, reading no
    table. Commits in other databases of the same server change it too (only costs a re-read)."""

    in_memory = False  # a round trip: read it in a worker thread, not in the event loop

    def __init__(self, conninfo: str):
        self._conninfo = conninfo
        self._conn = None
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                return self._conn.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                return None


def commit_counter(engine: Engine) -> SQLiteCommitCounter | PostgresSnapshotStamp | None:
    """Something that changes on every commit to `engine`'s database; None for an in-memory SQLite."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return PostgresSnapshotStamp(url.set(drivername="postgresql").render_as_string(hide_password=False))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return SQLiteCommitCounter(url.database)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    from alembic import command

    make_engine(url).dispose()  # creates the SQLite folder if needed
    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_migrated(engine: Engine) -> None:
    head = head_revision(str(engine.url))
    current = current_revision(engine)
    if current != head:
        raise NotMigratedError(
            f"The database at {engine.url.render_as_string(hide_password=True)} is at migration "
            f"{current or 'none (empty)'}, the code needs {head}. Run `portal migrate` first."
        )

"""`portal backup`: a consistent copy of the SQLite database while the portal keeps running, verified.

SQLite's online backup API copies the database from inside one read transaction: with WAL the
writers carry on, and the copy is the database as of that transaction's start (the row counts are
taken in the same transaction, so they must match the copy exactly). The copy is written next to
the target under a temporary name, checked (integrity_check, row counts, migration revision),
switched to a single-file journal mode and only then renamed into place.
PostgreSQL is refused with the pg_dump command to use instead.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from portal.db import current_revision, normalise_url


class BackupError(RuntimeError):
    """The backup cannot be made or did not verify; the message says why (and nothing is left behind)."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size_bytes: int
    counts: dict[str, int]  # table -> rows, identical in the source snapshot and the copy
    revision: str | None
    seconds: float


def pg_dump_advice(database_url: str, output: str) -> str:
    url = make_url(normalise_url(database_url))
    target = sa.engine.URL.create("postgresql", username=url.username, host=url.host, port=url.port,
                                  database=url.database, query=url.query).render_as_string(hide_password=False)
    return (
        "portal backup copies SQLite databases only; DATABASE_URL points to PostgreSQL. Use pg_dump, which takes "
        "a consistent snapshot while the portal runs:\n"
        f"  pg_dump --format=custom --no-owner --file={_quote(output)} {_quote(target)}\n"
        "Restore into an empty database with:\n"
        f"  pg_restore --no-owner --dbname={_quote(target)} {_quote(output)}\n"
        "(The password is left out: give it in PGPASSWORD or ~/.pgpass.)"
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def sqlite_path(database_url: str) -> Path:
    path = make_url(normalise_url(database_url)).database
    if not path or path == ":memory:":
        raise BackupError("DATABASE_URL names no SQLite file to back up.")
    return Path(path)


def backup_sqlite(database_url: str, output: Path) -> BackupReport:
    source = sqlite_path(database_url)
    if not source.is_file():
        raise BackupError(f"There is no database at {source}; nothing to back up.")
    output = Path(output)
    if output.exists():
        raise BackupError(f"{output} already exists; choose a new file name (a backup never overwrites).")
    if output.resolve() == source.resolve():
        raise BackupError("The backup must go to another file than the database itself.")
    if not output.parent.is_dir():
        raise BackupError(f"The folder {output.parent} does not exist.")
    partial = output.with_name(f".{output.name}.partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        counts = _copy(source, partial)
        revision = _verify(partial, counts)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(output, output.stat().st_size, counts, revision, time.monotonic() - started)


def _copy(source: Path, target: Path) -> dict[str, int]:
    """Count the rows and copy every page inside one read transaction: both see the same snapshot."""
    src = sqlite3.connect(source, timeout=30, isolation_level=None)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        src.execute("BEGIN")
        counts = _counts(src)
        src.backup(dst)  # all pages in one step: no restart when the portal writes meanwhile
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    except sqlite3.Error as exc:
        raise BackupError(f"Copying {source} failed: {exc}") from exc
    finally:
        src.close()
        dst.close()
    return counts


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


def _verify(copy: Path, expected: dict[str, int]) -> str | None:
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BackupError("The copy failed PRAGMA integrity_check: " + "; ".join(problems[:5]))
        found = _counts(conn)
    finally:
        conn.close()
    if found != expected:
        differ = sorted(t for t in expected.keys() | found.keys() if expected.get(t) != found.get(t))
        raise BackupError(f"The copy's row counts differ from the database's in: {', '.join(differ)}")
    engine = sa.create_engine(f"sqlite:///file:{copy}?mode=ro&uri=true")
    try:
        return current_revision(engine)
    finally:
        engine.dispose()

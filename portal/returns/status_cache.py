"""Render-once cache of the consumer status page, keyed by everything the page shows.

The status page is the portal's hot path (every e-mail and SMS links to it, consumers reload it). Building it
takes about ten ORM queries, the refund estimate and a Jinja render; a cached page costs one query instead:
`find_by_status_link` finds the return by RMA and reads, in the same statement, every row the page is made
from, as a digest:

- the return row itself and its order row (all columns);
- the order's lines, every return of the order with its lines (the estimate subtracts earlier returns);
- this return's timeline (events are append-only: count and highest id) and its refunds (all columns);
- the merchant policy (all columns but the logo bytes).

Together with the language, "just registered", the brand, the merchant's date and the process's settings this
is the cache key. The invariant: a change to anything the page shows changes the key, so a stale page is never
served, whichever process or job made the change and whether or not it bumped an `updated_at`. If the page
starts showing something new, add its rows to `_stamp_query` (tests/integration/test_status_cache.py checks each
kind of change). A page is rendered after its stamp was read, so it is never older than its key.
The CSRF field differs per visitor: pages are stored with a marker in its place.

Even that query is skipped while nothing has been committed: `UntilNextCommit` keeps the link (and "this
client has no recorded misses") until the database's commit counter moves, which it does on any commit by any
process. On SQLite the counter is read without a query, so an unchanged page is answered from memory in the
event loop; on PostgreSQL it is one round trip reading no table (tests/integration/test_status_cache.py
counts the statements).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from portal.models import MerchantPolicy, Order, OrderLine, Refund, Return, ReturnEvent, ReturnLine
from portal.returns import identifiers

CSRF_MARKER = f"<!--csrf-input-{secrets.token_hex(8)}-->"  # per process: no template can contain it by chance
MAX_PAGES = 2000  # per process; a page is about 5 kB

_r, _o, _ol = Return.__table__, Order.__table__, OrderLine.__table__
_rl, _ev, _rf, _mp = ReturnLine.__table__, ReturnEvent.__table__, Refund.__table__, MerchantPolicy.__table__


def _joined(columns) -> sa.ColumnElement:
    """col1:col2:… as text (NULL as empty), for a digest of rows that may be updated in place."""
    parts = [sa.func.coalesce(sa.cast(c, sa.String), "") for c in columns if not isinstance(c.type, sa.LargeBinary)]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + ":" + part
    return joined


def _rows(table: sa.Table, *where, joined_to=None) -> sa.ScalarSelect:
    """All columns of the matching rows as one string (row order may vary: that only costs a miss)."""
    rows = sa.select(sa.func.aggregate_strings(_joined(table.c), "|"))
    if joined_to is not None:
        rows = rows.select_from(table.join(*joined_to))
    return rows.where(*where).scalar_subquery()


def _stamp_query() -> sa.Select:
    """The return found by RMA, with a digest source of every row its status page is made from."""
    ret = _r.alias("ret")
    # A placeholder for sa.text(): the statement is compiled to SQL once per dialect (see _stamp_statement).
    rma = sa.literal_column(":rma", sa.String)
    other = _r.alias("other")
    return sa.select(
        ret.c.id, ret.c.order_id, ret.c.status_token, ret.c.language,
        _rows(_r, _r.c.order_id == ret.c.order_id),  # this return and the order's others (the estimate uses them)
        _rows(_o, _o.c.id == ret.c.order_id),
        _rows(_ol, _ol.c.order_id == ret.c.order_id),
        # A join, not IN (subquery): PostgreSQL would hash every return for the IN.
        _rows(_rl, other.c.order_id == ret.c.order_id, joined_to=(other, other.c.id == _rl.c.return_id)),
        sa.select(sa.func.count()).select_from(_ev).where(_ev.c.return_id == ret.c.id).scalar_subquery(),
        sa.select(sa.func.max(_ev.c.id)).where(_ev.c.return_id == ret.c.id).scalar_subquery(),
        _rows(_rf, _rf.c.return_id == ret.c.id),
        _rows(_mp),  # one row; its logo bytes are left out (the brand is part of the key)
    ).where(ret.c.rma == rma)


_compiled: dict[str, sa.TextClause] = {}  # per dialect: the statement is large, compile it once


def _stamp_statement(dialect) -> sa.TextClause:
    statement = _compiled.get(dialect.name)
    if statement is None:
        sql = str(_stamp_query().compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        statement = _compiled[dialect.name] = sa.text(sql)
    return statement


@dataclass(frozen=True)
class StatusLink:
    """A status link's return, with the digest of everything its page shows."""

    id: int
    order_id: int
    language: str
    stamp: str
    token: str = field(repr=False)


class UntilNextCommit:
    """Answers read from the database, reused until anything is committed to it (by any process): the
    commit counter (portal.db.commit_counter) is read before each answer is read, so an answer is never older
    than its counter value. Without a counter value nothing is kept and every look-up goes to the database."""

    def __init__(self, counter: Callable[[], int | str | None] | None, max_entries: int = 10_000):
        self._counter, self.max_entries = counter, max_entries
        self._seen: int | str | None = None
        self._answers: dict = {}
        self._lock = threading.Lock()

    def version(self) -> int | str | None:
        """Read before the database: an answer read after this call may be kept under it."""
        return self._observe(self._counter() if self._counter else None)

    async def version_async(self) -> int | str | None:
        """The same from the event loop (PostgreSQL: one shared round trip for the requests waiting)."""
        return self._observe(await self._counter.read_async() if self._counter else None)

    async def aclose(self) -> None:
        if self._counter is not None:
            await self._counter.aclose()

    def _observe(self, version: int | str | None) -> int | str | None:
        with self._lock:
            if version != self._seen:
                self._answers.clear()
                self._seen = version
        return version

    def get(self, key, version: int | str | None, default=None):
        with self._lock:
            if version is None or version != self._seen:
                return default
            return self._answers.get(key, default)

    def put(self, key, answer, version: int | str | None) -> None:
        with self._lock:
            if version is None or version != self._seen:
                return  # something was committed meanwhile: the answer may be stale already
            if len(self._answers) >= self.max_entries:
                self._answers.clear()
            self._answers[key] = answer


_UNREAD = object()


def find_by_status_link(engine: Engine, rma: str, token: str, memo: UntilNextCommit | None = None,
                        version: int | str | None = None) -> StatusLink | None:
    """Like service.return_by_status_link (same checks, constant-time token comparison), in one query
    that also reads the page's stamp, without an ORM session or objects (a cached page needs neither).
    With `memo` the row read is reused until the next commit; `version`: memo.version() read before."""
    rma = _plausible_rma(rma, token)
    if rma is None:
        return None
    link = memo.get(("status-link", rma), version, _UNREAD) if memo is not None else _UNREAD
    if link is _UNREAD:
        link = _read_link(engine, rma)
        if memo is not None:
            memo.put(("status-link", rma), link, version)
    return _matching(link, token)


def remembered_link(memo: UntilNextCommit, version: int | str | None, rma: str, token: str) -> StatusLink | None:
    """The status link's return as `memo` keeps it under `version`; None if not kept (or not matching)."""
    rma = _plausible_rma(rma, token)
    link = memo.get(("status-link", rma), version) if rma is not None else None
    return _matching(link, token) if link is not None else None


def _plausible_rma(rma: str, token: str) -> str | None:
    rma = identifiers.normalise_rma(rma)
    return rma if identifiers.is_valid_rma(rma) and len(token) <= 64 else None


def _matching(link: StatusLink | None, token: str) -> StatusLink | None:
    if link is None:
        identifiers.tokens_equal(token, "x" * 32)  # same work whether or not the RMA exists
        return None
    return link if identifiers.tokens_equal(token, link.token) else None


def _read_link(engine: Engine, rma: str) -> StatusLink | None:
    with engine.connect() as conn:
        row = conn.execute(_stamp_statement(engine.dialect), {"rma": rma}).first()
    if row is None:
        return None
    stamp = hashlib.blake2b(repr(tuple(row)).encode(), digest_size=16).hexdigest()
    return StatusLink(id=row.id, order_id=row.order_id, language=row.language, stamp=stamp, token=row.status_token)


class StatusPageCache:
    """Rendered pages by key, least recently used dropped first; safe across the handler threads."""

    def __init__(self, max_pages: int = MAX_PAGES):
        self.max_pages = max_pages
        self._pages: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> str | None:
        with self._lock:
            body = self._pages.get(key)
            if body is None:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: tuple, body: str) -> None:
        with self._lock:
            self._pages[key] = body
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)


def page_key(link: StatusLink, lang: str, just_created: bool, brand, tz: str) -> tuple:
    """The rows' digest and everything else that changes the page; the merchant's date so a new day renders
    afresh (nothing shown counts days today, but a date-relative text would then stay right)."""
    return (link.id, link.stamp, lang, just_created, brand, datetime.now(ZoneInfo(tz)).date())

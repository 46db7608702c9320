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
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
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
    """A valid status link's return, with the digest of everything its page shows."""

    id: int
    order_id: int
    language: str
    stamp: str


def find_by_status_link(engine: Engine, rma: str, token: str) -> StatusLink | None:
    """Like service.return_by_status_link (same checks, constant-time token comparison), in one query
    that also reads the page's stamp, without an ORM session or objects (a cached page needs neither)."""
    rma = identifiers.normalise_rma(rma)
    if not identifiers.is_valid_rma(rma) or len(token) > 64:
        return None
    with engine.connect() as conn:
        row = conn.execute(_stamp_statement(engine.dialect), {"rma": rma}).first()
    if row is None:
        identifiers.tokens_equal(token, "x" * 32)  # same work whether or not the RMA exists
        return None
    if not identifiers.tokens_equal(token, row.status_token):
        return None
    stamp = hashlib.blake2b(repr(tuple(row)).encode(), digest_size=16).hexdigest()
    return StatusLink(id=row.id, order_id=row.order_id, language=row.language, stamp=stamp)


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

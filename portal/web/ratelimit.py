"""Fixed-window rate limits kept in the database, so every process counts the same hits."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from portal.models import RateLimitBucket

_bucket = RateLimitBucket.__table__


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int
    clean: bool = False  # `exhausted` found no hits at all in the windows that count


def hit(engine: Engine, key: str, limit: int, window_s: int, now: float | None = None) -> RateDecision:
    """Count a hit; allowed while the sliding-window estimate stays within `limit`.

    The estimate weighs the previous fixed window by how much of it still overlaps the last
    `window_s` seconds, so a burst cannot double its allowance by straddling a window boundary.
    """
    now = time.time() if now is None else now
    window_start = int(now // window_s * window_s)
    key = key[:255]
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_bucket).values(key=key, window_start=window_start, hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key", "window_start"], set_={"hits": _bucket.c.hits + 1}
    ).returning(_bucket.c.hits)
    with engine.begin() as conn:
        hits = conn.execute(stmt).scalar_one()
        previous = conn.execute(sa.select(_bucket.c.hits).where(
            _bucket.c.key == key, _bucket.c.window_start == window_start - window_s)).scalar() or 0
        if hits == 1:  # first hit of a window: drop the old windows of every key
            conn.execute(sa.delete(_bucket).where(_bucket.c.window_start < window_start - window_s))
    overlap = 1 - (now - window_start) / window_s
    estimate = hits + previous * overlap
    if estimate <= limit:
        return RateDecision(True, 0)
    return RateDecision(False, int(window_start + window_s - now) + 1)


def exhausted(engine: Engine, key: str, limit: int, window_s: int, now: float | None = None) -> RateDecision:
    """Look without counting: refused when one more hit would go over `limit` (same estimate as `hit`).

    For limits on failures: check before the attempt, count only the failures, so a client over the
    limit cannot use the answers (found / not found) to go on guessing.
    """
    now = time.time() if now is None else now
    window_start = int(now // window_s * window_s)
    rows = dict(_read(engine, key[:255], (window_start, window_start - window_s)))
    estimate = rows.get(window_start, 0) + 1 + rows.get(window_start - window_s, 0) * (1 - (now - window_start) / window_s)
    if estimate <= limit:
        return RateDecision(True, 0, clean=not rows)
    return RateDecision(False, int(window_start + window_s - now) + 1)


_WINDOWS = sa.select(_bucket.c.window_start, _bucket.c.hits).where(  # built once: checked on every status page
    _bucket.c.key == sa.bindparam("key"),
    _bucket.c.window_start.in_([sa.bindparam("current"), sa.bindparam("previous")]))


def _read(engine: Engine, key: str, windows: tuple[int, int]) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(_WINDOWS, {"key": key, "current": windows[0], "previous": windows[1]})]

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


def hit(engine: Engine, key: str, limit: int, window_s: int, now: float | None = None) -> RateDecision:
    now = time.time() if now is None else now
    window_start = int(now // window_s * window_s)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_bucket).values(key=key[:255], window_start=window_start, hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key", "window_start"], set_={"hits": _bucket.c.hits + 1}
    ).returning(_bucket.c.hits)
    with engine.begin() as conn:
        hits = conn.execute(stmt).scalar_one()
        if hits == 1:  # first hit of a window: drop the old windows of every key
            conn.execute(sa.delete(_bucket).where(_bucket.c.window_start < window_start - window_s))
    return RateDecision(hits <= limit, 0 if hits <= limit else int(window_start + window_s - now) + 1)

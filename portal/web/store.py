"""A Litestar Store on the database, so sessions survive restarts and work across processes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anyio.to_thread
import sqlalchemy as sa
from litestar.stores.base import NamespacedStore
from sqlalchemy.engine import Engine

from portal.models import KeyValue

_kv = KeyValue.__table__


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


class DatabaseStore(NamespacedStore):
    def __init__(self, engine: Engine, namespace: str = "default"):
        super().__init__()
        self.engine = engine
        self.namespace = namespace

    def with_namespace(self, namespace: str) -> "DatabaseStore":
        return DatabaseStore(self.engine, f"{self.namespace}:{namespace}")

    def _key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    # Sync bodies run in a worker thread so a slow database never blocks the event loop.
    def _set(self, key: str, value: bytes, expires_at: datetime | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_kv).where(_kv.c.key == key))
            conn.execute(sa.insert(_kv).values(key=key, value=value, expires_at=expires_at))

    def _get(self, key: str, renew_for: int | timedelta | None) -> bytes | None:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(_kv.c.value, _kv.c.expires_at).where(_kv.c.key == key)).first()
            if row is None:
                return None
            if row.expires_at is not None and row.expires_at <= datetime.now(timezone.utc):
                conn.execute(sa.delete(_kv).where(_kv.c.key == key))
                return None
            if renew_for is not None and row.expires_at is not None:
                conn.execute(sa.update(_kv).where(_kv.c.key == key).values(expires_at=_expiry(renew_for)))
            return bytes(row.value)

    def _delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_kv).where(_kv.c.key == key))

    def _delete_namespace(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_kv).where(_kv.c.key.startswith(f"{self.namespace}:")))

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        await anyio.to_thread.run_sync(self._set, self._key(key), data, _expiry(expires_in))

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        return await anyio.to_thread.run_sync(self._get, self._key(key), renew_for)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._delete, self._key(key))

    async def delete_all(self) -> None:
        await anyio.to_thread.run_sync(self._delete_namespace)

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        def _read() -> datetime | None:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(_kv.c.expires_at).where(_kv.c.key == self._key(key))).scalar()

        expires_at = await anyio.to_thread.run_sync(_read)
        if expires_at is None:
            return None
        return max(int((expires_at - datetime.now(timezone.utc)).total_seconds()), 0)

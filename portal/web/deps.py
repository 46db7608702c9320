"""Dependencies shared by the controllers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from litestar import Request
from litestar.datastructures import State
from sqlmodel import Session

# Sessions are ended (commit/rollback + close, which gives the connection back to the pool) in their own
# threads. Litestar would run a sync generator's clean-up in the same executor as the sync handlers, queued
# behind them: under load every pooled connection then sits in a finished request waiting for its clean-up,
# while every handler thread waits for a connection, and the server stalls (seen at 64 concurrent requests).
_session_enders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="db-session-end")


def _end_session(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def provide_db(state: State) -> AsyncIterator[Session]:
    """One database session per request: committed when the handler returns, else rolled back."""
    session = Session(state.engine, expire_on_commit=False)
    session.info["settings"] = state.settings  # notifications fired in this request use the app's settings
    loop = asyncio.get_running_loop()
    try:
        yield session
    except BaseException:
        await _finish(loop, session, commit=False)
        raise
    await _finish(loop, session, commit=True)


async def _finish(loop: asyncio.AbstractEventLoop, session: Session, commit: bool) -> None:
    if not session.in_transaction() and not (session.new or session.dirty or session.deleted):
        session.close()  # never used: no connection to give back, nothing to write
        return
    await asyncio.shield(loop.run_in_executor(_session_enders, _end_session, session, commit))


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"

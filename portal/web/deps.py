"""Dependencies shared by the controllers."""

from __future__ import annotations

from collections.abc import Iterator

from litestar import Request
from litestar.datastructures import State
from sqlmodel import Session


def provide_db(state: State) -> Iterator[Session]:
    """One database session per request: committed when the handler returns, else rolled back."""
    session = Session(state.engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"

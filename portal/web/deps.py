"""Dependencies shared by the controllers."""

from __future__ import annotations

from collections.abc import Iterator

from litestar import Request
from litestar.datastructures import State
from sqlmodel import Session

from portal.db import session_scope


def provide_db(state: State) -> Iterator[Session]:
    """One database session per request: committed when the handler returns, else rolled back."""
    with session_scope(state.engine) as session:
        yield session


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"

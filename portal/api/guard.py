"""api_key_guard: `Authorization: Bearer <key>`; the handler declares opt={"scope": "..."}."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from portal.api import keys
from portal.db import session_scope


class ApiPrincipal:
    def __init__(self, key_id: int, name: str, scopes: list[str]):
        self.key_id, self.name, self.scopes = key_id, name, scopes

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


def api_key_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'.",
                                     headers={"WWW-Authenticate": 'Bearer realm="api"'})
    with session_scope(connection.app.state.engine) as db:
        key = keys.verify(db, token.strip())
        principal = ApiPrincipal(key.id, key.name, list(key.scopes)) if key else None
    if principal is None:
        raise NotAuthorizedException("The API key is unknown or revoked.",
                                     headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
    scope = handler.opt.get("scope")
    if scope and scope not in principal.scopes:
        raise PermissionDeniedException(f"This API key lacks the scope {scope!r}.")
    connection.state.api_key = principal

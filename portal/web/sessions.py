"""Server-side sessions that can rotate their ID (session-fixation protection at login)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import ServerSideSessionBackend, ServerSideSessionConfig
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

ROTATE_FLAG = "_rotate_id"
_NEW_ID = "portal.new_session_id"
_LOADED = "portal.loaded_session"  # the session as read, to skip writing it back unchanged


class RotatingSessionBackend(ServerSideSessionBackend):
    def get_session_id(self, connection: ASGIConnection) -> str:
        return connection.scope.get(_NEW_ID) or super().get_session_id(connection)  # type: ignore[return-value]

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        loaded = self.serialize_data(data, connection.scope) if data else None
        connection.scope[_LOADED] = loaded  # type: ignore[typeddict-unknown-key]
        return data

    async def store_in_message(self, scope_session: ScopeSession, message: Message, connection: ASGIConnection) -> None:
        if scope_session is not Empty and isinstance(scope_session, dict) and scope_session.pop(ROTATE_FLAG, False):
            old_id = connection.cookies.get(self.config.key)
            if old_id:
                await self.delete(old_id, store=self.config.get_store_from_app(connection.scope["app"]))
            connection.scope[_NEW_ID] = self.generate_session_id()  # type: ignore[typeddict-unknown-key]
        elif scope_session is Empty or not scope_session:
            if connection.cookies.get(self.config.key) in (None, "", "null"):
                return  # an anonymous visitor with nothing to keep: no row written, no cookie (the pages' hot path)
        elif connection.scope.get(_LOADED) is not None and isinstance(scope_session, dict) \
                and self.serialize_data(scope_session, connection.scope) == connection.scope.get(_LOADED):
            # Unchanged: reading it already renewed its expiry in the store; only refresh the cookie.
            params = extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
            cookie = Cookie(value=self.get_session_id(connection), key=self.config.key, **dict(params))
            MutableScopeHeaders.from_message(message).add("Set-Cookie", cookie.to_header(header=""))
            return
        await super().store_in_message(scope_session, message, connection)


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend


def start_new_session(request: Any, data: dict) -> None:
    """Replace the session with `data` under a fresh ID (the old ID is deleted from the store)."""
    request.set_session({**data, ROTATE_FLAG: True})

"""Who may open a staff page: a logged-in, active user whose role the route allows.

Every staff handler declares `opt={"roles": (...)}`; a handler that declares none is admin-only.
"""

from __future__ import annotations

import time

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from sqlmodel import Session

from portal.i18n import staff_text
from portal.models import StaffUser
from portal.staff.accounts import StaffPrincipal, principal

SESSION_KEY = "staff_id"
SEEN_KEY = "staff_seen"


def staff_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    user = current_staff(connection)
    if user is None:
        raise NotAuthorizedException(detail=staff_text("Please log in."))
    connection.state.staff = user  # also before a refusal: the error page speaks the user's language
    allowed = handler.opt.get("roles") or ("admin",)
    if user.role != "admin" and user.role not in allowed:
        raise PermissionDeniedException(detail=staff_text("Your role does not give access to this page."))


def current_staff(connection: ASGIConnection) -> StaffPrincipal | None:
    session = connection.scope.get("session")
    if not isinstance(session, dict) or not isinstance(session.get(SESSION_KEY), int):
        return None
    idle_limit = connection.app.state.settings.session_idle_minutes * 60
    now = time.time()
    if now - float(session.get(SEEN_KEY, 0)) > idle_limit:
        session.clear()
        return None
    with Session(connection.app.state.engine) as db:
        user = db.get(StaffUser, session[SESSION_KEY])
        if user is None or not user.active:
            session.clear()
            return None
        session[SEEN_KEY] = now
        return principal(user)


def staff_of(connection: ASGIConnection) -> StaffPrincipal:
    return connection.state.staff

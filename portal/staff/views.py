"""Staff login, logout and the back-office start page."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlparse

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.i18n import staff_text
from portal.staff import accounts, users
from portal.staff.accounts import AccountError
from portal.staff.guards import SEEN_KEY, SESSION_KEY, current_staff, staff_guard, staff_of
from portal.web.deps import client_ip
from portal.web.errors import error_page
from portal.web.ratelimit import hit
from portal.web.sessions import start_new_session
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
LOGIN_LIMIT = 10  # attempts per client address and per account, per 15 minutes
LOGIN_WINDOW_S = 900


def safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or urlparse(target).netloc:
        return "/staff/"
    return target


class StaffAuthController(Controller):
    path = "/staff"
    include_in_schema = False

    @get("/login", name="staff_login", sync_to_thread=False)
    def login_form(self, request: Request, next_path: Annotated[str | None, QueryParameter(name="next")] = None) -> Template:
        return page(request, "staff/login.html", values={}, error=None, next_path=safe_next(next_path))

    @post("/login", name="staff_login_submit", sync_to_thread=True)
    def login(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        email = str(data.get("email", ""))[:254].strip()
        password = str(data.get("password", ""))[:1000]
        next_path = safe_next(str(data.get("next", "")))
        values = {"email": email}
        engine = request.app.state.engine
        for key in (f"login-ip:{client_ip(request)}", f"login-user:{email.lower()}"):
            decision = hit(engine, key, LOGIN_LIMIT, LOGIN_WINDOW_S)
            if not decision.allowed:
                return page(request, "staff/login.html", status_code=429, values=values, next_path=next_path,
                            error=staff_text("Too many attempts. Try again in %(minutes)s minutes.",
                                             minutes=decision.retry_after_s // 60 + 1))
        user = accounts.authenticate(db, email, password, client_ip(request))
        if user is None:
            db.commit()  # keep the audit entry of the failed attempt
            return page(request, "staff/login.html", status_code=401, values=values, next_path=next_path,
                        error=staff_text("Wrong e-mail or password."))
        start_new_session(request, {SESSION_KEY: user.id, SEEN_KEY: time.time()})
        return Redirect(path=next_path)

    @post("/logout", name="staff_logout", sync_to_thread=False)
    def logout(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect(path="/staff/login")


class StaffHomeController(Controller):
    path = "/staff"
    guards = [staff_guard]
    include_in_schema = False

    @get("/", name="staff_home", opt={"roles": ("admin", "warehouse", "support")}, sync_to_thread=False)
    def home(self, request: Request) -> Template:
        return page(request, "staff/home.html", staff=staff_of(request))

    @post("/account/language", name="staff_language", opt={"roles": ("admin", "warehouse", "support")}, sync_to_thread=True)
    def set_language(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Redirect | Response | Template:
        """The language switch in the header: saved on the user (audited), then back to the page it was on."""
        try:
            users.set_language(db, staff_of(request), str(data.get("language", ""))[:5], client_ip(request))
        except AccountError as exc:
            return error_page(request, 400, exc.fields["language"])
        return Redirect(path=safe_next(str(data.get("next", ""))))

"""Admin: staff users — list, create, change role, deactivate/reactivate, reset password. Thin: parse, call, render."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.i18n import staff_text
from portal.staff import users
from portal.staff.accounts import ROLES, AccountError
from portal.staff.guards import staff_guard, staff_of
from portal.web.deps import client_ip
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
ADMIN = ("admin",)
DONE_MESSAGES = {
    "created": staff_text("The user was created. Give them their initial password in person or over the phone."),
    "role": staff_text("The role was changed."),
    "deactivated": staff_text("The user was deactivated. Their open sessions stop working at their next click."),
    "activated": staff_text("The user was reactivated."),
    "password": staff_text("The password was reset. Tell the user in person or over the phone."),
}


def _text(data: dict[str, Any], name: str, limit: int = 254) -> str:
    value = data.get(name, "")
    if isinstance(value, list):  # a repeated field is tampering; take none of it
        return ""
    return str(value)[:limit]


def _user(db: Session, user_id: int):
    try:
        return users.get_user(db, user_id)
    except users.UserNotFound as exc:
        raise NotFoundException(detail=exc.args[0]) from exc


class AdminController(Controller):
    path = "/staff/users"
    guards = [staff_guard]
    include_in_schema = False

    def _list(self, request: Request, db: Session, status_code: int = 200, values: dict | None = None,
              errors: dict | None = None) -> Template:
        return page(request, "staff/users.html", status_code=status_code, staff=staff_of(request),
                    users=users.list_users(db), roles=ROLES, values=values or {"role": "warehouse"},
                    errors=errors or {}, done=DONE_MESSAGES.get(request.query_params.get("done", "")))

    def _edit(self, request: Request, db: Session, user_id: int, status_code: int = 200,
              errors: dict | None = None) -> Template:
        user = _user(db, user_id)
        return page(request, "staff/user_edit.html", status_code=status_code, staff=staff_of(request), user=user,
                    roles=ROLES, errors=errors or {}, trail=users.audit_trail(db, user.id),
                    is_self=user.id == staff_of(request).id,
                    done=DONE_MESSAGES.get(request.query_params.get("done", "")))

    @get("/", name="staff_users", opt={"roles": ADMIN}, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._list(request, db)

    @post("/", name="staff_user_create", opt={"roles": ADMIN}, sync_to_thread=True)
    def create(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        values = {"email": _text(data, "email", 255).strip(), "name": _text(data, "name", 121).strip(), "role": _text(data, "role", 12)}
        try:
            user = users.create_user(db, staff_of(request), values["email"], values["name"], values["role"],
                                     _text(data, "password", 1000))
        except AccountError as exc:
            db.rollback()
            return self._list(request, db, 400, values=values, errors=exc.fields)
        return Redirect(path=f"/staff/users/{user.id}", query_params={"done": "created"})

    @get("/{user_id:int}", name="staff_user", opt={"roles": ADMIN}, sync_to_thread=True)
    def edit(self, request: Request, user_id: FromPath[int], db: NamedDependency[Session]) -> Template:
        return self._edit(request, db, user_id)

    @post("/{user_id:int}/role", name="staff_user_role", opt={"roles": ADMIN}, sync_to_thread=True)
    def change_role(self, request: Request, user_id: FromPath[int], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        _user(db, user_id)
        try:
            users.change_role(db, staff_of(request), user_id, _text(data, "role", 12), client_ip(request))
        except AccountError as exc:
            db.rollback()
            return self._edit(request, db, user_id, 400, errors=exc.fields)
        return Redirect(path=f"/staff/users/{user_id}", query_params={"done": "role"})

    @post("/{user_id:int}/active", name="staff_user_active", opt={"roles": ADMIN}, sync_to_thread=True)
    def set_active(self, request: Request, user_id: FromPath[int], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        _user(db, user_id)
        wanted = _text(data, "active", 5)
        if wanted not in ("0", "1"):
            return self._edit(request, db, user_id, 400, errors={"active": staff_text("Choose deactivate or reactivate.")})
        try:
            users.set_active(db, staff_of(request), user_id, wanted == "1", client_ip(request))
        except AccountError as exc:
            db.rollback()
            return self._edit(request, db, user_id, 400, errors=exc.fields)
        return Redirect(path=f"/staff/users/{user_id}", query_params={"done": "activated" if wanted == "1" else "deactivated"})

    @post("/{user_id:int}/password", name="staff_user_password", opt={"roles": ADMIN}, sync_to_thread=True)
    def reset_password(self, request: Request, user_id: FromPath[int], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        _user(db, user_id)
        try:
            users.reset_password(db, staff_of(request), user_id, _text(data, "password", 1001))
        except AccountError as exc:
            db.rollback()
            return self._edit(request, db, user_id, 400, errors=exc.fields)
        return Redirect(path=f"/staff/users/{user_id}", query_params={"done": "password"})

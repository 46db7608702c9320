"""API keys (admin): list, create (the key is shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.api import keys
from portal.i18n import staff_text
from portal.staff.guards import staff_guard, staff_of
from portal.web.deps import client_ip
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
ADMIN = {"roles": ("admin",)}


def _list(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    values = value if isinstance(value, list) else [value]
    return [str(v)[:40] for v in values][:10]


class ApiKeyAdminController(Controller):
    path = "/staff/api-keys"
    guards = [staff_guard]
    include_in_schema = False

    def _page(self, request: Request, db: Session, status_code: int = 200, **ctx: Any) -> Template:
        ctx.setdefault("values", {"name": "", "scopes": []})
        ctx.setdefault("errors", {})
        return page(request, "staff/api_keys.html", status_code=status_code, staff=staff_of(request),
                    keys=keys.list_keys(db), scopes=keys.SCOPES, **ctx)

    @get("/", name="staff_api_keys", opt=ADMIN, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._page(request, db, revoked=request.query_params.get("revoked", ""))

    @post("/", name="staff_api_keys_create", opt=ADMIN, sync_to_thread=True)
    def create(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template:
        name = data.get("name", "")
        values = {"name": "" if isinstance(name, list) else str(name)[:200], "scopes": _list(data, "scopes")}
        try:
            key, full = keys.create_key(db, values["name"], values["scopes"], staff_of(request).email, client_ip(request))
        except keys.ApiKeyError as exc:
            db.rollback()
            return self._page(request, db, status_code=400, values=values, errors=exc.fields)
        db.commit()
        response = self._page(request, db, status_code=201, created=key, new_key=full)
        response.headers.update({"Cache-Control": "no-store"})
        return response

    @post("/{id:int}/revoke", name="staff_api_key_revoke", opt=ADMIN, sync_to_thread=True)
    def revoke(self, request: Request, id: FromPath[int], db: NamedDependency[Session]) -> Redirect:  # noqa: A002
        key = keys.revoke(db, id, staff_of(request).email, client_ip(request))
        if key is None:
            raise NotFoundException(detail=staff_text("No API key #%(id)s.", id=id))
        return Redirect(path="/staff/api-keys", query_params={"revoked": str(key.id)}, status_code=303)

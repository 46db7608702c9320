"""Webhook endpoints (admin): list, create (the secret is shown once), deactivate, delivery log, re-deliver.

The pages live under /staff/webhook-endpoints, not /staff/webhooks: create_app() exempts every path that
*contains* "/webhooks/" from CSRF checks (an unanchored pattern meant for the incoming /webhooks/ routes),
which would switch CSRF off for these admin forms.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.i18n import staff_text
from portal.outbox import endpoints
from portal.staff.guards import staff_guard, staff_of
from portal.web.deps import client_ip
from portal.web.templating import page
from portal.numbers import is_digits

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
ADMIN = {"roles": ("admin",)}


class Conflict(ClientException):
    status_code = 409


def _text(data: dict[str, Any], name: str, limit: int = 1000) -> str:
    value = data.get(name, "")
    return "" if isinstance(value, list) else str(value)[:limit]


def _list(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    values = value if isinstance(value, list) else [value]
    return [str(v)[:60] for v in values][:20]


class WebhookAdminController(Controller):
    path = "/staff/webhook-endpoints"
    guards = [staff_guard]
    include_in_schema = False

    def _list_page(self, request: Request, db: Session, status_code: int = 200, **ctx: Any) -> Template:
        ctx.setdefault("values", {"event_types": []})
        ctx.setdefault("errors", {})
        return page(request, "staff/webhooks.html", status_code=status_code, staff=staff_of(request),
                    endpoints=endpoints.list_endpoints(db), event_types=endpoints.EVENT_TYPES, endpoint=None, **ctx)

    @get("/", name="staff_webhooks", opt=ADMIN, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._list_page(request, db)

    @post("/", name="staff_webhooks_create", opt=ADMIN, sync_to_thread=True)
    def create(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template:
        staff = staff_of(request)
        values = {"url": _text(data, "url", 600), "description": _text(data, "description", 300),
                  "event_types": _list(data, "event_types")}
        try:
            endpoint, secret = endpoints.create_endpoint(db, values["url"], values["event_types"], values["description"],
                                                         staff.email, client_ip(request))
        except endpoints.EndpointError as exc:
            db.rollback()
            return self._list_page(request, db, status_code=400, values=values, errors=exc.fields)
        db.commit()
        response = self._list_page(request, db, status_code=201, created=endpoint, new_secret=secret)
        response.headers.update({"Cache-Control": "no-store"})  # the page shows the secret; keep it out of caches
        return response

    @get("/{id:int}", name="staff_webhook", opt=ADMIN, sync_to_thread=True)
    def detail(self, request: Request, id: FromPath[int], db: NamedDependency[Session]) -> Template:  # noqa: A002
        endpoint = endpoints.get_endpoint(db, id)
        if endpoint is None:
            raise NotFoundException(detail=staff_text("No webhook endpoint #%(id)s.", id=id))
        redelivered = request.query_params.get("redelivered", "")
        return page(request, "staff/webhooks.html", staff=staff_of(request), endpoint=endpoint,
                    hint=endpoints.secret_hint(endpoint.secret), deliveries=endpoints.delivery_log(db, endpoint.id),
                    log_size=endpoints.DELIVERY_LOG_SIZE, redelivered=redelivered if is_digits(redelivered) else "",
                    deactivated=request.query_params.get("deactivated") == "1")

    @post("/{id:int}/deactivate", name="staff_webhook_deactivate", opt=ADMIN, sync_to_thread=True)
    def deactivate(self, request: Request, id: FromPath[int], db: NamedDependency[Session]) -> Redirect:  # noqa: A002
        endpoint = endpoints.get_endpoint(db, id)
        if endpoint is None:
            raise NotFoundException(detail=staff_text("No webhook endpoint #%(id)s.", id=id))
        endpoints.deactivate_endpoint(db, endpoint, staff_of(request).email, client_ip(request))
        return Redirect(path=f"/staff/webhook-endpoints/{endpoint.id}", query_params={"deactivated": "1"}, status_code=303)

    @post("/deliveries/{id:int}/redeliver", name="staff_webhook_redeliver", opt=ADMIN, sync_to_thread=True)
    def redeliver(self, request: Request, id: FromPath[int], db: NamedDependency[Session]) -> Redirect:  # noqa: A002
        try:
            message = endpoints.redeliver(db, id, staff_of(request).email, client_ip(request))
        except endpoints.DeliveryNotFound as exc:
            db.rollback()
            raise NotFoundException(detail=exc.args[0]) from None
        except endpoints.DeliveryBusy as exc:
            db.rollback()
            raise Conflict(detail=exc.args[0]) from None
        return Redirect(path=f"/staff/webhook-endpoints/{message.endpoint_id}", query_params={"redelivered": str(message.id)},
                        status_code=303)

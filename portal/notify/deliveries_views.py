"""Back-office: the e-mail/SMS delivery log, the dead letters, one message with its events, retry.

Admin and support; recipients are masked in the list for support (full on a message's own page, which
support needs to check an address with the customer), admins see them in full everywhere.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.notify import deliveries
from portal.staff.guards import staff_guard, staff_of
from portal.web.deps import client_ip
from portal.web.templating import page

VIEWERS = {"roles": ("admin", "support")}


class DeliveryLogController(Controller):
    path = "/staff/deliveries"
    guards = [staff_guard]
    include_in_schema = False

    @get("/", name="staff_deliveries", opt=VIEWERS, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        staff = staff_of(request)
        parsed = deliveries.parse_filters(request.query_params)
        log = deliveries.list_deliveries(db, parsed.filters, request.app.state.settings.timezone,
                                         full_recipients=staff.role == "admin")
        return page(request, "staff/deliveries.html", status_code=400 if parsed.errors else 200, staff=staff, log=log,
                    values=parsed.values, errors=parsed.errors, channels=deliveries.CHANNELS, states=deliveries.STATES,
                    page_size=deliveries.PAGE_SIZE)

    def _detail_page(self, request: Request, db: Session, message_id: int, status_code: int = 200,
                     **ctx: Any) -> Template:
        try:
            view = deliveries.get_delivery(db, message_id)
        except deliveries.DeliveryNotFound as exc:
            raise NotFoundException(detail=exc.args[0]) from None
        return page(request, "staff/delivery.html", status_code=status_code, staff=staff_of(request), view=view, **ctx)

    @get("/{message_id:int}", name="staff_delivery", opt=VIEWERS, sync_to_thread=True)
    def detail(self, request: Request, message_id: FromPath[int], db: NamedDependency[Session]) -> Template:
        done = request.query_params.get("done", "")
        return self._detail_page(request, db, message_id, done=done if done in ("retried", "already") else "")

    @post("/{message_id:int}/retry", name="staff_delivery_retry", opt=VIEWERS, sync_to_thread=True)
    def retry(self, request: Request, message_id: FromPath[int], db: NamedDependency[Session]) -> Template | Redirect:
        try:
            result = deliveries.retry(db, message_id, staff_of(request), client_ip(request))
        except deliveries.DeliveryNotFound as exc:
            db.rollback()
            raise NotFoundException(detail=exc.args[0]) from None
        except deliveries.RetryRefused as exc:
            db.rollback()
            return self._detail_page(request, db, message_id, status_code=409, retry_error=exc.args[0])
        return Redirect(path=f"/staff/deliveries/{message_id}",
                        query_params={"done": "already" if result.already else "retried"}, status_code=303)

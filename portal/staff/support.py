"""Support pages: search, the staff return page, notes, resending the status link, registering on behalf.

Thin: parse the request, call portal.staff.search / return_view / register, render.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.config import SUPPORTED_LANGUAGES
from portal.i18n import LANGUAGE_NAMES, staff_text
from portal.models import Order
from portal.returns import service
from portal.staff import register as registering
from portal.staff import exchange_shipping, return_view, search
from portal.staff.common import VersionConflict, return_by_rma
from portal.staff.guards import staff_guard, staff_of
from portal.web.ratelimit import hit
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
EVERYONE = ("support", "warehouse")  # admin is always allowed


def _field(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name, "")
    return "" if isinstance(value, list) else str(value).replace("\x00", "")[:limit]  # NUL: not storable in PostgreSQL


class SupportController(Controller):
    path = "/staff"
    guards = [staff_guard]
    include_in_schema = False

    # --- Search --------------------------------------------------------------------------------

    @get("/returns", name="staff_returns", opt={"roles": EVERYONE}, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        result = search.search_returns(db, request.query_params.get("q"))
        return page(request, "staff/returns.html", staff=staff_of(request), result=result,
                    kind_labels=search.KIND_LABELS)

    # --- The return page -----------------------------------------------------------------------

    def _return_page(self, request: Request, db: Session, rma: str, status_code: int = 200,
                     errors: dict | None = None, values: dict | None = None, notice: str = "") -> Template:
        ret = return_by_rma(db, rma)
        settings = request.app.state.settings
        view = return_view.build_staff_view(db, ret, settings.timezone, settings.base_url)
        return page(request, "staff/return.html", status_code=status_code, staff=staff_of(request), view=view,
                    errors=errors or {}, values=values or {}, notice=notice, note_max=return_view.NOTE_MAX,
                    resend_limit=return_view.RESEND_LIMIT, language_names=LANGUAGE_NAMES)

    @get("/returns/{rma:str}", name="staff_return", opt={"roles": EVERYONE}, sync_to_thread=True)
    def show(self, request: Request, rma: FromPath[str], db: NamedDependency[Session]) -> Template:
        notice = {"note": staff_text("Note saved."), "sent": staff_text("The status link is on its way to the customer."),
                  "registered": staff_text("Return registered on the customer's behalf."),
                  "shipped": staff_text("The replacement is marked as shipped; the customer sees the tracking number.")
                  }.get(request.query_params.get("done", ""), "")
        return self._return_page(request, db, rma, notice=notice)

    @post("/returns/{rma:str}/notes", name="staff_return_note", opt={"roles": EVERYONE}, sync_to_thread=True)
    def add_note(self, request: Request, rma: FromPath[str], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        ret = return_by_rma(db, rma)
        text = _field(data, "note", return_view.NOTE_MAX * 4)
        try:
            return_view.add_note(db, ret, staff_of(request), text)
        except return_view.SupportError as exc:
            db.rollback()
            return self._return_page(request, db, rma, status_code=exc.status_code, errors=exc.fields,
                                     values={"note": text})
        return Redirect(path=f"/staff/returns/{ret.rma}", query_params={"done": "note"}, status_code=303)

    @post("/returns/{rma:str}/resend-link", name="staff_return_resend", opt={"roles": ("support",)}, sync_to_thread=True)
    def resend_link(self, request: Request, rma: FromPath[str], db: NamedDependency[Session]) -> Template | Redirect:
        ret = return_by_rma(db, rma)
        decision = hit(request.app.state.engine, f"resend-link:{ret.id}", return_view.RESEND_LIMIT,
                       return_view.RESEND_WINDOW_S)
        try:
            return_view.resend_status_link(db, ret, staff_of(request), request.app.state.settings.base_url,
                                           decision.allowed, decision.retry_after_s)
        except return_view.SupportError as exc:
            db.rollback()
            return self._return_page(request, db, rma, status_code=exc.status_code, errors=exc.fields)
        return Redirect(path=f"/staff/returns/{ret.rma}", query_params={"done": "sent"}, status_code=303)

    @post("/returns/{rma:str}/exchange-shipped", name="staff_exchange_shipped", opt={"roles": ("warehouse",)},
          sync_to_thread=True)
    def exchange_shipped(self, request: Request, rma: FromPath[str], data: FormData,
                         db: NamedDependency[Session]) -> Template | Redirect:
        ret = return_by_rma(db, rma)
        tracking = _field(data, exchange_shipping.FIELD, 200)
        try:
            exchange_shipping.mark_exchange_shipped(db, ret, staff_of(request), tracking, _field(data, "version", 12))
        except (return_view.SupportError, VersionConflict) as exc:
            db.rollback()
            errors = exc.fields if isinstance(exc, return_view.SupportError) else {"ship": exc.detail}
            return self._return_page(request, db, rma, status_code=exc.status_code, errors=errors,
                                     values={exchange_shipping.FIELD: tracking})
        return Redirect(path=f"/staff/returns/{ret.rma}", query_params={"done": "shipped"}, status_code=303)

    # --- Registering a return on the customer's behalf ---------------------------------------

    def _order(self, db: Session, number: str) -> Order:
        order = service.find_order_by_number(db, number) if "\x00" not in number else None
        if order is None:
            raise NotFoundException(detail=staff_text("No order with number %(number)s.", number=number))
        return order

    def _register_page(self, request: Request, db: Session, order: Order, values: dict, errors: dict,
                       status_code: int = 200) -> Template:
        form = registering.register_form(db, order, return_view.today_in(request.app.state.settings.timezone),
                                         nonce=values.get("form_nonce"))
        return page(request, "staff/register.html", status_code=status_code, staff=staff_of(request), form=form,
                    values=values, errors=errors, messages={k: registering.message_for(v) for k, v in errors.items()},
                    languages=[(code, LANGUAGE_NAMES[code]) for code in SUPPORTED_LANGUAGES])

    @get("/orders/{number:str}/register", name="staff_register", opt={"roles": ("support",)}, sync_to_thread=True)
    def register_form(self, request: Request, number: FromPath[str], db: NamedDependency[Session]) -> Template:
        return self._register_page(request, db, self._order(db, number), values={}, errors={})

    @post("/orders/{number:str}/register", name="staff_register_submit", opt={"roles": ("support",)}, sync_to_thread=True)
    def register(self, request: Request, number: FromPath[str], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        order = self._order(db, number)
        values = {k: _field(data, k, 1000) for k in data if k != "_csrf_token"}
        try:
            ret = registering.register_on_behalf(db, order, staff_of(request), data,
                                                 return_view.today_in(request.app.state.settings.timezone))
        except service.ReturnError as exc:
            db.rollback()
            if exc.code in ("form_expired", "unknown_line"):
                values.pop("form_nonce", None)  # a fresh form
            return self._register_page(request, db, order, values=values, errors=exc.fields or {"form": exc.code},
                                       status_code=400)
        return Redirect(path=f"/staff/returns/{ret.rma}", query_params={"done": "registered"}, status_code=303)

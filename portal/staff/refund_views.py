"""Back-office refunds and exchanges: the itemised refund page, issuing, payment actions, the lists.

Thin: parse the form, call portal.staff.refunding, render. Support may look, only admins change money.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from sqlmodel import Session

from portal.i18n import staff_text
from portal.models import Return
from portal.staff import refunding
from portal.staff.common import return_by_rma
from portal.staff.guards import staff_guard, staff_of
from portal.web.errors import error_page
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
FORM_FIELDS = {
    "action": 20, "version": 12, "sequence": 12, "shown_total": 20, "return_fee": 5, "diminished_amount": 30,
    "diminished_reason": 600, "diminished_line": 12, "return_line_id": 12, "replacement_sku": 100,
    "replacement_name": 300, "quantity": 12, "unit_price": 30, "reference": 200, "back": 10,
}
DONE_MESSAGES = {
    "issued": staff_text("The refund is requested: the shop has been notified and will pay it."),
    "exchange": staff_text("The exchange is recorded and the shop has been notified."),
    "paid": staff_text("The refund is marked as paid."),
    "retried": staff_text("The refund is sent to the shop again."),
}


def _form(data: dict[str, Any] | None) -> dict[str, str]:
    """Known fields only, as bounded strings; a repeated field is tampering and counts as empty."""
    form = {}
    for name, limit in FORM_FIELDS.items():
        value = (data or {}).get(name, "")
        form[name] = "" if isinstance(value, list) else str(value)[:limit]
    return form


def _tz(request: Request) -> str:
    return request.app.state.settings.timezone


def _deduction_values(plan: refunding.RefundPlan) -> dict[str, Any]:
    choice = plan.deductions
    return {
        "return_fee": choice.return_fee,
        "diminished_amount": refunding.format_major(choice.diminished_minor, plan.currency) if choice.diminished_minor else "",
        "diminished_reason": choice.diminished_reason,
        "diminished_line": str(choice.diminished_line_id or ""),
    }


def _render(request: Request, plan: refunding.RefundPlan, status_code: int = 200, *, values: dict | None = None,
            errors: dict | None = None, message: str = "", message_kind: str = "alert", **extra: Any) -> Template:
    shown = _deduction_values(plan)
    if values is not None:  # what was typed, so a refused form keeps it
        shown = {"return_fee": values.get("return_fee") in ("1", "on", "yes", "true"),
                 **{k: values.get(k, "") for k in ("diminished_amount", "diminished_reason", "diminished_line")}}
    extra.setdefault("exchange_values", {})
    extra.setdefault("exchange_errors", {})
    extra.setdefault("refund_errors", {})
    return page(request, "staff/refund.html", status_code=status_code, staff=staff_of(request), plan=plan,
                values=shown, errors=errors or {}, message=message, message_kind=message_kind, **extra)


def _reload(db: Session, ret: Return) -> Return:
    db.rollback()  # nothing half-written; the page shows what is stored
    return db.get(Return, ret.id)


class RefundController(Controller):
    path = "/staff"
    guards = [staff_guard]
    include_in_schema = False

    @get("/returns/{rma:str}/refund", name="staff_refund", opt={"roles": ("support",)}, sync_to_thread=True)
    def refund_page(self, request: Request, rma: FromPath[str], db: NamedDependency[Session]) -> Template:
        ret = return_by_rma(db, rma)
        plan = refunding.build_plan(db, ret, None, _tz(request))
        done = request.query_params.get("done", "")
        return _render(request, plan, message=DONE_MESSAGES.get(done, ""), message_kind="success")

    @post("/returns/{rma:str}/refund", name="staff_refund_issue", opt={"roles": ("admin",)}, sync_to_thread=True)
    def issue(self, request: Request, rma: FromPath[str], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        tz = _tz(request)
        ret = return_by_rma(db, rma)
        form = _form(data)
        plan = refunding.build_plan(db, ret, None, tz)
        try:
            choice = refunding.parse_deductions(form, plan)
        except refunding.RefundError as exc:
            db.rollback()
            return _render(request, plan, 400, values=form, errors=exc.fields, message=exc.message)
        if form["action"] == "preview":
            return _render(request, refunding.build_plan(db, ret, choice, tz),
                           message=staff_text("Recalculated with your deductions. Nothing is issued until you click Issue."),
                           message_kind="success")
        try:
            refund = refunding.issue_refund(db, ret, staff_of(request), choice, sequence=form["sequence"],
                                            version=form["version"], shown_total=form["shown_total"], tz=tz)
        except refunding.RefundError as exc:
            ret = _reload(db, ret)
            return _render(request, refunding.build_plan(db, ret, choice, tz), 400, values=form, errors=exc.fields,
                           message=exc.message)
        except refunding.RefundConflict as exc:
            ret = _reload(db, ret)
            return _render(request, refunding.build_plan(db, ret, None, tz), 409, message=exc.args[0])
        return Redirect(path=f"/staff/returns/{ret.rma}/refund", query_params={"done": "issued", "refund": str(refund.id)})

    @post("/returns/{rma:str}/exchange", name="staff_exchange", opt={"roles": ("admin",)}, sync_to_thread=True)
    def exchange(self, request: Request, rma: FromPath[str], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        tz = _tz(request)
        ret = return_by_rma(db, rma)
        form = _form(data)
        try:
            currency = refunding.build_plan(db, ret, None, tz).currency
            refunding.record_exchange(db, ret, staff_of(request), refunding.parse_exchange(form, currency),
                                      version=form["version"], tz=tz)
        except refunding.RefundError as exc:
            ret = _reload(db, ret)
            return _render(request, refunding.build_plan(db, ret, None, tz), 400, message=exc.message,
                           exchange_values=form, exchange_errors=exc.fields)
        return Redirect(path=f"/staff/returns/{ret.rma}/refund", query_params={"done": "exchange"})

    @get("/refunds", name="staff_refunds", opt={"roles": ("support",)}, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        lists = refunding.refund_lists(db, _tz(request))
        return page(request, "staff/refunds.html", staff=staff_of(request), lists=lists,
                    message=DONE_MESSAGES.get(request.query_params.get("done", ""), ""))

    @post("/refunds/{id:int}/mark-paid", name="staff_refund_mark_paid", opt={"roles": ("admin",)},
          sync_to_thread=True)
    def mark_paid(self, request: Request, id: FromPath[int], data: FormData,  # noqa: A002 - the path says {id}
                  db: NamedDependency[Session]) -> Template | Redirect | Response:
        refund_id = id
        form = _form(data)
        _refund, ret = self._refund_and_return(db, refund_id)
        try:
            refunding.mark_paid(db, refund_id, staff_of(request), form["reference"])
        except refunding.RefundError as exc:
            ret = _reload(db, ret)
            return _render(request, refunding.build_plan(db, ret, None, _tz(request)), 400, message=exc.message,
                           refund_errors={refund_id: exc.fields.get("reference", exc.message)},
                           refund_values={refund_id: form["reference"]})
        except refunding.RefundConflict as exc:
            db.rollback()
            return error_page(request, 409, exc.args[0])
        return self._back(form, ret, "paid")

    @post("/refunds/{id:int}/retry", name="staff_refund_retry", opt={"roles": ("admin",)}, sync_to_thread=True)
    def retry(self, request: Request, id: FromPath[int], data: FormData,  # noqa: A002 - the path says {id}
              db: NamedDependency[Session]) -> Redirect | Response:
        refund_id = id
        form = _form(data)
        _refund, ret = self._refund_and_return(db, refund_id)
        try:
            refunding.retry_refund(db, refund_id, staff_of(request))
        except refunding.RefundConflict as exc:
            db.rollback()
            return error_page(request, 409, exc.args[0])
        return self._back(form, ret, "retried")

    @staticmethod
    def _refund_and_return(db: Session, refund_id: int):
        try:
            refund, ret, _order = refunding.get_refund(db, refund_id)
        except refunding.RefundNotFound as exc:
            raise NotFoundException(detail=exc.args[0]) from exc
        return refund, ret

    @staticmethod
    def _back(form: dict[str, str], ret: Return, done: str) -> Redirect:
        if form["back"] == "list":
            return Redirect(path="/staff/refunds", query_params={"done": done})
        return Redirect(path=f"/staff/returns/{ret.rma}/refund", query_params={"done": done})

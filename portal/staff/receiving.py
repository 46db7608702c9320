"""Warehouse: the receiving station (scan a parcel) and the line-by-line inspection. Thin: parse, call, render."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.i18n import StaffText, staff_text
from portal.models import Order, Return, utcnow
from portal.staff import arrivals, inspection
from portal.staff.common import VersionConflict, return_by_rma
from portal.staff.guards import staff_guard, staff_of
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
SCANS_KEY = "receiving_scans"
SCANS_KEPT = 10
WAREHOUSE = ("warehouse",)


def _text(data: dict[str, Any], name: str, limit: int = 1000) -> str:
    value = data.get(name, "")
    if isinstance(value, list):  # a repeated field is tampering; take none of it
        return ""
    return str(value)[:limit]


def _scans(request: Request) -> list[dict]:
    """This session's last scans, newest first, with their times as datetimes for the template."""
    stored = (request.session or {}).get(SCANS_KEY)
    if not isinstance(stored, list):
        return []
    scans = []
    for entry in stored:
        if isinstance(entry, dict):
            try:
                at = datetime.fromisoformat(str(entry.get("at")))
            except ValueError:
                continue
            outcome = staff_text(str(entry.get("outcome", "")), **(entry.get("outcome_values") or {}))
            scans.append({**entry, "at": at, "outcome": outcome})
    return scans


def _remember_scan(request: Request, code: str, outcome: StaffText, rma: str = "") -> None:
    # The message and its values, not the English text: the list is shown in the staff user's language.
    values = {k: str(v) for k, v in outcome.values.items()}
    entry = {"at": utcnow().isoformat(), "code": code, "rma": rma, "outcome": outcome.msgid, "outcome_values": values}
    stored = (request.session or {}).get(SCANS_KEY)
    previous = stored if isinstance(stored, list) else []
    request.set_session({**(request.session or {}), SCANS_KEY: [entry, *previous][:SCANS_KEPT]})


class ReceivingController(Controller):
    path = "/staff"
    guards = [staff_guard]
    include_in_schema = False

    # --- receiving station ------------------------------------------------------------------

    def _station(self, request: Request, status_code: int = 200, **context: Any) -> Template:
        context.setdefault("error", None)
        context.setdefault("warning", None)
        context.setdefault("choices", [])
        context.setdefault("code", "")
        return page(request, "staff/receive.html", status_code=status_code, staff=staff_of(request),
                    scans=_scans(request), **context)

    @get("/receive", name="staff_receive", opt={"roles": WAREHOUSE}, sync_to_thread=False)
    def station(self, request: Request) -> Template:
        return self._station(request)

    @post("/receive", name="staff_receive_scan", opt={"roles": WAREHOUSE}, sync_to_thread=True)
    def scan(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        code = arrivals.clean_code(_text(data, "code"))
        if not code:
            return self._station(request, 400, error=staff_text("Scan a label or type an RMA, order or tracking number."))
        found = arrivals.find_return(db, code)
        if found.choices:
            _remember_scan(request, code, staff_text("order %(number)s: %(count)s returns, choose one",
                                                     number=found.order.number, count=len(found.choices)))
            return self._station(request, choices=found.choices, order=found.order,
                                 warning=staff_text("Order %(number)s has %(count)s returns. Scan the RMA on the "
                                                    "label, or choose the return below.",
                                                    number=found.order.number, count=len(found.choices)))
        if found.ret is None:
            _remember_scan(request, code, staff_text("not found"))
            return self._station(request, 404, error=staff_text("No return found for '%(code)s'", code=code))
        ret = found.ret
        arrival = arrivals.record_arrival(db, ret, staff_of(request), code)
        _remember_scan(request, code, {"arrived": staff_text("marked arrived"), "already": staff_text("already received"),
                                       "refused": staff_text("not received: %(status)s", status=ret.status.replace("_", " "))
                                       }[arrival.outcome], ret.rma)
        if arrival.outcome == "refused":
            db.rollback()
            return self._station(request, 409, warning=arrival.message, warned=ret)
        return Redirect(path=f"/staff/returns/{ret.rma}/inspect", query_params={"arrival": arrival.outcome})

    # --- inspection -----------------------------------------------------------------------

    def _inspection_page(self, request: Request, db: Session, ret: Return, status_code: int = 200,
                         values: dict | None = None, errors: dict | None = None, **context: Any) -> Template:
        context.setdefault("conflict", None)
        pairs = inspection.lines_of(db, ret)
        lines = [line for line, _ in pairs]
        inspected_once = any(l.condition is not None or l.acceptance != "pending" for l in lines)
        return page(
            request, "staff/inspect.html", status_code=status_code, staff=staff_of(request), ret=ret,
            order=db.get(Order, ret.order_id), pairs=pairs,
            values=values if values is not None else inspection.form_values(lines), errors=errors or {},
            refusal=inspection.refusal(db, ret), partial=inspected_once and inspection.is_partial(lines),
            conditions=inspection.CONDITION_LABELS, acceptances=inspection.ACCEPTANCE_LABELS,
            dispositions=inspection.DISPOSITION_LABELS, relief_safe=inspection.RELIEF_SAFE_CONDITIONS,
            field_names=inspection.field_names,
            arrival=request.query_params.get("arrival"), saved=request.query_params.get("saved") == "1",
            outcome=request.query_params.get("outcome"),
            **context,
        )

    @get("/returns/{rma:str}/inspect", name="staff_inspect", opt={"roles": WAREHOUSE}, sync_to_thread=True)
    def inspect_form(self, request: Request, rma: FromPath[str], db: NamedDependency[Session]) -> Template:
        return self._inspection_page(request, db, return_by_rma(db, rma))

    @post("/returns/{rma:str}/inspect", name="staff_inspect_submit", opt={"roles": WAREHOUSE}, sync_to_thread=True)
    def inspect(self, request: Request, rma: FromPath[str], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        ret = return_by_rma(db, rma)
        refused = inspection.refusal(db, ret)
        if refused:
            return self._inspection_page(request, db, ret, 409, conflict=refused)
        pairs = inspection.lines_of(db, ret)
        values = {name: _text(data, name, 600) for line, _ in pairs for name in inspection.field_names(line.id).values()}
        version = _text(data, "version", 20)
        if version != str(ret.version):
            return self._conflict(request, db, ret, staff_text(
                "Someone else changed return %(rma)s after you opened it. Nothing of yours was saved: check the "
                "values below and submit again.", rma=ret.rma))
        decisions, errors = inspection.validate([line for line, _ in pairs], values)
        if errors:
            db.rollback()
            return self._inspection_page(request, db, ret, 400, values=values, errors=errors)
        try:
            result = inspection.apply_inspection(db, ret, staff_of(request), version, decisions)
        except VersionConflict as exc:
            return self._conflict(request, db, ret, staff_text("%(problem)s Nothing of yours was saved.", problem=exc.detail))
        except inspection.InspectionRefused as exc:
            return self._conflict(request, db, ret, exc.args[0])
        outcome = "partial" if result.partial else ("inspected" if result.complete else "saved")
        return Redirect(path=f"/staff/returns/{ret.rma}/inspect", query_params={"saved": "1", "outcome": outcome})

    def _conflict(self, request: Request, db: Session, ret: Return, message: str) -> Template:
        """409 with the page as it is now in the database, so the second submitter sees the first one's values."""
        db.rollback()
        ret = db.get(Return, ret.id, populate_existing=True)
        return self._inspection_page(request, db, ret, 409, conflict=message)

"""Back-office: notification rules and templates (admin edits; support may look and preview)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlmodel import Session

from portal.config import SUPPORTED_LANGUAGES
from portal.i18n import LANGUAGE_NAMES, staff_text
from portal.models import NotificationRule
from portal.notify import admin, deliveries
from portal.notify.rules import TRIGGERS
from portal.notify.variables import VARIABLES
from portal.staff.guards import staff_guard, staff_of
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
ADMIN = {"roles": ("admin",)}
VIEWERS = {"roles": ("admin", "support")}


class Conflict(ClientException):
    status_code = 409


def _text(data: dict[str, Any], name: str, limit: int = 5000) -> str:
    value = data.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)[:limit]


def _list(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    return [str(v)[:20] for v in (value if isinstance(value, list) else [value])][:10]


def _rule_input(data: dict[str, Any]) -> admin.RuleInput:
    return admin.RuleInput(
        name=_text(data, "name", 200), trigger=_text(data, "trigger", 60), channels=_list(data, "channels"),
        audience=_text(data, "audience", 12), internal_recipients=_text(data, "internal_recipients", 2000),
        countries=_text(data, "countries", 200), resolutions=_text(data, "resolutions", 200),
        reasons=_text(data, "reasons", 500), offset_days=_text(data, "offset_days", 10),
        marketing=_text(data, "marketing", 5) == "1", starts_on=_text(data, "starts_on", 20),
        ends_on=_text(data, "ends_on", 20), sender_name=_text(data, "sender_name", 200),
        sms_sender_id=_text(data, "sms_sender_id", 50),
        templates={lang: {p: _text(data, f"{p}_{lang}", 20000) for p in admin.TEMPLATE_PARTS} for lang in SUPPORTED_LANGUAGES},
    )


def _rule_or_404(db: Session, rule_id: int) -> NotificationRule:
    rule = db.get(NotificationRule, rule_id)
    if rule is None:
        raise NotFoundException(detail=staff_text("No notification rule #%(id)s.", id=rule_id))
    return rule


class NotificationController(Controller):
    path = "/staff/notifications"
    guards = [staff_guard]
    include_in_schema = False

    def _editor(self, request: Request, rule: NotificationRule | None, values: admin.RuleInput, status_code: int = 200,
                **ctx: Any) -> Template:
        return page(request, "staff/notifications_rule.html", status_code=status_code, staff=staff_of(request), rule=rule,
                    values=values, errors=ctx.pop("errors", {}), triggers=TRIGGERS, variables=VARIABLES,
                    languages=SUPPORTED_LANGUAGES, language_names=LANGUAGE_NAMES,
                    version=admin.version_of(rule) if rule else "", **ctx)

    @get("/", name="staff_notifications", opt=VIEWERS, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        return page(request, "staff/notifications.html", staff=staff_of(request), rules=admin.list_rules(db), triggers=TRIGGERS,
                    dead_letters=deliveries.dead_count(db))

    @get("/new", name="staff_notification_new", opt=ADMIN, sync_to_thread=True)
    def new(self, request: Request) -> Template:
        return self._editor(request, None, admin.RuleInput(channels=["email"]))

    @post("/", name="staff_notification_create", opt=ADMIN, sync_to_thread=True)
    def create(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        values = _rule_input(data)
        try:
            rule = admin.save_rule(db, None, values)
        except admin.RuleFormError as exc:
            db.rollback()
            return self._editor(request, None, values, status_code=400, errors=exc.fields)
        db.commit()
        return Redirect(path=f"/staff/notifications/{rule.id}", query_params={"done": "created"}, status_code=303)

    @get("/{rule_id:int}", name="staff_notification", opt=VIEWERS, sync_to_thread=True)
    def detail(self, request: Request, rule_id: FromPath[int], db: NamedDependency[Session]) -> Template:
        rule = _rule_or_404(db, rule_id)
        return self._editor(request, rule, admin.input_of(db, rule), done=request.query_params.get("done", "")[:20])

    @post("/{rule_id:int}", name="staff_notification_update", opt=ADMIN, sync_to_thread=True)
    def update(self, request: Request, rule_id: FromPath[int], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        rule = _rule_or_404(db, rule_id)
        values = _rule_input(data)
        try:
            admin.save_rule(db, rule, values, version=_text(data, "version", 60))
        except admin.RuleFormError as exc:
            db.rollback()
            return self._editor(request, _rule_or_404(db, rule_id), values, status_code=400, errors=exc.fields)
        except admin.VersionConflict as exc:
            db.rollback()
            raise Conflict(detail=exc.args[0]) from None
        db.commit()
        return Redirect(path=f"/staff/notifications/{rule_id}", query_params={"done": "saved"}, status_code=303)

    @post("/{rule_id:int}/activate", name="staff_notification_activate", opt=ADMIN, sync_to_thread=True)
    def activate(self, request: Request, rule_id: FromPath[int], db: NamedDependency[Session]) -> Redirect:
        admin.set_active(db, _rule_or_404(db, rule_id), True)
        db.commit()
        return Redirect(path=f"/staff/notifications/{rule_id}", query_params={"done": "activated"}, status_code=303)

    @post("/{rule_id:int}/deactivate", name="staff_notification_deactivate", opt=ADMIN, sync_to_thread=True)
    def deactivate(self, request: Request, rule_id: FromPath[int], db: NamedDependency[Session]) -> Redirect:
        admin.set_active(db, _rule_or_404(db, rule_id), False)
        db.commit()
        return Redirect(path=f"/staff/notifications/{rule_id}", query_params={"done": "deactivated"}, status_code=303)

    def _preview_page(self, request: Request, db: Session, rule: NotificationRule, rma: str, status_code: int = 200,
                      **ctx: Any) -> Template:
        ret = admin.sample_return(db, rma)
        if ret is None and rma.strip():
            status_code, ctx["rma_error"] = 400, staff_text("No return %(rma)s.", rma=rma.strip().upper())
            ret = admin.sample_return(db)
        parts = admin.preview(db, rule, ret, request.app.state.settings) if ret else []
        return page(request, "staff/notifications_preview.html", status_code=status_code, staff=staff_of(request),
                    rule=rule, ret=ret, parts=parts, rma=rma, language_names=LANGUAGE_NAMES,
                    errors=ctx.pop("errors", {}), values=ctx.pop("values", {}), **ctx)

    @get("/{rule_id:int}/preview", name="staff_notification_preview", opt=VIEWERS, sync_to_thread=True)
    def preview(self, request: Request, rule_id: FromPath[int], db: NamedDependency[Session]) -> Template:
        return self._preview_page(request, db, _rule_or_404(db, rule_id), request.query_params.get("rma", "")[:20],
                                  sent=request.query_params.get("sent", "")[:12])

    @post("/{rule_id:int}/test-send", name="staff_notification_test_send", opt=ADMIN, sync_to_thread=True)
    def test_send(self, request: Request, rule_id: FromPath[int], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        rule = _rule_or_404(db, rule_id)
        rma = _text(data, "rma", 20)
        values = {k: _text(data, k, 300) for k in ("language", "channel", "destination")}
        ret = admin.sample_return(db, rma)
        if ret is None:
            return self._preview_page(request, db, rule, rma, status_code=400, values=values,
                                      errors={"rma": staff_text("No return to take the data from.")})
        try:
            outbox_id = admin.test_send(db, rule, ret, values["language"], values["channel"], values["destination"],
                                        request.app.state.settings)
        except admin.RuleFormError as exc:
            db.rollback()
            return self._preview_page(request, db, rule, rma, status_code=400, values=values, errors=exc.fields)
        db.commit()
        return Redirect(path=f"/staff/notifications/{rule_id}/preview", query_params={"rma": ret.rma, "sent": str(outbox_id)},
                        status_code=303)

"""Back-office pages for Norway: collections, manifests and documents, exchange rates, settings.

Thin handlers: parse the form, call portal.norway.collections / rates / manifests, render.
Everyone in the back-office may look (admin, warehouse, support); only admins change things.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from sqlmodel import Session, select

from customs.rates import RateError, format_minor, parse_minor
from portal.documents.store import DocumentStorage, cached_document
from portal.i18n import staff_text
from portal.models import Collection, Return
from portal.norway import collections, manifests, rates, storage_check
from portal.returns import service
from portal.returns.identifiers import normalise_rma
from portal.staff.guards import staff_guard, staff_of
from portal.web.errors import error_page
from portal.web.templating import page

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
VIEW = {"roles": ("admin", "warehouse", "support")}
CHANGE = {"roles": ("admin",)}
DONE_MESSAGES = {
    "built": staff_text("Collection built."),
    "frozen": staff_text("Manifest frozen."),
    "added": staff_text("Return moved into the collection."),
    "removed": staff_text("Return moved out of the collection."),
    "collected": staff_text("Marked collected; the returns are now collected."),
    "declared": staff_text("Marked declared with the import MRN."),
    "released": staff_text("Marked released; the returns are customs cleared."),
    "rate": staff_text("Manual rate saved."),
    "rate_removed": staff_text("Manual rate removed; the fetched rate counts again."),
    "settings": staff_text("Settings saved."),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _text(data: dict[str, Any], name: str, limit: int = 200) -> str:
    value = data.get(name, "")
    if isinstance(value, list):  # a repeated single field is tampering: take none of it
        return ""
    return str(value)[:limit]


def _many(data: dict[str, Any], name: str, limit: int = 500) -> list[str]:
    value = data.get(name, [])
    values = value if isinstance(value, list) else [value]
    return [str(v)[:40] for v in values[:limit]]


def _storage(request: Request) -> DocumentStorage:
    settings = request.app.state.settings
    return DocumentStorage(settings.label_storage, settings.storage_dir / "customs")


def _done(request: Request) -> str | None:
    return DONE_MESSAGES.get(request.query_params.get("done", ""))


def _download(content: bytes, media_type: str, filename: str, inline: bool = False) -> Response:
    disposition = "inline" if inline else "attachment"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'{disposition}; filename="{filename}"', "Cache-Control": "private, no-store",
    })


# action -> (word for the "done" banner, service call); the form fields each needs are read here.
COLLECTION_ACTIONS = {
    "freeze": ("frozen", lambda db, c, data, s, now, v: collections.freeze(db, c, s, now, v)),
    "add": ("added", lambda db, c, data, s, now, v: collections.add_return(db, c, _text(data, "rma", 20), s, now, v)),
    "remove": ("removed", lambda db, c, data, s, now, v: collections.remove_return(db, c, _text(data, "rma", 20), s, now, v)),
    "collected": ("collected", lambda db, c, data, s, now, v: collections.mark_collected(db, c, s, now, v)),
    "declared": ("declared", lambda db, c, data, s, now, v: collections.mark_declared(
        db, c, _text(data, "import_mrn", 40), s, now, v)),
    "released": ("released", lambda db, c, data, s, now, v: collections.mark_released(db, c, s, now, v)),
}


class NorwayController(Controller):
    path = "/staff/norway"
    guards = [staff_guard]
    include_in_schema = False

    # --- Collections list -------------------------------------------------------------------

    def _index_page(self, request: Request, db: Session, status_code: int = 200, errors: dict | None = None,
                    values: dict | None = None) -> Template:
        now = _now()
        settings = collections.get_settings(db)
        waiting = collections.describe_waiting(db, collections.waiting_returns(db), settings, now)
        local_today = now.astimezone(ZoneInfo(settings.timezone)).date()
        return page(
            request, "staff/norway_collections.html", status_code=status_code, staff=staff_of(request),
            collections=collections.list_collections(db), waiting=waiting, settings=settings,
            weekday_names=collections.WEEKDAY_NAMES, cutoffs=collections.upcoming_cutoffs(settings, now),
            overdue=storage_check.overdue_returns(db, now), errors=errors or {},
            values=values or {"planned_for": local_today.isoformat()}, done=_done(request),
        )

    @get("/", name="norway_index", opt=VIEW, sync_to_thread=True)
    def index(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._index_page(request, db)

    @post("/collections", name="norway_build", opt=CHANGE, sync_to_thread=True)
    def build(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        staff = staff_of(request)
        values = {"planned_for": _text(data, "planned_for", 10), "rmas": _many(data, "rmas")}
        settings = collections.get_settings(db)
        try:
            day = date.fromisoformat(values["planned_for"])
        except ValueError:
            return self._index_page(request, db, 400, {"planned_for": staff_text("Enter the pickup date as YYYY-MM-DD.")}, values)
        planned_for = datetime.combine(day, collections.cutoff_time(settings), tzinfo=ZoneInfo(settings.timezone))
        try:
            collection = collections.build_collection(db, planned_for, values["rmas"], staff, _now())
        except collections.CollectionError as exc:
            db.rollback()
            return self._index_page(request, db, exc.status_code, exc.fields or {"form": exc.message}, values)
        return Redirect(path=f"/staff/norway/collections/{collection.reference}?done=built")

    # --- One collection ---------------------------------------------------------------------

    def _collection(self, db: Session, reference: str) -> Collection:
        collection = collections.collection_by_reference(db, reference)
        if collection is None:
            raise NotFoundException(detail=staff_text("No collection %(reference)s.", reference=reference))
        return collection

    def _collection_page(self, request: Request, db: Session, collection: Collection, status_code: int = 200,
                         errors: dict | None = None, values: dict | None = None) -> Template:
        now = _now()
        settings = collections.get_settings(db)
        manifest, manifest_problem = None, None
        try:
            manifest = collections.manifest_preview(db, collection, now)
        except RateError as exc:
            manifest_problem = str(exc)
        in_collection = collections.returns_in(db, collection)
        storage = {w.ret.id: w for w in collections.describe_waiting(db, [r for r, _ in in_collection], settings, now)}
        return page(
            request, "staff/norway_collection.html", status_code=status_code, staff=staff_of(request),
            c=collection, returns=in_collection, storage=storage, settings=settings, manifest=manifest,
            manifest_problem=manifest_problem, waiting=collections.waiting_returns(db),
            movable=collection.state in collections.MOVABLE_STATES, errors=errors or {}, values=values or {},
            done=_done(request),
        )

    @get("/collections/{reference:str}", name="norway_collection", opt=VIEW, sync_to_thread=True)
    def collection(self, request: Request, reference: FromPath[str], db: NamedDependency[Session]) -> Template:
        return self._collection_page(request, db, self._collection(db, reference))

    def _act(self, request: Request, db: Session, reference: str, data: dict, done: str, action) -> Template | Redirect:
        """Run one collection action; a refusal rolls back and shows the page with the message."""
        collection = self._collection(db, reference)
        values = {k: _text(data, k) for k in ("rma", "import_mrn")}
        try:
            action(collection, staff_of(request), _now(), _text(data, "version", 12))
        except collections.CollectionError as exc:
            db.rollback()
            collection = self._collection(db, reference)
            return self._collection_page(request, db, collection, exc.status_code,
                                         exc.fields or {"form": exc.message}, values)
        return Redirect(path=f"/staff/norway/collections/{collection.reference}?done={done}")

    @post("/collections/{reference:str}/{action:str}", name="norway_collection_action", opt=CHANGE,
          sync_to_thread=True)
    def collection_action(self, request: Request, reference: FromPath[str], action: FromPath[str], data: FormData,
                          db: NamedDependency[Session]) -> Template | Redirect:
        """freeze / add / remove / collected / declared / released: one table, one code path."""
        if action not in COLLECTION_ACTIONS:
            raise NotFoundException(detail=staff_text("Unknown collection action %(action)s.", action=repr(action)))
        done, run = COLLECTION_ACTIONS[action]
        return self._act(request, db, reference, data, done, lambda c, s, now, v: run(db, c, data, s, now, v))

    # --- Documents --------------------------------------------------------------------------

    def _frozen(self, request: Request, db: Session, reference: str):
        collection = self._collection(db, reference)
        manifest = collections.frozen_manifest(collection)
        if manifest is None:
            return collection, None, error_page(
                request, 409, staff_text("Collection %(reference)s has no frozen manifest yet: freeze it first.",
                                         reference=collection.reference))
        return collection, manifest, None

    @get("/collections/{reference:str}/manifest.csv", name="norway_manifest_csv", opt=VIEW, sync_to_thread=True)
    def manifest_csv(self, request: Request, reference: FromPath[str], db: NamedDependency[Session]) -> Response:
        collection, manifest, refusal = self._frozen(request, db, reference)
        if refusal:
            return refusal
        return _download(manifests.manifest_csv(manifest), "text/csv; charset=utf-8", f"manifest-{collection.reference}.csv")

    @get("/collections/{reference:str}/manifest.json", name="norway_manifest_json", opt=VIEW, sync_to_thread=True)
    def manifest_json(self, request: Request, reference: FromPath[str], db: NamedDependency[Session]) -> Response:
        collection, manifest, refusal = self._frozen(request, db, reference)
        if refusal:
            return refusal
        return _download(collection.manifest.encode("utf-8"), "application/json",
                         f"manifest-{collection.reference}.json")

    @get("/collections/{reference:str}/manifest.pdf", name="norway_manifest_pdf", opt=VIEW, sync_to_thread=True)
    def manifest_pdf(self, request: Request, reference: FromPath[str], db: NamedDependency[Session]) -> Response:
        collection, manifest, refusal = self._frozen(request, db, reference)
        if refusal:
            return refusal
        merchant = service.get_policy(db).merchant_name
        tz = request.app.state.settings.timezone
        content, _ = cached_document(
            db, _storage(request), f"collection:{collection.id}", "manifest-pdf",
            manifests.fingerprint(collection.manifest, merchant, tz), "application/pdf",
            lambda: manifests.manifest_pdf(manifest, merchant, tz),
        )
        return _download(content, "application/pdf", f"manifest-{collection.reference}.pdf", inline=True)

    @get("/returns/{rma:str}/evidence.pdf", name="norway_evidence_pdf", opt=VIEW, sync_to_thread=True)
    def evidence_pdf(self, request: Request, rma: FromPath[str], db: NamedDependency[Session]) -> Response:
        ret = db.exec(select(Return).where(Return.rma == normalise_rma(rma))).first()
        if ret is None or not ret.is_norway:
            raise NotFoundException(detail=staff_text("No Norwegian return with RMA %(rma)s.", rma=rma))
        loaded = manifests.load_return_customs(db, [ret.id])
        if not loaded or not loaded[0].assessments:
            return error_page(request, 409, staff_text("Return %(rma)s has no lines to give evidence for.", rma=ret.rma))
        merchant = service.get_policy(db).merchant_name
        content, _ = cached_document(
            db, _storage(request), f"return:{ret.id}", "customs-evidence",
            manifests.evidence_fingerprint(loaded[0], merchant), "application/pdf",
            lambda: manifests.evidence_pdf(loaded[0], merchant, _now()),
        )
        return _download(content, "application/pdf", f"evidence-{ret.rma}.pdf", inline=True)

    # --- Exchange rates ---------------------------------------------------------------------

    def _rates_page(self, request: Request, db: Session, status_code: int = 200, errors: dict | None = None,
                    values: dict | None = None, fetch_error: str | None = None, fetched=None) -> Template:
        today = _now().date()
        conversion, conversion_error = None, None
        query = request.query_params
        convert_values = {k: query.get(k, "") for k in ("amount", "from", "to", "on")}
        if convert_values["amount"]:
            try:
                source = (convert_values["from"] or "NOK").strip().upper()[:3]
                target = (convert_values["to"] or "SEK").strip().upper()[:3]
                on = date.fromisoformat(convert_values["on"]) if convert_values["on"] else today
                conversion = rates.convert(db, parse_minor(convert_values["amount"][:20], source), source, target, on)
            except (ValueError, RateError) as exc:
                conversion_error = str(exc)
                status_code = 400 if status_code == 200 else status_code
        return page(
            request, "staff/norway_rates.html", status_code=status_code, staff=staff_of(request),
            rows=rates.recent_rates(db), errors=errors or {}, values=values or {"rate_date": today.isoformat()},
            fetch_error=fetch_error, fetched=fetched, source_url=rates.rates_url(), done=_done(request),
            conversion=conversion, conversion_error=conversion_error, convert_values=convert_values,
            format_minor=format_minor, manual=rates.MANUAL_SOURCE,
        )

    @get("/rates", name="norway_rates", opt=VIEW, sync_to_thread=True)
    def rates_index(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._rates_page(request, db)

    @post("/rates", name="norway_rate_override", opt=CHANGE, sync_to_thread=True)
    def rate_override(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        values = {k: _text(data, k, 40) for k in ("currency", "rate_date", "rate")}
        try:
            rates.set_manual_rate(db, values["currency"], values["rate_date"], values["rate"], staff_of(request).email, _now())
        except rates.RateInputError as exc:
            db.rollback()
            return self._rates_page(request, db, 400, exc.fields, values)
        return Redirect(path="/staff/norway/rates?done=rate")

    @post("/rates/{id:int}/delete", name="norway_rate_remove", opt=CHANGE, sync_to_thread=True)
    def rate_remove(self, request: Request, id: FromPath[int], db: NamedDependency[Session]) -> Redirect:  # noqa: A002
        if rates.remove_manual_rate(db, id, staff_of(request).email) is None:
            raise NotFoundException(detail=staff_text("No manual rate with this id."))
        return Redirect(path="/staff/norway/rates?done=rate_removed")

    @post("/rates/fetch", name="norway_rates_fetch", opt=CHANGE, sync_to_thread=True)
    def rates_fetch(self, request: Request, db: NamedDependency[Session]) -> Template:
        try:
            fetched = rates.fetch_and_store(db, _now(), actor=staff_of(request).email)
        except RateError as exc:
            db.rollback()
            return self._rates_page(request, db, 502, fetch_error=str(exc))
        return self._rates_page(request, db, fetched=fetched)

    # --- Settings ---------------------------------------------------------------------------

    def _settings_page(self, request: Request, db: Session, status_code: int = 200, errors: dict | None = None,
                       values: dict | None = None) -> Template:
        settings = collections.get_settings(db)
        return page(
            request, "staff/norway_settings.html", status_code=status_code, staff=staff_of(request),
            values=values or collections.settings_values(settings), errors=errors or {},
            weekday_names=collections.WEEKDAY_NAMES, support_email=service.get_policy(db).support_email,
            cutoffs=collections.upcoming_cutoffs(settings, _now()), done=_done(request), settings=settings,
        )

    @get("/settings", name="norway_settings", opt=VIEW, sync_to_thread=True)
    def settings_form(self, request: Request, db: NamedDependency[Session]) -> Template:
        return self._settings_page(request, db)

    @post("/settings", name="norway_settings_save", opt=CHANGE, sync_to_thread=True)
    def settings_save(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        form = collections.SettingsForm(
            weekdays=_many(data, "weekdays", 7), cutoff=_text(data, "cutoff", 5), timezone=_text(data, "timezone", 64),
            free_storage_days=_text(data, "free_storage_days", 4), fee_per_day=_text(data, "fee_per_day", 20),
            fee_currency=_text(data, "fee_currency", 3), alert_email=_text(data, "alert_email", 254),
        )
        try:
            collections.update_settings(db, form, staff_of(request), _now())
        except collections.CollectionError as exc:
            db.rollback()
            values = {**form.__dict__, "weekdays": list(form.weekdays)}
            return self._settings_page(request, db, 400, exc.fields, values)
        return Redirect(path="/staff/norway/settings?done=settings")

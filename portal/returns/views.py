"""Consumer pages: find the order, choose lines, confirm, follow the status. Thin: parse, call, render."""

from __future__ import annotations

import html
import secrets

import labels
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, MediaType, Request, get, post
from litestar.concurrency import sync_to_thread
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, TooManyRequestsException
from litestar.di import NamedDependency
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from litestar.utils.scope.state import ScopeState
from sqlmodel import Session

from portal.db import session_scope
from portal.i18n import COUNTRY_LANGUAGE, N_, pick_language
from portal.models import Order, Return
from portal.returns import labels as return_labels
from portal.returns import policy, service, status_cache
from portal.returns.status import build_status_view
from portal.web.deps import client_ip
from portal.web.errors import error_page
from portal.web.ratelimit import RateDecision, exhausted, hit
from portal.web.templating import page
from portal.numbers import is_digits

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
MAX_FIELD = 1000
_NO_MISSES = RateDecision(True, 0, clean=True)
STATUS_RATE_LIMITED = N_("Too many attempts. Please wait a few minutes and try again.")


def _csrf_input(request: Request) -> str:
    """The hidden CSRF field exactly as Litestar puts it into rendered templates."""
    token = ScopeState.from_scope(request.scope).csrf_token
    return f'<input type="hidden" name="_csrf_token" value="{html.escape(token if isinstance(token, str) else "")}" />'


def _html_response(request: Request, cached_html: str) -> Response:
    """A cached page with this visitor's CSRF field put in."""
    return Response(cached_html.replace(status_cache.CSRF_MARKER, _csrf_input(request)), media_type=MediaType.HTML)


def _commit_version(request: Request) -> int | str | None:
    """The database's commit counter, read once per request, before the request reads anything kept."""
    if "commit_version" not in request.state:
        request.state.commit_version = request.app.state.db_memo.version()
    return request.state.commit_version


def _misses_key(request: Request) -> str:
    return f"status-miss:{client_ip(request)}"


def _text(data: dict[str, Any], name: str, limit: int = MAX_FIELD) -> str:
    value = data.get(name, "")
    if isinstance(value, list):  # a repeated field is tampering; take none of it
        return ""
    return str(value)[:limit]


def _today(request: Request):
    return datetime.now(ZoneInfo(request.app.state.settings.timezone)).date()


def _order_language(request: Request, order: Order) -> str:
    """An explicit choice wins; otherwise the order's market (Norwegian orders get Norwegian)."""
    explicit = request.query_params.get("lang") or request.cookies.get("lang")
    return pick_language(explicit, COUNTRY_LANGUAGE.get(order.country),
                         accept_language=request.headers.get("accept-language"),
                         default=request.app.state.settings.default_language)


def _granted_orders(request: Request) -> list[int]:
    granted = request.session.get("orders") if request.session else None
    return granted if isinstance(granted, list) else []


class ConsumerController(Controller):
    path = "/"
    include_in_schema = False  # HTML pages; /schema documents the JSON API

    @get("/", name="find_order", sync_to_thread=False)
    def find_order_form(self, request: Request) -> Template:
        return page(request, "pages/find_order.html", values={}, error=None)

    @post("/", name="find_order_submit", sync_to_thread=True)
    def find_order_submit(self, request: Request, data: FormData, db: NamedDependency[Session]) -> Template | Redirect | Response:
        settings = request.app.state.settings
        values = {"order_number": _text(data, "order_number", 40), "credential": _text(data, "credential", 254)}
        errors = {}
        if not values["order_number"].strip():
            errors["order_number"] = "missing"
        if not values["credential"].strip():
            errors["credential"] = "missing"
        if errors:
            return page(request, "pages/find_order.html", status_code=400, values=values, errors=errors, error=None)
        decision = hit(request.app.state.engine, f"lookup:{client_ip(request)}", settings.lookup_rate_limit, settings.lookup_rate_window_s)
        if not decision.allowed:
            return page(request, "pages/find_order.html", status_code=429, values=values, errors={},
                        error="rate_limited", retry_after=decision.retry_after_s)
        order = service.find_order(db, values["order_number"], values["credential"])
        if order is None:
            return page(request, "pages/find_order.html", status_code=404, values=values, errors={}, error="not_found")
        granted = [oid for oid in _granted_orders(request) if oid != order.id][-9:] + [order.id]
        request.set_session({**(request.session or {}), "orders": granted})
        return Redirect(path=f"/orders/{order.number}")

    def _granted_order(self, request: Request, db: Session, number: str) -> Order:
        order = service.find_order_by_number(db, number)
        if order is None or order.id not in _granted_orders(request):
            raise NotFoundException(N_("Find your order first with its number and your e-mail or postcode."))
        return order

    @get("/orders/{number:str}", name="choose_lines", sync_to_thread=True)
    def choose_lines(self, request: Request, number: FromPath[str], db: NamedDependency[Session]) -> Template:
        order = self._granted_order(request, db, number)
        request.state.lang = _order_language(request, order)
        return self._choose_page(request, db, order, values={}, errors={})

    def _choose_page(self, request: Request, db: Session, order: Order, values: dict, errors: dict,
                     status_code: int = 200) -> Template:
        merchant = service.get_policy(db)
        eligibility = service.order_eligibility(db, order, merchant, _today(request))
        return page(
            request, "pages/choose_lines.html", status_code=status_code,
            order=order, lines=service.order_lines(db, order.id), eligibility=eligibility,
            reasons=service.policy_rules(merchant).reasons, resolutions=service.policy_rules(merchant).resolutions,
            values=values, errors=errors, form_nonce=values.get("form_nonce") or secrets.token_urlsafe(16),
            outside_window=any(e.needs_approval for e in eligibility.values()),
            existing=service.active_returns_of(db, order.id),
        )

    @post("/orders/{number:str}", name="register_return", sync_to_thread=True)
    def register(self, request: Request, number: FromPath[str], data: FormData, db: NamedDependency[Session]) -> Template | Redirect:
        order = self._granted_order(request, db, number)
        lang = _order_language(request, order)
        request.state.lang = lang
        line_ids = [line.id for line in service.order_lines(db, order.id)]
        requested = []
        for key in data:
            if key.startswith("qty_") and not is_digits(key[4:]):
                return self._choose_page(request, db, order, values={}, errors={"form": "unknown_line"}, status_code=400)
            if key.startswith("qty_") and int(key[4:]) not in line_ids:
                return self._choose_page(request, db, order, values={}, errors={"form": "unknown_line"}, status_code=400)
        for line_id in line_ids:
            requested.append(policy.RequestedLine(
                line_id, _text(data, f"qty_{line_id}", 6), _text(data, f"reason_{line_id}", 40), _text(data, f"comment_{line_id}", 5000)
            ))
        values = {k: _text(data, k) for k in data}
        nonce = _text(data, "form_nonce", 64)
        if len(nonce) < 16:
            return self._choose_page(request, db, order, values=values, errors={"form": "form_expired"}, status_code=400)
        try:
            ret = service.register_return(db, service.ReturnRequest(
                order_id=order.id, lines=requested, resolution=_text(data, "resolution", 20), language=lang, form_nonce=nonce,
            ), _today(request))
        except service.ReturnError as exc:
            db.rollback()
            return self._choose_page(request, db, order, values=values, errors=exc.fields or {"form": exc.code}, status_code=400)
        return Redirect(path=f"/r/{ret.rma}/{ret.status_token}?new=1")

    def _return_for(self, request: Request, db: Session | None, rma: str, token: str,
                    find=service.return_by_status_link):
        """The return of a status link. Wrong links are counted per client address (shared by every
        process); over the limit every look-up is refused, a right one too, so guessing learns nothing."""
        settings, engine = request.app.state.settings, request.app.state.engine
        decision = self._misses_allowed(request)
        if decision.allowed:
            ret = find(db, rma, token)
            if ret is not None:
                explicit = request.query_params.get("lang")
                request.state.lang = pick_language(explicit, ret.language)
                return ret
            decision = hit(engine, _misses_key(request), settings.status_miss_limit, settings.status_miss_window_s)
            if decision.allowed:
                raise NotFoundException(N_("This status link is not valid. Check that you copied the whole link."))
        raise TooManyRequestsException(STATUS_RATE_LIMITED, headers={"Retry-After": str(decision.retry_after_s)})

    def _misses_allowed(self, request: Request) -> RateDecision:
        """May this client look up a status link? A client with no recorded misses is remembered as such
        until the next commit (a miss is a commit)."""
        settings, engine, memo = request.app.state.settings, request.app.state.engine, request.app.state.db_memo
        key = _misses_key(request)
        version = _commit_version(request)
        if memo.get(key, version):
            return _NO_MISSES
        decision = exhausted(engine, key, settings.status_miss_limit, settings.status_miss_window_s)
        if decision.clean:
            memo.put(key, True, version)
        return decision

    @get("/r/{rma:str}/{token:str}", name="status")
    async def status(self, request: Request, rma: FromPath[str], token: FromPath[str]) -> Template | Response:
        """The hot path. A page is rendered once per digest of its rows (see status_cache); while nothing
        has been committed since, it is answered from memory in the event loop, without a thread."""
        if "lang" not in request.query_params:  # the language switcher renders afresh (and sets a cookie)
            request.state.commit_version = await request.app.state.db_memo.version_async()
            html = self._status_from_memory(request, rma, token)
            if html is not None:
                return _html_response(request, html)
        return await sync_to_thread(self._status_from_database, request, rma, token)

    def _status_from_memory(self, request: Request, rma: str, token: str) -> str | None:
        """The kept page, if the client has no recorded misses, the link is right and nothing has been
        committed since all three were read; None sends the request down the database path. Reads nothing,
        waits for nothing: it runs in the event loop."""
        state = request.app.state
        memo, brand = state.db_memo, state.brand_cache.fresh()
        version = _commit_version(request)
        if brand is None or not memo.get(_misses_key(request), version):
            return None
        link = status_cache.remembered_link(memo, version, rma, token)
        if link is None:
            return None
        request.state.lang = pick_language(None, link.language)
        return state.status_pages.get(self._page_key(request, link, brand))

    def _status_from_database(self, request: Request, rma: str, token: str) -> Template | Response:
        """A cached page costs the rate-limit read and one query (the digest); no ORM session unless it renders."""
        engine, memo = request.app.state.engine, request.app.state.db_memo
        link = self._return_for(request, None, rma, token,
                                find=lambda _db, rma, token: status_cache.find_by_status_link(
                                    engine, rma, token, memo, _commit_version(request)))
        just_created = request.query_params.get("new") == "1"
        if "lang" in request.query_params:  # the language switcher also sets a cookie: render it afresh
            with session_scope(engine) as db:
                return self._status_page(request, db, db.get(Return, link.id), just_created)
        pages, key = request.app.state.status_pages, self._page_key(request, link, request.app.state.brand_cache.get())
        html = pages.get(key)
        if html is None:
            with session_scope(engine) as db:
                template = self._status_page(request, db, db.get(Return, link.id), just_created)
                html = request.app.template_engine.get_template(template.template_name).render(
                    **template.context, request=request, csrf_input=status_cache.CSRF_MARKER)
            pages.put(key, html)
        return _html_response(request, html)

    def _page_key(self, request: Request, link: status_cache.StatusLink, brand) -> tuple:
        return status_cache.page_key(link, request.state.lang, request.query_params.get("new") == "1", brand,
                                     request.app.state.settings.timezone)

    def _status_page(self, request: Request, db: Session, ret, just_created: bool) -> Template:
        view = build_status_view(db, ret, request.app.state.settings)
        return page(request, "pages/status.html", view=view, just_created=just_created,
                    status_url=f"{request.app.state.settings.base_url}/r/{ret.rma}/{ret.status_token}")

    @post("/r/{rma:str}/{token:str}/cancel", name="cancel_return", sync_to_thread=True)
    def cancel(self, request: Request, rma: FromPath[str], token: FromPath[str], db: NamedDependency[Session]) -> Redirect | Template | Response:
        ret = self._return_for(request, db, rma, token)
        try:
            service.cancel_return(db, ret)
        except service.ReturnError:
            db.rollback()
            return error_page(request, 409, N_("This return can no longer be cancelled: the parcel is already on its way."))
        return Redirect(path=f"/r/{ret.rma}/{ret.status_token}")

    def _label_ready(self, request: Request, db: Session, rma: str, token: str):
        ret = self._return_for(request, db, rma, token)
        if ret.status in ("pending_approval", "rejected", "cancelled", "expired"):
            return ret, error_page(request, 409, N_("There is no label for this return: it is not approved, or it was cancelled."))
        return ret, None

    @get("/r/{rma:str}/{token:str}/label.pdf", name="label_pdf", sync_to_thread=True)
    def label_pdf(self, request: Request, rma: FromPath[str], token: FromPath[str], db: NamedDependency[Session],
                  layout: FromQuery[str] = "a4") -> Response:
        if layout not in ("a4", "thermal"):
            return error_page(request, 400, N_("Choose the A4 label or the label-printer (thermal) label."))
        ret, refusal = self._label_ready(request, db, rma, token)
        if refusal:
            return refusal
        content, _ = return_labels.label_document(db, ret, layout, request.app.state.settings)
        return Response(content, media_type="application/pdf", headers={
            "Content-Disposition": f'inline; filename="return-label-{ret.rma}-{layout}.pdf"',
            "Cache-Control": "private, max-age=300",
        })

    @get("/r/{rma:str}/{token:str}/label.zpl", name="label_zpl", sync_to_thread=True)
    def label_zpl(self, request: Request, rma: FromPath[str], token: FromPath[str], db: NamedDependency[Session]) -> Response:
        ret, refusal = self._label_ready(request, db, rma, token)
        if refusal:
            return refusal
        content, _ = return_labels.label_document(db, ret, "zpl", request.app.state.settings)
        return Response(content, media_type="text/plain; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="return-label-{ret.rma}.zpl"'})

    @get("/r/{rma:str}/{token:str}/qr.svg", name="label_qr", sync_to_thread=True)
    def qr(self, request: Request, rma: FromPath[str], token: FromPath[str], db: NamedDependency[Session]) -> Response:
        ret, refusal = self._label_ready(request, db, rma, token)
        if refusal:
            return refusal
        svg = labels.qr_svg(return_labels.status_url(request.app.state.settings, ret), size_mm=50)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})

"""Every error becomes a friendly page (or an RFC 9457 problem for the API), never a stack trace."""

from __future__ import annotations

import logging
from http import HTTPStatus

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from sqlalchemy.exc import OperationalError, InterfaceError

from portal.i18n import N_, StaffText
from portal.staff.guards import current_staff
from portal.web.templating import page, staff_language

log = logging.getLogger("portal.errors")

TITLES = {
    400: "This request could not be understood",
    403: "You do not have access to this page",
    404: "We could not find that page",
    405: "That is not allowed here",
    409: "Someone else changed this at the same time",
    413: "That is too large",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "The portal is briefly unavailable",
}


def _wants_problem(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "").split(",")[0]


def problem(status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": str(detail)}
    if errors:
        body["errors"] = errors
    return Response(body, status_code=status, media_type="application/problem+json", headers=headers)


def error_page(request: Request, status: int, detail: str = "", headers: dict | None = None) -> Response | Template:
    if _wants_problem(request):
        return problem(status, detail or TITLES.get(status, "Error"), headers=headers)
    extra = {"lang": _staff_error_language(request, status)} if request.url.path.startswith("/staff") else {}
    response = page(request, "pages/error.html", status_code=status, status=status, title=TITLES.get(status, "Error"),
                    detail=detail, **extra)
    if headers:
        response.headers.update(headers)
    return response


def _generic(status: int, detail: str) -> bool:
    """Litestar's own details (the status phrase, "Validation failed for GET /…"): English and nothing more
    than the heading says. Every detail the portal passes is a catalogue message instead."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return detail == phrase or detail.startswith("Validation failed for ")


def _staff_error_language(request: Request, status: int) -> str:
    """Back-office error pages keep the consumer look but speak the staff user's language. The guard has
    not run for an unknown page or a refused role, so the session is read here (not when the database failed)."""
    if getattr(request.state, "staff", None) is None and status < 500:
        staff = current_staff(request)
        if staff is not None:
            request.state.staff = staff
    return staff_language(request)


def handle_http_exception(request: Request, exc: HTTPException) -> Response | Template | Redirect:
    status = exc.status_code
    if status == 401 and not _wants_problem(request):
        return Redirect(path="/staff/login", query_params={"next": request.url.path})
    detail = exc.detail if status < 500 else ""
    if isinstance(exc, ValidationException) and _wants_problem(request):
        extra = exc.extra if isinstance(exc.extra, list) else []
        return problem(400, "The request has invalid fields", [dict(e) for e in extra if isinstance(e, dict)])
    if "csrf" in str(exc.detail).lower():
        detail = N_("Your form expired or was sent from another page. Please go back, reload and try again.")
    elif not _wants_problem(request) and not isinstance(detail, StaffText) and _generic(status, str(detail)):
        detail = ""  # the heading says it already, in the page's language
    return error_page(request, status, detail, headers=getattr(exc, "headers", None))


def handle_database_unavailable(request: Request, exc: Exception) -> Response | Template:
    log.warning("database unavailable: %s", exc)
    return error_page(request, 503, N_("Please try again in a minute."), headers={"Retry-After": "10"})


def handle_unexpected(request: Request, exc: Exception) -> Response | Template:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_page(request, 500)


EXCEPTION_HANDLERS = {
    HTTPException: handle_http_exception,
    OperationalError: handle_database_unavailable,
    InterfaceError: handle_database_unavailable,
    Exception: handle_unexpected,
}

"""The consumer's unsubscribe page for marketing mail (the link in `List-Unsubscribe`). Thin: parse, call, render.

- GET  /unsubscribe/<token>          the page: what unsubscribing means, and a confirm button (CSRF-protected form)
- POST /unsubscribe/<token>/confirm  that button
- POST /unsubscribe/<token>          RFC 8058 one-click from the mail client: body `List-Unsubscribe=One-Click`,
                                     no cookies and so no CSRF token. This handler alone is exempt from CSRF
                                     (its `exclude_from_csrf` opt; the GET on the same path still gets its token),
                                     which is safe because the secret token is the authority.

A forged, damaged or outdated token answers the 404 page. GET never unsubscribes: link scanners open links.
"""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template
from sqlmodel import Session

from portal.i18n import N_, pick_language
from portal.models import Customer
from portal.notify import unsubscribe
from portal.web.errors import error_page
from portal.web.templating import page

NOT_VALID = N_("This unsubscribe link is not valid. Check that you copied the whole link.")
NOT_ONE_CLICK = N_("To unsubscribe, open the link in your browser and press the button.")


def _customer(request: Request, db: Session, token: str) -> tuple[Customer, str]:
    """The customer the token is for, with the page in their language (an explicit choice wins)."""
    found = unsubscribe.customer_of(db, request.app.state.settings.secret_key, token)
    if found is None:
        raise NotFoundException(NOT_VALID)
    customer, channel = found
    explicit = request.query_params.get("lang") or request.cookies.get("lang")
    request.state.lang = pick_language(explicit, customer.language,
                                       accept_language=request.headers.get("accept-language"),
                                       default=request.app.state.settings.default_language)
    return customer, channel


class UnsubscribeController(Controller):
    path = unsubscribe.PATH
    include_in_schema = False

    @get("/{token:str}", name="unsubscribe", sync_to_thread=True)
    def show(self, request: Request, token: FromPath[str], db: NamedDependency[Session]) -> Template:
        _customer(request, db, token)
        done = request.query_params.get("done") == "1"  # after the button; pressing it again changes nothing
        return page(request, "pages/unsubscribe.html", done=done, confirm_url=f"{unsubscribe.PATH}/{token}/confirm")

    @post("/{token:str}/confirm", name="unsubscribe_confirm", sync_to_thread=True)
    def confirm(self, request: Request, token: FromPath[str], db: NamedDependency[Session]) -> Redirect:
        customer, channel = _customer(request, db, token)
        unsubscribe.withdraw(db, customer, channel)
        return Redirect(path=f"{unsubscribe.PATH}/{token}", query_params={"done": "1"})

    @post("/{token:str}", name="unsubscribe_one_click", opt={"exclude_from_csrf": True})
    async def one_click(self, request: Request, token: FromPath[str], db: NamedDependency[Session]) -> Template | Response:
        # RFC 8058 allows multipart/form-data and application/x-www-form-urlencoded: request.form() reads both.
        form = await request.form()
        return await sync_to_thread(_one_click, request, db, token, form.get("List-Unsubscribe") == "One-Click")


def _one_click(request: Request, db: Session, token: str, asked: bool) -> Template | Response:
    customer, channel = _customer(request, db, token)
    if not asked:
        return error_page(request, 400, NOT_ONE_CLICK)
    unsubscribe.withdraw(db, customer, channel)
    return page(request, "pages/unsubscribe.html", done=True, confirm_url="")

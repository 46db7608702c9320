"""Placeholder: being built (see the brief). Lists nothing yet."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from portal.staff.guards import staff_guard, staff_of
from portal.web.templating import page


class RefundController(Controller):
    path = "/staff/refunds"
    guards = [staff_guard]
    include_in_schema = False

    @get("/", opt={"roles": ("support",)}, sync_to_thread=False)
    def index(self, request: Request) -> Template:
        request.state.lang = "en"
        return page(request, "staff/home.html", staff=staff_of(request))

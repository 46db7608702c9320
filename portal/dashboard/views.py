"""/staff/dashboard: the figures page and each chart's CSV. Admin and support; warehouse staff are refused.

Thin: parse the GET filter, ask portal.dashboard.metrics, render. A bad filter shows the page
with the message next to the field (HTTP 400) and what was typed; the CSV answers 400 in text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response, Template
from sqlmodel import Session

from portal.dashboard import charts, csv_export, metrics
from portal.dashboard.filters import COUNTRIES, FIELDS, ParsedFilter, parse_filter
from portal.i18n import local_decimal, staff_text
from portal.staff.guards import staff_guard, staff_of
from portal.web.templating import page, staff_language

VIEW = {"roles": ("admin", "support")}
CSV_SUFFIX = ".csv"


def _now() -> datetime:
    return datetime.now(UTC)


def _filter(request: Request, now: datetime) -> ParsedFilter:
    tz = request.app.state.settings.timezone
    params = {name: request.query_params.getall(name, []) for name in FIELDS}
    return parse_filter(params, now.astimezone(ZoneInfo(tz)).date(), tz)


class DashboardController(Controller):
    path = "/staff/dashboard"
    guards = [staff_guard]
    include_in_schema = False

    @get("/", name="staff_dashboard", opt=VIEW, sync_to_thread=True)
    def dashboard(self, request: Request, db: NamedDependency[Session]) -> Template:
        lang = staff_language(request)  # reason names and chart texts in the staff user's language
        now = _now()
        parsed = _filter(request, now)
        dash = drawn = None
        if parsed.filter is not None:
            dash = metrics.build_dashboard(db, parsed.filter, now, lang)
            drawn = charts.dashboard_charts(dash, lang)
        return page(
            request, "staff/dashboard.html", status_code=400 if parsed.errors else 200, staff=staff_of(request),
            dash=dash, charts=drawn, values=parsed.values, errors=parsed.errors, countries=COUNTRIES,
            query=urlencode(parsed.filter.query()) if parsed.filter else "",
            days_text=lambda days: local_decimal(metrics.days_text(days), lang), top=metrics.TOP_RATES,
            num=lambda text: local_decimal(text, lang),  # "33.3" -> "33,3" for Swedish staff
        )

    @get("/{filename:str}", name="staff_dashboard_csv", opt=VIEW, sync_to_thread=True)
    def chart_csv(self, request: Request, filename: FromPath[str], db: NamedDependency[Session]) -> Response:
        chart = filename.removesuffix(CSV_SUFFIX)
        if not filename.endswith(CSV_SUFFIX) or chart not in csv_export.CHARTS:
            raise NotFoundException(detail=staff_text("There is no dashboard chart called %(name)s.", name=repr(filename[:60])))
        now = _now()
        parsed = _filter(request, now)
        if parsed.filter is None:
            detail = " ".join(f"{name}: {message}" for name, message in parsed.errors.items())
            return Response(f"Check the filter. {detail}\n", status_code=400, media_type="text/plain; charset=utf-8")
        return Response(csv_export.chart_csv(db, chart, parsed.filter, now), media_type="text/csv",
                        headers={
                            "Content-Disposition": f'attachment; filename="{csv_export.filename(chart, parsed.filter)}"',
                            "Cache-Control": "private, no-store",
                        })

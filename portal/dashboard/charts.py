"""Server-side SVG charts: the geometry is computed here (pure), templates/staff/charts/_svg.html draws it.

Two shapes: horizontal bars (one row per SKU, category or reason, the number printed after
the bar) and columns (one per week or day, with a y axis of three ticks). A bar's length is
value / largest value of the plot, so lengths compare exactly. No data draws a "No data for
this period" chart of the same kind. Colours meet WCAG AA on white: the bars (#1f4e79,
8.9:1), the text (#1b1f24) and the tick labels (#555c66) as text, the grid lines (#767676,
4.5:1) as graphics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from jinja2 import Environment
from markupsafe import Markup

from portal.i18n import staff_text

WIDTH = 640
EMPTY_TEXT = staff_text("No data for this period")
BAR_COLOUR = "#1f4e79"
TEXT_COLOUR = "#1b1f24"
MUTED_COLOUR = "#555c66"
GRID_COLOUR = "#767676"
MAX_LABEL = 18


@dataclass(frozen=True)
class Item:
    """One bar: its label, its value (an integer or a fraction as float) and the text printed for it."""

    label: str
    value: float
    text: str


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    name: str  # the item's full label
    label: str  # what is printed at the axis (shortened, or empty to avoid crowding)
    text: str
    label_x: float
    label_y: float
    text_x: float
    text_y: float


@dataclass(frozen=True)
class Tick:
    y: float
    text: str


@dataclass
class Chart:
    id: str
    kind: str  # "bars" (horizontal) or "columns" (vertical)
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    plot_left: float = 0
    plot_right: float = 0
    baseline: float = 0
    empty: bool = False
    empty_text: str = EMPTY_TEXT

    colours = {"bar": BAR_COLOUR, "text": TEXT_COLOUR, "muted": MUTED_COLOUR, "grid": GRID_COLOUR}


def short(label: str, limit: int = MAX_LABEL) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def _empty(chart_id: str, kind: str, empty_text: str) -> Chart:
    return Chart(chart_id, kind, WIDTH, 120, empty=True, empty_text=empty_text)


def bar_chart(chart_id: str, items: Sequence[Item], *, label_width: int = 150, text_width: int = 170,
              row_height: int = 26, empty_text: str = EMPTY_TEXT) -> Chart:
    """Horizontal bars, in the given order; the largest value spans the plot."""
    largest = max((item.value for item in items), default=0)
    if not items or largest <= 0:
        return _empty(chart_id, "bars", empty_text)
    top, gap = 8, 6
    plot_left, plot_right = label_width, WIDTH - text_width
    plot_width = plot_right - plot_left
    chart = Chart(chart_id, "bars", WIDTH, top * 2 + row_height * len(items), plot_left=plot_left,
                  plot_right=plot_right)
    for row, item in enumerate(items):
        y = top + row * row_height
        length = plot_width * max(item.value, 0) / largest
        middle = y + row_height / 2
        chart.rects.append(Rect(
            x=plot_left, y=y + gap / 2, width=round(length, 2), height=row_height - gap, name=item.label, label=short(item.label),
            text=item.text, label_x=plot_left - 8, label_y=middle, text_x=round(plot_left + length + 6, 2), text_y=middle,
        ))
    return chart


def column_chart(chart_id: str, items: Sequence[Item], *, tick_text: Callable[[int], str] = str,
                 height: int = 240, left: int = 110, empty_text: str = EMPTY_TEXT) -> Chart:
    """Vertical columns over time, from a zero baseline; ticks at 0, half and the largest value."""
    largest = max((item.value for item in items), default=0)
    if not items or largest <= 0:
        return _empty(chart_id, "columns", empty_text)
    top, bottom, right = 12, 34, 10
    plot_height = height - top - bottom
    plot_width = WIDTH - left - right
    band = plot_width / len(items)
    column_width = max(band * 0.7, 1)
    every = max(1, -(-len(items) // 16))  # at most 16 x labels, so they never overlap
    baseline = top + plot_height
    chart = Chart(chart_id, "columns", WIDTH, height, plot_left=left, plot_right=WIDTH - right, baseline=baseline)
    for index, item in enumerate(items):
        column_height = plot_height * max(item.value, 0) / largest
        x = left + index * band + (band - column_width) / 2
        chart.rects.append(Rect(
            x=round(x, 2), y=round(baseline - column_height, 2), width=round(column_width, 2),
            height=round(column_height, 2), name=item.label, label=short(item.label, 10) if index % every == 0 else "", text=item.text,
            label_x=round(x + column_width / 2, 2), label_y=baseline + 18, text_x=0, text_y=0,
        ))
    values = sorted({0, int(largest) // 2, int(largest)})
    chart.ticks = [Tick(round(baseline - plot_height * value / largest, 2), tick_text(value)) for value in values]
    return chart


def render_svg(env: Environment, chart: Chart, title: str, desc: str) -> Markup:
    """The chart as an inline <svg> (what the dashboard page includes), e.g. for tests and e-mails."""
    template = env.from_string('{% from "staff/charts/_svg.html" import chart_svg %}{{ chart_svg(chart, title, desc) }}')
    return Markup(template.render(chart=chart, title=title, desc=desc))


# --- the dashboard's charts -----------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardCharts:
    by_sku: Chart
    by_category: Chart
    reasons: Chart
    weekly: dict[str, Chart]  # one per currency: amounts in different currencies share no axis
    days: Chart
    weekly_empty: Chart  # shown when no refund was paid in the period


def dashboard_charts(dash, lang: str = "en") -> DashboardCharts:
    """The charts for a metrics.Dashboard; money printed with portal.i18n.money in `lang`."""
    from portal import i18n
    from portal.dashboard.metrics import histogram_buckets

    def rate_chart(chart_id: str, rows) -> Chart:
        items = [Item(row.key, float(row.rate), staff_text("%(percent)s %% (%(returned)s of %(sold)s)",
                                                            percent=i18n.local_decimal(row.percent, lang),
                                                            returned=row.returned, sold=row.sold))
                 for row in rows]
        return bar_chart(chart_id, items, empty_text=staff_text("No returns in this period") if items else EMPTY_TEXT)

    weekly = {
        currency: column_chart(
            f"chart-refunds-{currency.lower()}",
            [Item(week.short_label, amount.amount_minor, i18n.money(amount.amount_minor, currency, lang))
             for week, amount in dash.weekly.series(currency)],
            tick_text=lambda minor, currency=currency: i18n.money(minor, currency, lang),
        )
        for currency in dash.weekly.currencies
    }
    return DashboardCharts(
        by_sku=rate_chart("chart-rate-sku", dash.rates.by_sku),
        by_category=rate_chart("chart-rate-category", dash.rates.by_category),
        reasons=bar_chart("chart-reasons", [Item(r.label, r.units, f"{r.units} ({i18n.local_decimal(r.percent, lang)} %)")
                                                  for r in dash.reasons],
                          label_width=190, text_width=130),
        weekly=weekly,
        days=column_chart("chart-days", [Item(label, n, str(n)) for label, n in histogram_buckets(dash.days.histogram)],
                          left=50),
        weekly_empty=column_chart("chart-refunds", []),
    )

"""Each dashboard chart's data as CSV: amounts in integer minor units with a currency column."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlmodel import Session

from portal.dashboard import metrics
from portal.dashboard.filters import DashboardFilter

Table = tuple[list[str], Iterable[list[object]]]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    """Text from shops and customers cannot start a spreadsheet formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _rates(by: str) -> Callable[[Session, DashboardFilter, datetime], Table]:
    def table(db: Session, f: DashboardFilter, now: datetime) -> Table:
        rates = metrics.return_rates(db, f)
        if by == "sku":
            return (["sku", "name", "sold", "returned", "return_rate_percent"],
                    ([_text(r.key), _text(r.name), r.sold, r.returned, r.percent] for r in rates.by_sku))
        return (["category", "sold", "returned", "return_rate_percent"],
                ([_text(r.key), r.sold, r.returned, r.percent] for r in rates.by_category))
    return table


def _reasons(db: Session, f: DashboardFilter, now: datetime) -> Table:
    return (["reason_code", "reason", "units", "share_percent"],
            ([_text(r.code), r.label, r.units, r.percent] for r in metrics.reasons(db, f)))


def _weekly(db: Session, f: DashboardFilter, now: datetime) -> Table:
    weekly = metrics.refunds_by_week(db, f)
    return (["week", "week_start", "currency", "amount_minor", "refunds"],
            ([week.label, week.monday.isoformat(), currency, amount.amount_minor, amount.refunds]
             for week in weekly.weeks for currency in weekly.currencies
             for amount in [weekly.amount(week, currency)]))


def _days(db: Session, f: DashboardFilter, now: datetime) -> Table:
    return ["days", "refunds"], ([days, n] for days, n in metrics.days_to_refund(db, f).histogram)


def _overdue(db: Session, f: DashboardFilter, now: datetime) -> Table:
    found = metrics.overdue_refunds(db, f, now, limit=None)
    return (["refund_id", "rma", "order_number", "country", "amount_minor", "currency", "state", "due_date", "days_late"],
            ([r.refund_id, r.rma, _text(r.order_number), r.country, r.amount_minor, r.currency, r.state,
              r.due_date.isoformat(), r.days_late] for r in found.rows))


def _norway(db: Session, f: DashboardFilter, now: datetime) -> Table:
    storage = metrics.norway_storage(db, f, now)
    return (["rma", "order_number", "arrived_at_utc", "days_waited", "fee_minor", "currency"],
            ([r.rma, _text(r.order_number), r.arrived_at.astimezone(UTC).isoformat(timespec="seconds"), r.days_waited,
              r.fee_minor, storage.fee_currency] for r in storage.returns))


CHARTS: dict[str, Callable[[Session, DashboardFilter, datetime], Table]] = {
    "return-rate-by-sku": _rates("sku"),
    "return-rate-by-category": _rates("category"),
    "reasons": _reasons,
    "refunds-by-week": _weekly,
    "days-to-refund": _days,
    "overdue-refunds": _overdue,
    "norway-storage": _norway,
}


def chart_csv(db: Session, chart: str, f: DashboardFilter, now: datetime) -> bytes:
    """The CSV (UTF-8, CRLF line ends as RFC 4180) of one chart; KeyError for an unknown chart."""
    header, rows = CHARTS[chart](db, f, now)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def filename(chart: str, f: DashboardFilter) -> str:
    return f"dashboard-{chart}-{f.date_from.isoformat()}-{f.date_to.isoformat()}-{f.country_code}.csv"

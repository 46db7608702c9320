"""Dashboard figures: aggregated in SQL, returned as plain data. Same queries on SQLite and PostgreSQL.

What each figure counts (the page says it too):

* return rate: units in returns (not cancelled, expired or rejected) of returnable order lines
  over the units sold, for orders placed in the range;
* reasons: units per reason code, for returns registered in the range;
* refunded by week and days to refund: refunds paid (state issued) in the range, per ISO week
  of the merchant's time zone and per currency (amounts in different currencies never add up);
  days are whole 24-hour periods from the return's registration to the payment;
* overdue refunds: unpaid refunds past their legal due date today (the /staff/refunds rule),
  whatever the range;
* Norway: returns waiting at the consolidation point now, with the storage fee
  portal.norway.collections.describe_waiting computes for the storage check.

The country filter applies to all of them (the order's country).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from portal import i18n
from portal.dashboard.filters import DashboardFilter, local_midnight
from portal.models import Order, OrderLine, Refund, Return, ReturnLine
from portal.norway import collections
from portal.returns.labels import REASON_MSGIDS

NOT_RETURNED = ("cancelled", "expired", "rejected")  # returns that never brought anything back
TOP_RATES = 15
OVERDUE_LIST_LIMIT = 100
NO_CATEGORY = "(no category)"
MEDIAN, P90 = Fraction(1, 2), Fraction(9, 10)


# --- dialect differences, in one place ----------------------------------------------------------


def whole_days_between(dialect: str, later: Any, earlier: Any) -> Any:
    """SQL for the full 24-hour periods from `earlier` to `later` (both UTC timestamps)."""
    if dialect == "sqlite":  # stored as text; strftime('%s') gives whole Unix seconds; // is integer division
        seconds = (sa.cast(sa.func.strftime("%s", later), sa.Integer) - sa.cast(sa.func.strftime("%s", earlier), sa.Integer))
        return seconds // 86400
    seconds = sa.extract("epoch", later) - sa.extract("epoch", earlier)
    return sa.cast(sa.func.floor(seconds / 86400), sa.Integer)


def materialized_on_sqlite(cte: Any, dialect: str) -> Any:
    """Make SQLite compute the CTE first, as written; PostgreSQL plans it better inlined (it can then hash
    the aggregate instead of sorting a materialised row set of unknown width)."""
    return cte.prefix_with("MATERIALIZED") if dialect == "sqlite" else cte


def _dialect(db: Session) -> str:
    return db.get_bind().dialect.name


def _in_country(query: Any, f: DashboardFilter) -> Any:
    """Only the orders of the chosen country; `query` must have the orders table in its FROM."""
    return query.where(Order.country == f.country) if f.country else query


def _of_country(query: Any, f: DashboardFilter) -> Any:
    """Only returns whose order is from the chosen country; joins the order only when a country is chosen."""
    if not f.country:
        return query
    return query.join(Order, Order.id == Return.order_id).where(Order.country == f.country)


# --- return rate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateRow:
    key: str  # SKU or category
    name: str  # product name for a SKU, "" for a category
    sold: int
    returned: int

    @property
    def rate(self) -> Fraction:
        return Fraction(self.returned, self.sold) if self.sold else Fraction(0)

    @property
    def percent(self) -> str:
        return percent_text(self.rate)


@dataclass(frozen=True)
class ReturnRates:
    by_sku: list[RateRow]  # top 15 by rate, at least min_sold units sold
    by_category: list[RateRow]
    sold: int  # every returnable unit sold in the range (no threshold)
    returned: int
    min_sold: int

    @property
    def percent(self) -> str:
        return percent_text(Fraction(self.returned, self.sold) if self.sold else Fraction(0))


def percent_text(share: Fraction) -> str:
    """A share as a percentage with one decimal, rounded half up: 1/3 -> '33.3'."""
    tenths = (share * 1000 + Fraction(1, 2)).__floor__()
    return f"{tenths // 10}.{tenths % 10}"


def _sold_per_sku(f: DashboardFilter, dialect: str) -> Any:
    """Units sold and returned per SKU and category, for the returnable lines of orders placed in the range.

    The orders of the range are materialised first (placed_at has no index: one pass over the
    orders), the lines are reached by their order_id, and the returned units are summed per line
    by a join, not a correlated subquery: PostgreSQL overestimates a subquery per line twentyfold
    and switches on JIT compilation, which costs seconds. The per-SKU sums are materialised, so
    the three aggregates of return_rates read one row per SKU, not every line again.
    """
    orders = _in_country(select(Order.id).where(Order.placed_at >= f.start, Order.placed_at < f.end), f)
    in_range = orders.cte("orders_in_range").prefix_with("MATERIALIZED")
    returned = (
        select(ReturnLine.order_line_id.label("order_line_id"), sa.func.sum(ReturnLine.quantity).label("returned"))
        .select_from(in_range)
        .join(OrderLine, OrderLine.order_id == in_range.c.id)
        .join(ReturnLine, ReturnLine.order_line_id == OrderLine.id)
        .join(Return, Return.id == ReturnLine.return_id)
        .where(Return.status.not_in(NOT_RETURNED))
        .group_by(ReturnLine.order_line_id)
        .subquery("returned_per_line")
    )
    lines = (
        select(OrderLine.sku, OrderLine.category, OrderLine.name, OrderLine.quantity,
               sa.func.coalesce(returned.c.returned, 0).label("returned"))
        .select_from(in_range)
        .join(OrderLine, OrderLine.order_id == in_range.c.id)
        .outerjoin(returned, returned.c.order_line_id == OrderLine.id)
        .where(OrderLine.returnable)
        .cte("sold_lines")
    )
    lines = materialized_on_sqlite(lines, dialect)  # else SQLite groups by walking the whole SKU index
    return (
        select(lines.c.sku, lines.c.category, sa.func.max(lines.c.name).label("name"),
               sa.func.sum(lines.c.quantity).label("sold"), sa.func.sum(lines.c.returned).label("returned"))
        .group_by(lines.c.sku, lines.c.category)
        .cte("sold_per_sku").prefix_with("MATERIALIZED")
    )


def _by_rate(row: RateRow) -> tuple:
    return -row.rate, -row.returned, row.key


def return_rates(db: Session, f: DashboardFilter) -> ReturnRates:
    """Top 15 SKUs and categories by return rate (at least f.min_sold units sold), and the overall totals.

    One statement: the top 15 of each kind and the totals, as UNION ALL branches over the per-SKU sums.
    """
    lines = _sold_per_sku(f, _dialect(db))
    sold, returned = sa.func.sum(lines.c.sold), sa.func.sum(lines.c.returned)

    def top(kind: str, key: Any, name: Any) -> Any:
        ranked = (
            select(sa.literal(kind).label("kind"), key.label("key"), name.label("name"), sold.label("sold"),
                   returned.label("returned"))
            .group_by(key)
            .having(sold >= f.min_sold)
            .order_by((sa.cast(returned, sa.Float) / sold).desc(), returned.desc(), key)
            .limit(TOP_RATES)
            .subquery()
        )
        return select(ranked)

    totals = select(sa.literal("total"), sa.literal(""), sa.literal(""), sa.func.coalesce(sold, 0),
                    sa.func.coalesce(returned, 0))
    rows: dict[str, list[RateRow]] = {"sku": [], "category": [], "total": []}
    for kind, key, name, n_sold, n_returned in db.exec(sa.union_all(
        top("sku", lines.c.sku, sa.func.max(lines.c.name)), top("category", lines.c.category, sa.literal("")), totals,
    )).all():
        label = (key or NO_CATEGORY) if kind == "category" else key
        rows[kind].append(RateRow(label, name or "", int(n_sold), int(n_returned)))
    total = rows["total"][0]
    return ReturnRates(sorted(rows["sku"], key=_by_rate), sorted(rows["category"], key=_by_rate),
                       total.sold, total.returned, f.min_sold)


# --- reasons ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReasonRow:
    code: str
    label: str
    units: int
    share: Fraction

    @property
    def percent(self) -> str:
        return percent_text(self.share)


def reason_label(code: str, lang: str) -> str:
    if code in REASON_MSGIDS:
        return i18n.gettext(lang, REASON_MSGIDS[code])
    return code.replace("_", " ").capitalize()


def reasons(db: Session, f: DashboardFilter, lang: str = "en") -> list[ReasonRow]:
    """Returned units per reason code, most frequent first, for returns registered in the range."""
    units = sa.func.sum(ReturnLine.quantity)
    query = (
        select(ReturnLine.reason, units)
        .join(Return, Return.id == ReturnLine.return_id)
        .where(Return.created_at >= f.start, Return.created_at < f.end, Return.status.not_in(NOT_RETURNED))
        .group_by(ReturnLine.reason)
        .order_by(units.desc(), ReturnLine.reason)
    )
    rows = [(code, int(n)) for code, n in db.exec(_of_country(query, f)).all()]
    total = sum(n for _, n in rows)
    return [ReasonRow(code, reason_label(code, lang), n, Fraction(n, total)) for code, n in rows]


# --- refunds paid by ISO week -------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    index: int
    monday: date  # local

    @property
    def label(self) -> str:
        year, week, _ = self.monday.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def short_label(self) -> str:
        return f"W{self.monday.isocalendar()[1]:02d}"


@dataclass(frozen=True)
class WeekAmount:
    amount_minor: int = 0
    refunds: int = 0


@dataclass
class WeeklyRefunds:
    weeks: list[Week]
    currencies: list[str]
    amounts: dict[tuple[int, str], WeekAmount] = field(default_factory=dict)

    def amount(self, week: Week, currency: str) -> WeekAmount:
        return self.amounts.get((week.index, currency), WeekAmount())

    def total(self, currency: str) -> WeekAmount:
        found = [a for (_, cur), a in self.amounts.items() if cur == currency]
        return WeekAmount(sum(a.amount_minor for a in found), sum(a.refunds for a in found))

    def series(self, currency: str) -> list[tuple[Week, WeekAmount]]:
        return [(week, self.amount(week, currency)) for week in self.weeks]


def weeks_of(f: DashboardFilter) -> list[Week]:
    """The ISO weeks (Monday to Sunday, local) that overlap the range."""
    monday = f.date_from - timedelta(days=f.date_from.weekday())
    weeks = []
    while monday <= f.date_to:
        weeks.append(Week(len(weeks), monday))
        monday += timedelta(days=7)
    return weeks


def week_bucket(column: Any, weeks: Sequence[Week], tz: str) -> Any:
    """SQL: the index of the local ISO week a UTC timestamp falls in.

    The week boundaries are local midnights turned into UTC here, so the same CASE runs on
    SQLite (which has no time zones) and PostgreSQL, and a refund paid at 00:30 on a Monday in
    Stockholm lands in that Monday's week (date_trunc/strftime on UTC would put it a week early).
    """
    if len(weeks) == 1:
        return sa.literal(0)
    return sa.case(*[(column < local_midnight(week.monday, tz), week.index - 1) for week in weeks[1:]],
                   else_=weeks[-1].index)


def _paid_refunds(f: DashboardFilter, *columns: Any) -> Any:
    query = (
        select(*columns)
        .select_from(Refund)
        .join(Return, Return.id == Refund.return_id)
        .where(Refund.state == "issued", Refund.issued_at >= f.start, Refund.issued_at < f.end)
    )
    return _of_country(query, f)


def refunds_by_week(db: Session, f: DashboardFilter) -> WeeklyRefunds:
    weeks = weeks_of(f)
    paid = _paid_refunds(f, week_bucket(Refund.issued_at, weeks, f.tz).label("week"), Refund.currency,
                         Refund.amount_minor).subquery()
    rows = db.exec(
        select(paid.c.week, paid.c.currency, sa.func.sum(paid.c.amount_minor), sa.func.count())
        .group_by(paid.c.week, paid.c.currency)
    ).all()
    result = WeeklyRefunds(weeks, sorted({currency for _, currency, _, _ in rows}))
    for week, currency, amount, count in rows:
        result.amounts[(int(week), currency)] = WeekAmount(int(amount), int(count))
    return result


# --- days from registration to refund -----------------------------------------------------------


@dataclass(frozen=True)
class DaysToRefund:
    histogram: list[tuple[int, int]]  # (whole days, refunds), ascending days

    @property
    def count(self) -> int:
        return sum(n for _, n in self.histogram)

    @property
    def median(self) -> Fraction | None:
        return percentile(self.histogram, MEDIAN)

    @property
    def p90(self) -> Fraction | None:
        return percentile(self.histogram, P90)


def percentile(histogram: Sequence[tuple[int, int]], p: Fraction) -> Fraction | None:
    """The p-th percentile with linear interpolation (PostgreSQL's percentile_cont) from (value, count) pairs."""
    total = sum(n for _, n in histogram)
    if total == 0:
        return None
    position = p * (total - 1)
    below = position.__floor__()

    def nth(k: int) -> int:  # the k-th smallest value, 0-based
        seen = 0
        for value, n in histogram:
            seen += n
            if k < seen:
                return value
        return histogram[-1][0]

    low = nth(below)
    high = nth(below + 1) if position > below else low
    return low + (high - low) * (position - below)


def days_text(days: Fraction | None) -> str:
    """One decimal, rounded half up: 8.8, 4.0; an em dash without data."""
    if days is None:
        return "—"
    tenths = (days * 10 + Fraction(1, 2)).__floor__()
    return f"{tenths // 10}.{tenths % 10}"


def days_to_refund(db: Session, f: DashboardFilter) -> DaysToRefund:
    """Counted per day value in SQL: the rows fetched are bounded by the longest wait, not the refunds."""
    days = whole_days_between(_dialect(db), Refund.issued_at, Return.created_at).label("days")
    paid = _paid_refunds(f, days).subquery()
    rows = db.exec(select(paid.c.days, sa.func.count()).group_by(paid.c.days).order_by(paid.c.days)).all()
    return DaysToRefund([(int(d), int(n)) for d, n in rows])


def histogram_buckets(histogram: Sequence[tuple[int, int]], most: int = 31) -> list[tuple[str, int]]:
    """Day counts in at most `most` equal buckets from 0 to the longest wait, empty buckets included."""
    if not histogram:
        return []
    longest = max(d for d, _ in histogram)
    width = max(1, -(-(longest + 1) // most))
    counts = [0] * (longest // width + 1)
    for days, n in histogram:
        counts[max(days, 0) // width] += n
    if width == 1:
        return [(str(i), n) for i, n in enumerate(counts)]
    return [(f"{i * width}–{i * width + width - 1}", n) for i, n in enumerate(counts)]


# --- overdue refunds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueRefund:
    refund_id: int
    rma: str
    order_number: str
    country: str
    amount_minor: int
    currency: str
    state: str
    due_date: date
    days_late: int


@dataclass(frozen=True)
class OverdueRefunds:
    today: date
    count: int
    rows: list[OverdueRefund]  # the oldest due first, at most OVERDUE_LIST_LIMIT


def overdue_refunds(db: Session, f: DashboardFilter, now: datetime,
                    limit: int | None = OVERDUE_LIST_LIMIT) -> OverdueRefunds:
    """Refunds not paid by their legal due date (the date stored from refunds.legal_due_date when issued)."""
    today = now.astimezone(ZoneInfo(f.tz)).date()
    late = (Refund.state != "issued", Refund.due_date.is_not(None), Refund.due_date < today)
    count = db.exec(_of_country(
        select(sa.func.count()).select_from(Refund).join(Return, Return.id == Refund.return_id).where(*late), f)).one()
    rows = db.exec(_in_country(
        select(Refund, Return.rma, Order.number, Order.country).join(Return, Return.id == Refund.return_id)
        .join(Order, Order.id == Return.order_id).where(*late), f).order_by(Refund.due_date, Refund.id).limit(limit)).all()
    return OverdueRefunds(today, int(count), [
        OverdueRefund(r.id, rma, number, country, r.amount_minor, r.currency, r.state, r.due_date,
                      (today - r.due_date).days)
        for r, rma, number, country in rows
    ])


# --- Norway: waiting at the consolidation point ---------------------------------------------------


@dataclass(frozen=True)
class WaitingAtConsolidation:
    rma: str
    order_number: str
    arrived_at: datetime
    days_waited: int
    fee_minor: int
    overdue: bool


@dataclass(frozen=True)
class NorwayStorage:
    applies: bool  # False when the country filter excludes Norway
    returns: list[WaitingAtConsolidation]
    fee_currency: str
    free_days: int
    fee_per_day_minor: int

    @property
    def total_fee_minor(self) -> int:
        return sum(r.fee_minor for r in self.returns)

    @property
    def charged(self) -> int:
        return sum(1 for r in self.returns if r.overdue)


def norway_storage(db: Session, f: DashboardFilter, now: datetime) -> NorwayStorage:
    """Returns at the consolidation point now and the fee each has run up (the storage check's rule)."""
    settings = collections.get_settings(db)
    applies = f.country in (None, "NO")
    waiting = []
    if applies:
        at_point = list(db.exec(
            select(Return).where(Return.is_norway, Return.status == "at_consolidation").order_by(Return.id)
        ))
        waiting = [
            WaitingAtConsolidation(w.ret.rma, w.order_number, w.arrived_at, w.days_waited, w.fee_minor, w.overdue)
            for w in collections.describe_waiting(db, at_point, settings, now)
        ]
        waiting.sort(key=lambda w: (w.arrived_at, w.rma))
    return NorwayStorage(applies, waiting, settings.fee_currency, settings.free_storage_days,
                         settings.fee_per_day_minor)


# --- everything the page shows --------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    filter: DashboardFilter
    now: datetime
    rates: ReturnRates
    reasons: list[ReasonRow]
    weekly: WeeklyRefunds
    days: DaysToRefund
    overdue: OverdueRefunds
    norway: NorwayStorage


def build_dashboard(db: Session, f: DashboardFilter, now: datetime | None = None, lang: str = "en") -> Dashboard:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return Dashboard(
        filter=f, now=now, rates=return_rates(db, f),
        reasons=reasons(db, f, lang), weekly=refunds_by_week(db, f), days=days_to_refund(db, f),
        overdue=overdue_refunds(db, f, now), norway=norway_storage(db, f, now),
    )

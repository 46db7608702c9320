"""The dashboard's GET filter: date range, country and minimum units sold, with a message per bad field."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from portal.i18n import staff_text

COUNTRIES = ("SE", "NO", "DK", "FI")
DEFAULT_DAYS = 90
MAX_DAYS = 731  # two years: a weekly chart beyond that is unreadable
DEFAULT_MIN_SOLD = 5
MAX_MIN_SOLD = 1_000_000
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
FIELDS = ("from", "to", "country", "min_sold")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,7}$")  # ASCII digits only: int() would also read "٣"
_MAX_TYPED = 40


@dataclass(frozen=True)
class DashboardFilter:
    date_from: date  # first local day, inclusive
    date_to: date  # last local day, inclusive
    country: str | None  # None: every country
    min_sold: int
    tz: str

    @property
    def start(self) -> datetime:
        """Local midnight starting date_from, in UTC."""
        return local_midnight(self.date_from, self.tz)

    @property
    def end(self) -> datetime:
        """Local midnight after date_to, in UTC (exclusive)."""
        return local_midnight(self.date_to + timedelta(days=1), self.tz)

    @property
    def country_code(self) -> str:
        return self.country or "all"

    def query(self) -> dict[str, str]:
        """The filter as GET parameters (for links to the CSV downloads)."""
        return {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(), "country": self.country_code,
                "min_sold": str(self.min_sold)}


@dataclass(frozen=True)
class ParsedFilter:
    filter: DashboardFilter | None  # None when a field is wrong
    values: dict[str, str]  # what was typed (or the defaults), to show back in the form
    errors: dict[str, str]  # field -> message


def local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def _single(params: Mapping[str, Sequence[str]], name: str) -> tuple[str, str | None]:
    """The one value of a parameter (stripped, bounded) or an error when it was given twice."""
    values = list(params.get(name, ()))
    if len(values) > 1:
        return str(values[0])[:_MAX_TYPED], staff_text("Give this filter once.")
    return (str(values[0]).strip()[:_MAX_TYPED] if values else ""), None


def _parse_date(text: str) -> tuple[date | None, str | None]:
    if not _ISO_DATE.match(text):
        return None, staff_text("Enter a date as YYYY-MM-DD, for example 2025-03-31.")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None, staff_text("%(text)s is not a date in the calendar.", text=text)
    if not EARLIEST <= day <= LATEST:
        return None, staff_text("Enter a date between %(first)s and %(last)s.", first=EARLIEST.isoformat(),
                                last=LATEST.isoformat())
    return day, None


def parse_filter(params: Mapping[str, Sequence[str]], today: date, tz: str) -> ParsedFilter:
    """GET parameters (each name to its list of values) to a filter; empty fields take the defaults.

    Defaults: the last 90 days up to today (local), every country, at least 5 units sold.
    """
    typed: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in FIELDS:
        typed[name], error = _single(params, name)
        if error:
            errors[name] = error
    values = {
        "from": typed["from"] or (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "to": typed["to"] or today.isoformat(),
        "country": typed["country"] or "all",
        "min_sold": typed["min_sold"] or str(DEFAULT_MIN_SOLD),
    }
    dates: dict[str, date] = {}
    for name in ("from", "to"):
        if name in errors:
            continue
        day, error = _parse_date(values[name])
        if error:
            errors[name] = error
        else:
            dates[name] = day
    if "from" in dates and "to" in dates:
        if dates["from"] > dates["to"]:
            errors["to"] = staff_text("The end date is before the start date (%(start)s).", start=values["from"])
        elif (dates["to"] - dates["from"]).days + 1 > MAX_DAYS:
            errors["to"] = staff_text("Choose at most %(limit)s days (two years); this range has %(days)s.", limit=MAX_DAYS,
                                      days=(dates["to"] - dates["from"]).days + 1)
    country = values["country"].upper()
    if "country" not in errors and country != "ALL" and country not in COUNTRIES:
        errors["country"] = staff_text("Choose %(countries)s or all countries.", countries=", ".join(COUNTRIES))
    min_sold = values["min_sold"]
    if "min_sold" not in errors and (not _WHOLE_NUMBER.match(min_sold) or not 1 <= int(min_sold) <= MAX_MIN_SOLD):
        errors["min_sold"] = staff_text("Enter a whole number of units, at least 1.")
    if errors:
        return ParsedFilter(None, values, errors)
    values["country"] = "all" if country == "ALL" else country
    chosen = DashboardFilter(dates["from"], dates["to"], None if country == "ALL" else country, int(min_sold), tz)
    return ParsedFilter(chosen, values, {})

"""Exchange rates for customs documents: fetched from the ECB (or ECB_RATES_URL), stored, overridden by hand.

Rows are units of a currency per 1 EUR on a date, exactly as the ECB publishes them, with the
source they came from ("ECB", or "manual" for an admin's override). Picking a rate for a day
takes, per currency, the latest row on or before that day; on the same day a manual row wins.

Conversion (customs.rates): the cross rate A->B is rate[B] / rate[A] rounded half up to 10
significant digits; an amount is converted once, exactly, with that printed rate and rounded
half up (away from zero on a tie) to the target currency's minor unit. So anyone can redo the
arithmetic from the document: 100.00 NOK at 0.98765 SEK/NOK = 98.765 SEK -> 98.77 SEK.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import httpx
from babel.numbers import is_currency
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from customs.rates import (
    ECB_DAILY_URL,
    ECB_SOURCE,
    RateError,
    RateTable,
    convert_minor,
    cross_rate,
    cross_rate_source,
    fetch_ecb_rates,
)
from portal.models import ExchangeRate
from portal.staff.accounts import audit

MANUAL_SOURCE = "manual"
RATES_URL_ENV = "ECB_RATES_URL"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_RATE = Decimal("1e8")  # Numeric(18, 10): 8 digits before the point
_RATE_PLACES = Decimal("1e-10")


class RateInputError(ValueError):
    """A manual rate that cannot be stored; `fields` maps form fields to messages."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def rates_url() -> str:
    """Where to fetch from: ECB_RATES_URL, else the ECB daily reference rates XML."""
    return os.environ.get(RATES_URL_ENV, "").strip() or ECB_DAILY_URL


def plain(rate: Decimal) -> Decimal:
    """Drop the trailing zeros Numeric(18, 10) adds, without going to exponent notation."""
    value = rate.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value


# --- Storing -----------------------------------------------------------------------------------


def _upsert(session: Session, currency: str, rate_date: date, rate: Decimal, source: str, actor: str,
            now: datetime) -> tuple[ExchangeRate, bool]:
    """Insert or update the (currency, date, source) row; True when something changed."""
    row = session.exec(select(ExchangeRate).where(
        ExchangeRate.currency == currency, ExchangeRate.rate_date == rate_date, ExchangeRate.source == source,
    )).first()
    if row is not None:
        if plain(row.rate) == plain(rate):
            return row, False
        row.rate, row.fetched_at, row.created_by = rate, now, actor
        session.add(row)
        return row, True
    row = ExchangeRate(currency=currency, rate_date=rate_date, rate=rate, source=source, fetched_at=now, created_by=actor)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent fetch stored the same day first
        return _upsert(session, currency, rate_date, rate, source, actor, now)
    return row, True


def store_table(session: Session, table: RateTable, now: datetime, actor: str = "system") -> int:
    """Store every rate of a fetched table (EUR, the base, is implicit); returns rows added or changed."""
    changed = 0
    for currency, rate in sorted(table.rates.items()):
        if currency == "EUR":
            continue
        _, did = _upsert(session, currency, table.date, rate, table.source, actor, now)
        changed += did
    return changed


@dataclass(frozen=True)
class FetchResult:
    url: str
    rate_date: date
    currencies: int
    changed: int


def fetch_and_store(session: Session, now: datetime, url: str | None = None,
                    client: httpx.Client | None = None, actor: str = "system") -> FetchResult:
    """Download the daily table with httpx and store it; every failure is a RateError with the reason."""
    source_url = url or rates_url()
    table = fetch_ecb_rates(source_url, client=client)
    changed = store_table(session, table, now, actor)
    return FetchResult(source_url, table.date, len(table.rates) - 1, changed)


def parse_rate(text: str) -> Decimal:
    try:
        rate = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise ValueError("Enter the rate as a number, e.g. 11.6275.") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError("The rate must be a positive number.")
    if rate >= _MAX_RATE:
        raise ValueError("The rate is too large (at most 8 digits before the decimal point).")
    if rate != rate.quantize(_RATE_PLACES):
        raise ValueError("Use at most 10 decimals.")
    return rate


def set_manual_rate(session: Session, currency: str, rate_date: str | date, rate_text: str, actor: str,
                    now: datetime) -> ExchangeRate:
    """An admin's rate (units of `currency` per 1 EUR) for a day; it wins over the fetched one that day."""
    errors: dict[str, str] = {}
    code = currency.strip().upper()
    if not _CURRENCY.match(code):
        errors["currency"] = "Enter a three-letter ISO currency code, e.g. NOK."
    elif code == "EUR":
        errors["currency"] = "Rates are per 1 EUR, so EUR itself is always 1."
    elif not is_currency(code):
        errors["currency"] = f"{code} is not an ISO 4217 currency code."
    day = rate_date
    if not isinstance(day, date):
        try:
            day = date.fromisoformat(str(rate_date).strip())
        except ValueError:
            errors["rate_date"] = "Enter the date as YYYY-MM-DD."
    if isinstance(day, date) and day > now.date() + timedelta(days=1):
        errors["rate_date"] = "A rate cannot be for a day in the future."
    try:
        rate = parse_rate(rate_text)
    except ValueError as exc:
        errors["rate"] = str(exc)
    if errors:
        raise RateInputError(errors)
    previous = best_rate(session, code, day)
    row, _ = _upsert(session, code, day, rate, MANUAL_SOURCE, actor, now)
    audit(session, actor, "norway.rate_override", f"rate:{code}:{day.isoformat()}",
          {"rate": str(plain(previous.rate)), "source": previous.source} if previous else {},
          {"rate": str(plain(rate)), "source": MANUAL_SOURCE})
    return row


def remove_manual_rate(session: Session, rate_id: int, actor: str) -> ExchangeRate | None:
    """Delete an override so the fetched rate counts again; None when there is no such manual row."""
    row = session.get(ExchangeRate, rate_id)
    if row is None or row.source != MANUAL_SOURCE:
        return None
    audit(session, actor, "norway.rate_override_removed", f"rate:{row.currency}:{row.rate_date.isoformat()}",
          {"rate": str(plain(row.rate)), "source": MANUAL_SOURCE}, {})
    session.delete(row)
    return row


# --- Reading -------------------------------------------------------------------------------


def best_rate(session: Session, currency: str, on: date) -> ExchangeRate | None:
    """The latest row on or before `on`; on the same day a manual override beats a fetched rate."""
    return session.exec(
        select(ExchangeRate)
        .where(ExchangeRate.currency == currency.upper(), ExchangeRate.rate_date <= on)
        .order_by(ExchangeRate.rate_date.desc(), sa.case((ExchangeRate.source == MANUAL_SOURCE, 0), else_=1),
                  ExchangeRate.id.desc())
        .limit(1)
    ).first()


def rate_table_for(session: Session, on: date, currencies: Iterable[str]) -> RateTable:
    """A RateTable for `on` with the given currencies; raises RateError naming what is missing.

    The table's date is the newest of the chosen rows. A currency whose row is older than that,
    or comes from another source, carries its own "source date" note, which the documents print.
    """
    chosen: dict[str, ExchangeRate] = {}
    missing = []
    for code in sorted({c.upper() for c in currencies} - {"EUR"}):
        row = best_rate(session, code, on)
        if row is None:
            missing.append(code)
        else:
            chosen[code] = row
    if missing:
        raise RateError(
            f"No exchange rate for {', '.join(missing)} on or before {on.isoformat()}: "
            "fetch the ECB rates or enter a manual rate on the exchange rates page."
        )
    if not chosen:
        return RateTable(date=on, source=ECB_SOURCE, rates={})
    table_date = max(row.rate_date for row in chosen.values())
    sources = [row.source for row in chosen.values() if row.rate_date == table_date]
    table_source = ECB_SOURCE if ECB_SOURCE in sources else sorted(sources)[0]
    notes = {}
    for code, row in chosen.items():
        if row.rate_date != table_date:
            notes[code] = f"{row.source} {row.rate_date.isoformat()}"
        elif row.source != table_source:
            notes[code] = row.source
    return RateTable(date=table_date, source=table_source, rates={c: plain(r.rate) for c, r in chosen.items()},
                     sources=notes)


@dataclass(frozen=True)
class Conversion:
    amount_minor: int
    from_currency: str
    to_currency: str
    result_minor: int
    rate: Decimal
    rate_date: date
    source: str


def convert(session: Session, amount_minor: int, from_ccy: str, to_ccy: str, on: date) -> Conversion:
    """Convert with the stored rates for `on` (see the module docstring for the rounding rule)."""
    table = rate_table_for(session, on, {from_ccy, to_ccy})
    rate = cross_rate(table, from_ccy, to_ccy)
    return Conversion(amount_minor, from_ccy.upper(), to_ccy.upper(),
                      convert_minor(amount_minor, from_ccy, to_ccy, rate), rate, table.date,
                      cross_rate_source(table, from_ccy, to_ccy))


def recent_rates(session: Session, days: int = 10) -> list[ExchangeRate]:
    """Rows of the last `days` distinct rate dates, newest first, for the rates page."""
    dates = session.exec(
        select(ExchangeRate.rate_date).distinct().order_by(ExchangeRate.rate_date.desc()).limit(days)
    ).all()
    if not dates:
        return []
    return list(session.exec(
        select(ExchangeRate).where(ExchangeRate.rate_date.in_(dates))
        .order_by(ExchangeRate.rate_date.desc(), ExchangeRate.currency, ExchangeRate.source)
    ))


__all__ = [
    "MANUAL_SOURCE", "Conversion", "FetchResult", "RateError", "RateInputError", "best_rate", "convert",
    "fetch_and_store", "rate_table_for", "rates_url", "recent_rates", "remove_manual_rate", "set_manual_rate",
    "store_table",
]

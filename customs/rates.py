"""Exchange rates: ECB reference rates, cross rates and minor-unit conversion.

ECB rates are quoted as units of currency per 1 EUR. A cross rate from A to
B (units of B per 1 A) is rate[B] / rate[A], rounded half up to
CROSS_RATE_SIGNIFICANT_DIGITS significant digits; that rounded rate is the
one printed on documents and the one used to convert, so anyone can redo the
arithmetic from the paper.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from functools import lru_cache

import httpx
from babel.numbers import get_currency_precision

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
ECB_SOURCE = "ECB"
CROSS_RATE_SIGNIFICANT_DIGITS = 10

_ECB_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
_CROSS_CONTEXT = Context(prec=CROSS_RATE_SIGNIFICANT_DIGITS, rounding=ROUND_HALF_UP)
# Wide enough that amount * rate is exact before the single rounding step.
_EXACT_CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP)


class RateError(ValueError):
    """A rate is missing, malformed or could not be fetched."""


class UnknownCurrencyError(RateError):
    pass


@dataclass(frozen=True)
class RateTable:
    """Rates per 1 EUR on one date. `sources` records per-currency overrides."""

    date: date
    source: str
    rates: dict[str, Decimal]
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rates = {code.upper(): Decimal(rate) for code, rate in self.rates.items()}
        rates["EUR"] = Decimal(1)
        for code, rate in rates.items():
            if not rate.is_finite() or rate <= 0:
                raise RateError(f"rate for {code} must be a positive number, got {rate}")
        object.__setattr__(self, "rates", rates)

    def rate(self, currency: str) -> Decimal:
        try:
            return self.rates[currency.upper()]
        except KeyError:
            raise UnknownCurrencyError(
                f"no {self.source} rate for {currency.upper()} on {self.date.isoformat()}; "
                "add a manual rate or use another day's table"
            ) from None

    def source_for(self, currency: str) -> str:
        return self.sources.get(currency.upper(), self.source)

    def with_override(self, currency: str, rate: Decimal | str, source: str = "manual") -> RateTable:
        """Copy with one currency's rate (per 1 EUR) replaced and its source noted."""
        code = currency.upper()
        if code == "EUR":
            raise RateError("EUR is the base of the table; its rate is always 1")
        return RateTable(
            date=self.date,
            source=self.source,
            rates={**self.rates, code: Decimal(rate)},
            sources={**self.sources, code: source},
        )


def cross_rate(table: RateTable, from_ccy: str, to_ccy: str) -> Decimal:
    """Units of `to_ccy` per 1 `from_ccy`, rounded half up to 10 significant digits."""
    if from_ccy.upper() == to_ccy.upper():
        return Decimal(1)
    return _CROSS_CONTEXT.divide(table.rate(to_ccy), table.rate(from_ccy))


def cross_rate_source(table: RateTable, from_ccy: str, to_ccy: str) -> str:
    sources = dict.fromkeys(table.source_for(c) for c in (from_ccy, to_ccy) if c.upper() != "EUR")
    return "/".join(sources) or table.source


@lru_cache(maxsize=None)
def minor_digits(currency: str) -> int:
    """Digits after the decimal point (SEK 2, ISK 0, JPY 0) from CLDR via Babel."""
    return get_currency_precision(currency.upper())


def convert_minor(amount_minor: int, from_ccy: str, to_ccy: str, rate: Decimal) -> int:
    """Convert minor units with `rate` (to_ccy per 1 from_ccy).

    The amount is turned into major units, multiplied by the rate exactly and
    rounded once, half up (away from zero on a tie), to the target currency's
    minor unit. Example: 100.00 NOK at 0.98765 SEK/NOK = 98.765 SEK -> 98.77 SEK;
    1 ISK at 0.075 SEK/ISK = 0.075 SEK -> 0.08 SEK.
    """
    exact = _EXACT_CONTEXT.multiply(Decimal(amount_minor).scaleb(-minor_digits(from_ccy)), rate)
    scaled = exact.scaleb(minor_digits(to_ccy))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_EXACT_CONTEXT))


def format_minor(amount_minor: int, currency: str) -> str:
    """Minor units as a plain decimal string: 12345 SEK -> '123.45', 5 ISK -> '5'."""
    return str(Decimal(amount_minor).scaleb(-minor_digits(currency)))


def parse_minor(text: str, currency: str) -> int:
    """Inverse of format_minor; refuses more decimals than the currency has."""
    try:
        value = Decimal(text.strip()).scaleb(minor_digits(currency))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} has more decimals than {currency} allows")
    return int(value)


def parse_ecb_xml(content: bytes | str, source: str = ECB_SOURCE) -> RateTable:
    """Parse the ECB eurofxref-daily.xml format (first day found in the file)."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise RateError(f"ECB rates are not well-formed XML: {exc}") from exc
    day = next((cube for cube in root.iter(f"{_ECB_NS}Cube") if cube.get("time")), None)
    if day is None:
        raise RateError("ECB rates XML has no <Cube time=...> element")
    try:
        rate_date = date.fromisoformat(day.get("time", ""))
    except ValueError as exc:
        raise RateError(f"ECB rates XML has a bad date {day.get('time')!r}") from exc
    rates: dict[str, Decimal] = {}
    for cube in day.findall(f"{_ECB_NS}Cube"):
        currency, rate_text = cube.get("currency"), cube.get("rate")
        if not currency or rate_text is None:
            raise RateError(f"ECB rates XML has a <Cube> without currency/rate: {cube.attrib}")
        try:
            rates[currency] = Decimal(rate_text)
        except InvalidOperation:
            raise RateError(f"ECB rate for {currency} is not a number: {rate_text!r}") from None
    if not rates:
        raise RateError(f"ECB rates XML has no rates for {rate_date.isoformat()}")
    return RateTable(date=rate_date, source=source, rates=rates)


def fetch_ecb_rates(
    url: str = ECB_DAILY_URL, client: httpx.Client | None = None, timeout: float = 10.0
) -> RateTable:
    """Download and parse the ECB daily rates; every failure becomes a RateError."""
    owned = client is None
    http = client or httpx.Client()
    try:
        response = http.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise RateError(f"ECB rates download from {url} failed: HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise RateError(f"ECB rates download from {url} failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        if owned:
            http.close()
    return parse_ecb_xml(response.content)

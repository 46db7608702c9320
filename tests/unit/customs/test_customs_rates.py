from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import httpx
import pytest

from tests.loopback import serve_routes
from customs.rates import (
    RateError,
    RateTable,
    UnknownCurrencyError,
    convert_minor,
    cross_rate,
    cross_rate_source,
    fetch_ecb_rates,
    format_minor,
    minor_digits,
    parse_ecb_xml,
    parse_minor,
)


def test_parse_fixture(rates):
    assert rates.date == date(2024, 5, 17)
    assert rates.source == "ECB"
    assert rates.rates["SEK"] == Decimal("11.6200")
    assert rates.rates["NOK"] == Decimal("11.6275")
    assert rates.rates["GBP"] == Decimal("0.85500")
    assert rates.rates["EUR"] == Decimal(1)
    assert len(rates.rates) == 9  # 8 quoted + EUR


def test_parse_rejects_garbage():
    with pytest.raises(RateError, match="not well-formed XML"):
        parse_ecb_xml(b"<gesmes:Envelope><Cube>")
    with pytest.raises(RateError, match="no <Cube time"):
        parse_ecb_xml(b"<root/>")
    bad_rate = (
        b'<e xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube>'
        b'<Cube time="2024-05-17"><Cube currency="SEK" rate="eleven"/></Cube></Cube></e>'
    )
    with pytest.raises(RateError, match="SEK is not a number"):
        parse_ecb_xml(bad_rate)


def test_cross_rates(rates):
    assert cross_rate(rates, "EUR", "SEK") == Decimal("11.6200")
    assert cross_rate(rates, "SEK", "SEK") == 1
    # 11.62 / 11.6275 = 0.99935497742...: 10 significant digits, half up
    assert cross_rate(rates, "NOK", "SEK") == Decimal("0.9993549774")
    assert cross_rate(rates, "SEK", "EUR") == Decimal("0.08605851979")
    assert cross_rate(rates, "nok", "sek") == cross_rate(rates, "NOK", "SEK")


def test_unknown_currency(rates):
    with pytest.raises(UnknownCurrencyError, match="no ECB rate for XYZ on 2024-05-17"):
        cross_rate(rates, "XYZ", "SEK")


def test_manual_override(rates):
    table = rates.with_override("NOK", "11.5000")
    assert table.rates["NOK"] == Decimal("11.5000")
    assert rates.rates["NOK"] == Decimal("11.6275")  # original untouched
    assert table.source_for("NOK") == "manual"
    assert table.source_for("SEK") == "ECB"
    assert cross_rate_source(table, "NOK", "SEK") == "manual/ECB"
    assert cross_rate_source(table, "EUR", "SEK") == "ECB"
    with pytest.raises(RateError):
        rates.with_override("EUR", "2")
    with pytest.raises(RateError):
        rates.with_override("NOK", "0")
    added = rates.with_override("PLN", "4.3", source="Riksbank")
    assert cross_rate(added, "PLN", "SEK") == Decimal("2.702325581")


def test_minor_digits_from_babel():
    assert [minor_digits(c) for c in ("SEK", "NOK", "DKK", "EUR", "ISK", "JPY")] == [2, 2, 2, 2, 0, 0]


@pytest.mark.parametrize(
    ("amount", "src", "dst", "rate", "expected"),
    [
        (10000, "NOK", "SEK", Decimal("0.98765"), 9877),  # 98.765 -> 98.77 (half up)
        (10000, "NOK", "SEK", Decimal("0.98764"), 9876),  # 98.764 -> 98.76
        (10000, "NOK", "SEK", Decimal("0.98755"), 9876),  # 98.755 -> 98.76 (not banker's 98.76/98.75)
        (10000, "NOK", "SEK", Decimal("0.98745"), 9875),  # 98.745 -> 98.75 (banker's would give 98.74)
        (1, "ISK", "SEK", Decimal("0.075"), 8),  # 0.075 -> 0.08
        (1, "ISK", "SEK", Decimal("0.0749"), 7),
        (12345, "SEK", "ISK", Decimal("12.5"), 1543),  # 123.45 * 12.5 = 1543.125 -> 1543 ISK
        (150, "SEK", "JPY", Decimal("14.5"), 22),  # 1.50 * 14.5 = 21.75 -> 22 JPY
        (-10000, "NOK", "SEK", Decimal("0.98765"), -9877),  # ties go away from zero
        (0, "NOK", "SEK", Decimal("0.9"), 0),
    ],
)
def test_rounding_rule(amount, src, dst, rate, expected):
    assert convert_minor(amount, src, dst, rate) == expected


def test_large_amounts_stay_exact():
    assert convert_minor(10**20 + 1, "SEK", "SEK", Decimal(1)) == 10**20 + 1


def test_format_and_parse_minor():
    assert format_minor(12345, "SEK") == "123.45"
    assert format_minor(5, "SEK") == "0.05"
    assert format_minor(5, "ISK") == "5"
    assert parse_minor("123.45", "SEK") == 12345
    assert parse_minor("5", "ISK") == 5
    with pytest.raises(ValueError):
        parse_minor("1.5", "ISK")


# ---------------------------------------------------------------- HTTP


@pytest.fixture
def server(ecb_xml) -> Iterator[str]:
    with serve_routes({
        "/eurofxref-daily.xml": (200, ecb_xml),
        "/broken": (500, b"internal error"),
        "/malformed.xml": (200, b"<?xml version='1.0'?><gesmes:Envelope><Cube time="),
    }) as running:
        yield running.url


def test_fetch_from_local_server(server):
    with httpx.Client() as client:
        table = fetch_ecb_rates(f"{server}/eurofxref-daily.xml", client)
    assert table.date == date(2024, 5, 17)
    assert table.rates["SEK"] == Decimal("11.6200")


def test_fetch_without_client(server):
    assert fetch_ecb_rates(f"{server}/eurofxref-daily.xml").rates["NOK"] == Decimal("11.6275")


def test_fetch_http_500_is_a_clear_error(server):
    with pytest.raises(RateError, match="failed: HTTP 500"):
        fetch_ecb_rates(f"{server}/broken")


def test_fetch_malformed_xml_is_a_clear_error(server):
    with pytest.raises(RateError, match="not well-formed XML"):
        fetch_ecb_rates(f"{server}/malformed.xml")


def test_fetch_connection_refused_is_a_clear_error():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RateError, match="ConnectError"):
        fetch_ecb_rates(f"http://127.0.0.1:{port}/eurofxref-daily.xml", timeout=2)


def test_rate_table_rejects_non_positive():
    with pytest.raises(RateError):
        RateTable(date(2024, 1, 1), "ECB", {"SEK": Decimal("-1")})

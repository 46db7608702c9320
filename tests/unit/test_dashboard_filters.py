"""The dashboard's pure parts: the GET filter, percentiles from a day histogram, the text of shares and days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction

import pytest

from portal.dashboard.filters import parse_filter
from portal.dashboard.metrics import (
    DashboardFilter,
    days_text,
    histogram_buckets,
    percent_text,
    percentile,
    week_bucket,
    weeks_of,
)

TODAY = date(2025, 3, 31)
TZ = "Europe/Stockholm"


def parse(**params):
    return parse_filter({k: v if isinstance(v, list) else [v] for k, v in params.items()}, TODAY, TZ)


def test_defaults_are_the_last_90_days_everywhere():
    parsed = parse()
    assert parsed.errors == {}
    f = parsed.filter
    assert (f.date_from, f.date_to, f.country, f.min_sold) == (date(2025, 1, 1), TODAY, None, 5)
    assert (f.date_to - f.date_from).days + 1 == 90
    assert parsed.values == {"from": "2025-01-01", "to": "2025-03-31", "country": "all", "min_sold": "5"}


def test_range_bounds_are_local_midnights_in_utc():
    f = parse(**{"from": "2025-03-01", "to": "2025-03-31", "country": "no"}).filter
    assert f.country == "NO" and f.country_code == "NO"
    assert f.start == datetime(2025, 2, 28, 23, 0, tzinfo=UTC)  # CET
    assert f.end == datetime(2025, 3, 31, 22, 0, tzinfo=UTC)  # CEST from 30 March
    assert f.query() == {"from": "2025-03-01", "to": "2025-03-31", "country": "NO", "min_sold": "5"}


def test_a_single_day_and_two_years_are_allowed():
    assert parse(**{"from": "2025-03-31", "to": "2025-03-31"}).errors == {}
    assert parse(**{"from": "2023-04-01", "to": "2025-03-31"}).errors == {}  # 731 days
    assert "to" in parse(**{"from": "2023-03-31", "to": "2025-03-31"}).errors  # 732 days


@pytest.mark.parametrize("params, field", [
    ({"from": "2025-02-29"}, "from"), ({"to": "2025-3-1"}, "to"), ({"from": "2025-W10-1"}, "from"),
    ({"from": "20250301"}, "from"), ({"to": "9999-12-31"}, "to"), ({"country": "SEK"}, "country"),
    ({"country": ["SE", "NO"]}, "country"), ({"min_sold": "-1"}, "min_sold"), ({"min_sold": "1.5"}, "min_sold"),
    ({"min_sold": "1000001"}, "min_sold"), ({"min_sold": "٣"}, "min_sold"),
])
def test_bad_values_are_refused_with_the_typed_value_kept(params, field):
    parsed = parse(**params)
    assert parsed.filter is None and list(parsed.errors) == [field]
    typed = params[field][0] if isinstance(params[field], list) else params[field]
    assert parsed.values[field] == typed


def test_typed_values_are_bounded():
    parsed = parse(country="X" * 5000)
    assert len(parsed.values["country"]) == 40 and "country" in parsed.errors


def test_percentile_matches_percentile_cont():
    days = [(1, 1), (2, 1), (3, 1), (4, 1), (10, 1)]
    assert percentile(days, Fraction(1, 2)) == 3
    assert percentile(days, Fraction(9, 10)) == Fraction(76, 10)
    assert percentile([(1, 1), (10, 1)], Fraction(1, 2)) == Fraction(11, 2)
    assert percentile([(5, 3)], Fraction(9, 10)) == 5
    assert percentile([(0, 9), (30, 1)], Fraction(9, 10)) == 3  # 9 refunds on day 0, one after 30 days
    assert percentile([], Fraction(1, 2)) is None


def test_percentile_agrees_with_the_statistics_module():
    import statistics

    values = [0, 0, 1, 2, 2, 2, 3, 5, 8, 13, 21, 21, 40]
    histogram = sorted((v, values.count(v)) for v in set(values))
    assert float(percentile(histogram, Fraction(1, 2))) == statistics.median(values)
    assert float(percentile(histogram, Fraction(9, 10))) == pytest.approx(
        statistics.quantiles(values, n=10, method="inclusive")[-1])


def test_texts_round_half_up():
    assert percent_text(Fraction(1, 3)) == "33.3" and percent_text(Fraction(2, 3)) == "66.7"
    assert percent_text(Fraction(1, 2000)) == "0.1" and percent_text(Fraction(1)) == "100.0"
    assert days_text(Fraction(76, 10)) == "7.6" and days_text(Fraction(3)) == "3.0" and days_text(None) == "—"
    assert days_text(Fraction(1, 20)) == "0.1"


def test_histogram_buckets_fill_gaps_and_stay_few():
    assert histogram_buckets([(1, 2), (3, 1)]) == [("0", 0), ("1", 2), ("2", 0), ("3", 1)]
    wide = histogram_buckets([(0, 1), (95, 2)])
    assert len(wide) <= 31 and wide[0] == ("0–3", 1) and wide[-1] == ("92–95", 2)
    assert sum(n for _, n in wide) == 3


def test_iso_weeks_of_a_range_start_on_mondays():
    f = DashboardFilter(date(2025, 3, 1), date(2025, 3, 31), None, 5, TZ)
    weeks = weeks_of(f)
    assert [w.label for w in weeks] == ["2025-W09", "2025-W10", "2025-W11", "2025-W12", "2025-W13", "2025-W14"]
    assert weeks[0].monday == date(2025, 2, 24) and weeks[-1].monday == date(2025, 3, 31)
    new_year = weeks_of(DashboardFilter(date(2024, 12, 30), date(2025, 1, 5), None, 5, TZ))
    assert [w.label for w in new_year] == ["2025-W01"]
    assert str(week_bucket(None, new_year, TZ).compile(compile_kwargs={"literal_binds": True})) == "0"

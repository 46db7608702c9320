"""The merchant dashboard over HTTP on a known dataset: exact figures in the page and the CSV downloads,
filters that change them, bad filters kept and explained, roles.

The dataset lives in March 2025 (Europe/Stockholm, UTC+1 then), away from the demo orders (placed in the
last weeks), and every figure below is worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from portal.models import Customer, Order, OrderLine, Refund, Return, ReturnEvent, ReturnLine

UTC = timezone.utc
MARCH = "from=2025-03-01&to=2025-03-31"
_serial = itertools.count(1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the dataset ----------------------------------------------------------------------------------


class Builder:
    def __init__(self, session: Session):
        self.s = session

    def order(self, country: str, currency: str, placed: str, lines: list[tuple[str, str, int, bool]]) -> dict[str, int]:
        n = next(_serial)
        customer = Customer(email=f"dash{n}@example.com", first_name="Dash", last_name=str(n), street="Gatan 1",
                            postcode="11122", city="Stad", country=country)
        self.s.add(customer)
        self.s.flush()
        order = Order(number=f"DASH-{country}-{n}", customer_id=customer.id, email=customer.email, postcode="11122",
                      country=country, currency=currency, placed_at=at(placed), delivered_at=at(placed) + timedelta(days=2))
        self.s.add(order)
        self.s.flush()
        ids = {"order": order.id}
        for no, (sku, category, quantity, returnable) in enumerate(lines, start=1):
            line = OrderLine(order_id=order.id, line_no=no, sku=sku, name=f"Product {sku}", category=category,
                             quantity=quantity, unit_price_minor=10000, returnable=returnable)
            self.s.add(line)
            self.s.flush()
            ids[sku] = line.id
        return ids

    def ret(self, order: dict[str, int], created: str, lines: list[tuple[str, int, str]], status: str = "resolved",
            norway: bool = False) -> Return:
        n = next(_serial)
        ret = Return(rma=f"RD{n:05d}", order_id=order["order"], status=status, status_token=f"token-dash-{n}",
                     idempotency_key=f"dash-{n}", is_norway=norway, created_at=at(created), updated_at=at(created))
        self.s.add(ret)
        self.s.flush()
        for sku, quantity, reason in lines:
            self.s.add(ReturnLine(return_id=ret.id, order_line_id=order[sku], quantity=quantity, reason=reason))
        return ret

    def refund(self, ret: Return, amount: int, currency: str, state: str = "issued", issued: str | None = None,
               due: date | None = None) -> None:
        self.s.add(Refund(return_id=ret.id, amount_minor=amount, currency=currency, state=state,
                          issued_at=at(issued) if issued else None, due_date=due or date(2025, 3, 30),
                          idempotency_key=f"dash-refund-{next(_serial)}"))

    def at_consolidation(self, ret: Return, since: datetime) -> None:
        self.s.add(ReturnEvent(return_id=ret.id, type="parcel.at_consolidation", at=since,
                               data={"from": "in_transit", "to": "at_consolidation"}))


def today_local() -> date:
    return datetime.now(ZoneInfo("Europe/Stockholm")).date()


@pytest.fixture
def dataset(demo_engine):
    now = datetime.now(UTC)
    today = today_local()
    with Session(demo_engine) as s:
        b = Builder(s)
        # Sold in March (returnable units): A-1 10+5+5, B-2 5, C-3 1, D-4 6; G-9 is a gift card (not returnable).
        s1 = b.order("SE", "SEK", "2025-03-03T10:00:00", [("A-1", "shirts", 10, True), ("B-2", "shoes", 5, True)])
        s2 = b.order("SE", "SEK", "2025-03-15T10:00:00", [("A-1", "shirts", 5, True), ("C-3", "shirts", 1, True),
                                                           ("G-9", "giftcard", 6, False)])
        n1 = b.order("NO", "NOK", "2025-03-04T10:00:00", [("A-1", "shirts", 5, True), ("D-4", "jackets", 6, True)])
        old = b.order("SE", "SEK", "2025-02-20T10:00:00", [("A-1", "shirts", 10, True)])
        n0 = b.order("NO", "NOK", "2024-12-01T10:00:00", [("D-4", "jackets", 2, True)])

        r1 = b.ret(s1, "2025-03-07T08:00:00", [("A-1", 3, "too_small"), ("B-2", 1, "damaged")])
        r2 = b.ret(s2, "2025-03-16T09:00:00", [("A-1", 2, "too_large"), ("C-3", 1, "too_small")])
        r3 = b.ret(n1, "2025-03-06T10:00:00", [("A-1", 1, "too_small"), ("D-4", 3, "not_as_described")], norway=True)
        b.ret(s1, "2025-03-07T10:00:00", [("A-1", 4, "changed_mind")], status="cancelled")  # never counted
        r5 = b.ret(n1, "2025-03-12T10:00:00", [("D-4", 1, "damaged")], norway=True)
        r6 = b.ret(old, "2025-02-25T10:00:00", [("A-1", 10, "other")])

        # Paid: days from registration 2 (2 d 15.5 h), 2 (2 d 1 h), 3, 1, 10 (+ 2 in February). Monday 10 March
        # 00:30 in Stockholm is still Sunday in UTC: the refund belongs to week 11, not 10.
        b.refund(r1, 40000, "SEK", issued="2025-03-09T23:30:00")
        b.refund(r2, 25000, "SEK", issued="2025-03-18T10:00:00")
        b.refund(r2, 5000, "SEK", issued="2025-03-19T10:00:00")
        b.refund(r3, 150000, "NOK", issued="2025-03-07T11:00:00")
        b.refund(r5, 30000, "NOK", issued="2025-03-22T10:00:00")
        b.refund(r6, 99900, "SEK", issued="2025-02-27T10:00:00")
        # Not paid: two overdue (SE failed since 25 March 2025, NO two days late), one not due yet.
        b.refund(r2, 7000, "SEK", state="failed", due=date(2025, 3, 25))
        b.refund(r3, 12000, "NOK", state="requested", due=today - timedelta(days=2))
        b.refund(r1, 3000, "SEK", state="requested", due=today + timedelta(days=3))

        # Norway, waiting now: 8 days 2 hours (day 9: 4 days beyond the 5 free at NOK 50) and 1 day 1 hour.
        waiting_long = b.ret(n0, "2024-12-05T10:00:00", [("D-4", 1, "other")], status="at_consolidation", norway=True)
        waiting_short = b.ret(n0, "2024-12-06T10:00:00", [("D-4", 1, "other")], status="at_consolidation", norway=True)
        b.at_consolidation(waiting_long, now - timedelta(days=8, hours=2))
        b.at_consolidation(waiting_short, now - timedelta(days=1, hours=1))
        s.commit()
        return {"r2": r2.rma, "r3": r3.rma, "waiting_long": waiting_long.rma, "waiting_short": waiting_short.rma,
                "today": today}


# --- reading the page -----------------------------------------------------------------------------


class _Tables(HTMLParser):
    """Cell texts of every <table id=...>, row by row."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self.current = attrs["id"]
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[self.current].append(self.row)
            self.row = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id (up to its first closing tag of the same name)."""
    start = html.index(f'id="{element_id}"')
    tag = html.rfind("<", 0, start)
    name = html[tag + 1:html.index(" ", tag)]
    end = html.index(f"</{name}>", start)
    inner = html[html.index(">", start) + 1:end]
    parser = HTMLParser()
    words: list[str] = []
    parser.handle_data = words.append
    parser.feed(inner)
    return " ".join(" ".join(words).split())


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.text)))


@pytest.fixture
def support(staff_client, dataset):
    return staff_client("support")


# --- figures ----------------------------------------------------------------------------------------


def test_march_figures_in_the_page(support, dataset):
    response = support.get(f"/staff/dashboard?{MARCH}")
    assert response.status_code == 200
    html = response.text
    found = tables(html)
    # 6 of 20 returned (the cancelled return's 4 do not count); B-2 1 of 5; C-3 sold once: under the threshold.
    assert found["return-rate-sku-table"][1:] == [
        ["D-4", "Product D-4", "6", "4", "66.7 %"],
        ["A-1", "Product A-1", "20", "6", "30.0 %"],
        ["B-2", "Product B-2", "5", "1", "20.0 %"],
    ]
    assert found["return-rate-category-table"][1:] == [
        ["jackets", "6", "4", "66.7 %"], ["shirts", "21", "7", "33.3 %"], ["shoes", "5", "1", "20.0 %"],
    ]
    assert text_of(html, "figure-return-rate") == "Return rate 37.5 % 12 of 32 units sold"
    assert found["reasons-table"][1:] == [
        ["Too small", "too_small", "5", "41.7 %"], ["Not as described", "not_as_described", "3", "25.0 %"],
        ["Arrived damaged", "damaged", "2", "16.7 %"], ["Too large", "too_large", "2", "16.7 %"],
        ["Total", "12", "100.0 %"],
    ]
    weekly = {row[0]: row[1:] for row in found["refunds-by-week-table"][1:]}
    assert found["refunds-by-week-table"][0] == ["Week", "Starts", "NOK", "SEK"]
    assert list(weekly) == ["2025-W09", "2025-W10", "2025-W11", "2025-W12", "2025-W13", "2025-W14"]
    assert weekly["2025-W10"] == ["2025-03-03", "NOK1,500.00 (1)", "–"]
    assert weekly["2025-W11"] == ["2025-03-10", "–", "SEK400.00 (1)"]  # paid 00:30 on Monday, local time
    assert weekly["2025-W12"] == ["2025-03-17", "NOK300.00 (1)", "SEK300.00 (2)"]
    assert weekly["2025-W09"] == ["2025-02-24", "–", "–"]
    assert text_of(html, "figure-refunded") == "Refunded NOK1,800.00 SEK700.00 5 refunds paid"
    # Days 1, 2, 2, 3, 10: median 2, 90th percentile 3 + 0.6 x 7 = 7.2.
    assert text_of(html, "days-median") == "Median: 2.0"
    assert text_of(html, "days-p90") == "90th percentile: 7.2"
    assert text_of(html, "days-count") == "Refunds: 5"
    assert found["days-table"][1:] == [["1", "1"], ["2", "2"], ["3", "1"], ["10", "1"]]  # counted per whole day



def test_overdue_and_norway_storage(support, dataset):
    html = support.get(f"/staff/dashboard?{MARCH}").text
    days_late = (dataset["today"] - date(2025, 3, 25)).days
    assert text_of(html, "overdue-count") == "2"
    rows = tables(html)["overdue-table"][1:]
    assert [row[0] for row in rows] == [dataset["r2"], dataset["r3"]]
    assert rows[0][2:4] == ["SEK70.00", "failed"] and rows[0][5] == str(days_late)
    assert rows[1][2:4] == ["NOK120.00", "requested"] and rows[1][5] == "2"
    assert f'href="/staff/returns/{dataset["r2"]}"' in html
    # 9 started days, 5 free, NOK 50 a day: NOK 200.00; the one waiting 2 days costs nothing yet.
    assert text_of(html, "norway-total") == "2 returns waiting, 1 costing storage; fee so far NOK200.00 ."
    norway = tables(html)["norway-table"][1:]
    assert [(row[0], row[3], row[4]) for row in norway] == [
        (dataset["waiting_long"], "9", "NOK200.00"), (dataset["waiting_short"], "2", "NOK0.00"),
    ]


def test_the_storage_fee_is_the_storage_checks(support, dataset, demo_engine):
    from portal.norway.storage_check import overdue_returns

    with Session(demo_engine) as s:
        checked = overdue_returns(s, datetime.now(UTC))
    assert [(o.rma, o.days_waited, o.fee_minor) for o in checked] == [(dataset["waiting_long"], 9, 20000)]
    rows = read_csv(support.get(f"/staff/dashboard/norway-storage.csv?{MARCH}"))
    assert rows[0] == ["rma", "order_number", "arrived_at_utc", "days_waited", "fee_minor", "currency"]
    assert [(r[0], r[3], r[4], r[5]) for r in rows[1:]] == [
        (dataset["waiting_long"], "9", "20000", "NOK"), (dataset["waiting_short"], "2", "0", "NOK"),
    ]


def test_country_filter_changes_the_figures(support, dataset):
    sweden = support.get(f"/staff/dashboard?{MARCH}&country=SE").text
    found = tables(sweden)
    assert found["return-rate-sku-table"][1:] == [["A-1", "Product A-1", "15", "5", "33.3 %"],
                                                   ["B-2", "Product B-2", "5", "1", "20.0 %"]]
    assert found["refunds-by-week-table"][0] == ["Week", "Starts", "SEK"]
    assert text_of(sweden, "days-median") == "Median: 2.0" and text_of(sweden, "days-p90") == "90th percentile: 2.8"
    assert text_of(sweden, "overdue-count") == "1"
    assert "Choose Norway or all countries" in sweden and "norway-table" not in sweden

    norway = support.get(f"/staff/dashboard?{MARCH}&country=no").text  # lower case is fine
    assert 'value="NO" selected' in norway
    assert tables(norway)["return-rate-sku-table"][1:] == [["D-4", "Product D-4", "6", "4", "66.7 %"],
                                                            ["A-1", "Product A-1", "5", "1", "20.0 %"]]
    # Days 1 and 10: median 5.5, 90th percentile 1 + 0.9 x 9 = 9.1.
    assert text_of(norway, "days-median") == "Median: 5.5" and text_of(norway, "days-p90") == "90th percentile: 9.1"
    assert text_of(norway, "overdue-count") == "1" and "norway-table" in norway

    denmark = support.get(f"/staff/dashboard?{MARCH}&country=DK").text
    assert "No data for this period" in denmark and "No refunds were paid in this period." in denmark
    assert text_of(denmark, "days-median") == "Median: —" and text_of(denmark, "overdue-count") == "0"
    assert "return-rate-sku-table" not in tables(denmark)


def test_date_range_and_threshold_change_the_figures(support, dataset):
    early = support.get("/staff/dashboard?from=2025-03-01&to=2025-03-12").text
    found = tables(early)
    # The order of 15 March is out: A-1 4 of 15.
    assert found["return-rate-sku-table"][1:][1] == ["A-1", "Product A-1", "15", "4", "26.7 %"]
    assert [row[0] for row in found["reasons-table"][1:]] == ["Too small", "Not as described", "Arrived damaged", "Total"]
    assert found["reasons-table"][-1] == ["Total", "9", "100.0 %"]
    assert text_of(early, "days-median") == "Median: 1.5" and text_of(early, "days-p90") == "90th percentile: 1.9"
    with_february = support.get("/staff/dashboard?from=2025-02-01&to=2025-03-31").text
    assert text_of(with_february, "figure-refunded") == "Refunded NOK1,800.00 SEK1,699.00 6 refunds paid"
    by_sku = {row[0]: row[1:] for row in tables(with_february)["return-rate-sku-table"][1:]}
    assert by_sku["A-1"] == ["Product A-1", "30", "16", "53.3 %"]  # with the February order and its return
    one_of_one = tables(support.get(f"/staff/dashboard?{MARCH}&min_sold=1").text)["return-rate-sku-table"]
    assert one_of_one[1] == ["C-3", "Product C-3", "1", "1", "100.0 %"]


def test_default_filter_is_the_last_90_days(support, dataset):
    html = support.get("/staff/dashboard").text
    today = dataset["today"]
    assert f'name="from" value="{(today - timedelta(days=89)).isoformat()}"' in html
    assert f'name="to" value="{today.isoformat()}"' in html
    assert '<option value="all" selected>' in html
    assert "2025-W10" not in html  # March 2025 is long gone
    assert text_of(html, "overdue-count") == "2"  # overdue is about today, whatever the range


# --- CSV ----------------------------------------------------------------------------------------------


def test_csv_downloads(support, dataset):
    response = support.get(f"/staff/dashboard/refunds-by-week.csv?{MARCH}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="dashboard-refunds-by-week-2025-03-01-2025-03-31-all.csv"')
    rows = read_csv(response)
    assert rows[0] == ["week", "week_start", "currency", "amount_minor", "refunds"]
    assert len(rows) == 1 + 6 * 2  # six weeks, two currencies
    assert ["2025-W10", "2025-03-03", "NOK", "150000", "1"] in rows
    assert ["2025-W10", "2025-03-03", "SEK", "0", "0"] in rows
    assert ["2025-W11", "2025-03-10", "SEK", "40000", "1"] in rows
    assert ["2025-W12", "2025-03-17", "SEK", "30000", "2"] in rows
    assert ["2025-W12", "2025-03-17", "NOK", "30000", "1"] in rows

    sku = read_csv(support.get(f"/staff/dashboard/return-rate-by-sku.csv?{MARCH}&country=SE"))
    assert sku == [["sku", "name", "sold", "returned", "return_rate_percent"],
                   ["A-1", "Product A-1", "15", "5", "33.3"], ["B-2", "Product B-2", "5", "1", "20.0"]]
    category = read_csv(support.get(f"/staff/dashboard/return-rate-by-category.csv?{MARCH}"))
    assert category[0] == ["category", "sold", "returned", "return_rate_percent"]
    assert category[1] == ["jackets", "6", "4", "66.7"]
    reasons = read_csv(support.get(f"/staff/dashboard/reasons.csv?{MARCH}"))
    assert reasons[:2] == [["reason_code", "reason", "units", "share_percent"], ["too_small", "Too small", "5", "41.7"]]
    days = read_csv(support.get(f"/staff/dashboard/days-to-refund.csv?{MARCH}"))
    assert days == [["days", "refunds"], ["1", "1"], ["2", "2"], ["3", "1"], ["10", "1"]]
    norway = read_csv(support.get(f"/staff/dashboard/days-to-refund.csv?{MARCH}&country=NO"))
    assert norway == [["days", "refunds"], ["1", "1"], ["10", "1"]]
    overdue = read_csv(support.get(f"/staff/dashboard/overdue-refunds.csv?{MARCH}"))
    assert overdue[0] == ["refund_id", "rma", "order_number", "country", "amount_minor", "currency", "state", "due_date",
                          "days_late"]
    assert [(r[1], r[3], r[4], r[5], r[6], r[7]) for r in overdue[1:]] == [
        (dataset["r2"], "SE", "7000", "SEK", "failed", "2025-03-25"),
        (dataset["r3"], "NO", "12000", "NOK", "requested", (dataset["today"] - timedelta(days=2)).isoformat()),
    ]
    empty = read_csv(support.get(f"/staff/dashboard/norway-storage.csv?{MARCH}&country=SE"))
    assert empty == [["rma", "order_number", "arrived_at_utc", "days_waited", "fee_minor", "currency"]]


def test_the_page_links_each_csv_with_its_filter(support, dataset):
    html = support.get(f"/staff/dashboard?{MARCH}&country=NO&min_sold=3").text
    for chart in ("return-rate-by-sku", "return-rate-by-category", "reasons", "refunds-by-week", "days-to-refund",
                  "overdue-refunds", "norway-storage"):
        link = f'href="/staff/dashboard/{chart}.csv?from=2025-03-01&amp;to=2025-03-31&amp;country=NO&amp;min_sold=3"'
        assert link in html, chart
        assert support.get(f"/staff/dashboard/{chart}.csv?{MARCH}&country=NO&min_sold=3").status_code == 200


def test_unknown_chart_is_404(support):
    for path in ("/staff/dashboard/nonsense.csv", "/staff/dashboard/reasons", "/staff/dashboard/reasons.json"):
        assert support.get(path).status_code == 404, path


def test_csv_with_a_bad_filter_is_400(support):
    response = support.get("/staff/dashboard/reasons.csv?from=2025-02-30")
    assert response.status_code == 400 and "2025-02-30 is not a date in the calendar" in response.text
    assert response.headers["content-type"].startswith("text/plain")


# --- bad filters ----------------------------------------------------------------------------------------


BAD_FILTERS = [  # query, field, message
    ("from=2025-13-01", "from", "2025-13-01 is not a date in the calendar."),
    ("from=yesterday", "from", "Enter a date as YYYY-MM-DD, for example 2025-03-31."),
    ("to=31.03.2025", "to", "Enter a date as YYYY-MM-DD, for example 2025-03-31."),
    ("from=0001-01-01", "from", "Enter a date between 2000-01-01 and 2099-12-31."),
    ("from=2025-03-31&to=2025-03-01", "to", "The end date is before the start date (2025-03-31)."),
    ("from=2020-01-01&to=2025-03-01", "to", "Choose at most 731 days (two years); this range has 1887."),
    ("min_sold=0", "min_sold", "Enter a whole number of units, at least 1."),
    ("min_sold=five", "min_sold", "Enter a whole number of units, at least 1."),
    ("from=2025-03-01&from=2025-03-02", "from", "Give this filter once."),
]


def test_bad_filter_is_explained_next_to_the_field(support):
    for query, field, message in BAD_FILTERS:
        response = support.get(f"/staff/dashboard?{query}")
        assert response.status_code == 400, query
        html = response.text
        assert f'<p class="error" id="filter-{field}-error">{message}</p>' in html, query
        assert 'aria-invalid="true"' in html and 'role="alert"' in html, query
        typed = next(value for name, value in (pair.split("=") for pair in query.split("&")) if name == field)
        assert f'name="{field}" value="{typed}"' in html, query  # what was typed stays in the field
        assert "figure-return-rate" not in html, query  # no figures for a filter that is not understood


def test_bad_date_field_becomes_text_so_the_typed_value_shows(support):
    html = support.get("/staff/dashboard?from=2025-02-30&to=2025-03-31").text
    assert re.search(r'id="filter-from" name="from" value="2025-02-30"\s+type="text"', html)
    assert re.search(r'id="filter-to" name="to" value="2025-03-31"\s+type="date"', html)


def test_unknown_country_is_kept_and_explained(support):
    response = support.get("/staff/dashboard?country=XX")
    assert response.status_code == 400
    assert '<p class="error" id="country-error">Choose SE, NO, DK, FI or all countries.</p>' in response.text
    assert '<option value="XX" selected>XX (unknown)</option>' in response.text


def test_hostile_filter_values_are_escaped(support):
    response = support.get('/staff/dashboard?country="><script>x</script>')
    assert response.status_code == 400
    assert "<script>x" not in response.text and "&#34;&gt;&lt;script&gt;x" in response.text


# --- roles ------------------------------------------------------------------------------------------------


def test_admin_and_support_see_it_warehouse_does_not(staff_client, client):
    for role in ("admin", "support"):
        c = staff_client(role)
        assert c.get("/staff/dashboard").status_code == 200
        assert c.get("/staff/dashboard/reasons.csv").status_code == 200
        assert 'href="/staff/dashboard"' in c.get("/staff/").text  # in the menu and on the start page
    warehouse = staff_client("warehouse")
    assert warehouse.get("/staff/dashboard").status_code == 403
    assert warehouse.get("/staff/dashboard/reasons.csv").status_code == 403
    assert 'href="/staff/dashboard"' not in warehouse.get("/staff/").text
    anonymous = client.get("/staff/dashboard/reasons.csv", follow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/staff/login")


# --- demo data ------------------------------------------------------------------------------------------


def test_demo_refunds_are_idempotent_and_show_on_the_dashboard(staff_client, demo_engine):
    from sqlmodel import select

    from portal.demo import DEMO_REFUNDS, load_demo_refunds

    with Session(demo_engine) as s:
        assert load_demo_refunds(s) == len(DEMO_REFUNDS)
        s.commit()
    with Session(demo_engine) as s:
        assert load_demo_refunds(s) == 0  # the second run finds every return and its refund
        s.commit()
        refunds = s.exec(select(Refund).order_by(Refund.id)).all()
        assert sorted(r.state for r in refunds) == ["issued", "issued", "issued", "requested"]
        assert all(r.amount_minor > 0 and r.breakdown["total_minor"] == r.amount_minor for r in refunds)
        assert len(s.exec(select(Return)).all()) == len(DEMO_REFUNDS)
    html = staff_client("support").get("/staff/dashboard").text
    assert text_of(html, "overdue-count") == "1"  # the Finnish refund, due ten days ago and not paid
    assert tables(html)["refunds-by-week-table"][0] == ["Week", "Starts", "DKK", "SEK"]
    assert text_of(html, "days-count") == "Refunds: 3"


def test_swedish_staff_read_the_charts_in_swedish(staff_client, dataset, demo_engine):
    from sqlmodel import select

    from portal.models import StaffUser

    client = staff_client("support")
    with Session(demo_engine) as s:
        for user in s.exec(select(StaffUser).where(StaffUser.role == "support")):
            user.language = "sv"
            s.add(user)
        s.commit()
    html = client.get(f"/staff/dashboard?{MARCH}").text
    assert ">66,7 % (4 av 6)</text>" in html  # the number printed next to the bar, with a Swedish decimal comma
    found = tables(html)
    assert text_of(html, "figure-return-rate").startswith("Returgrad 37,5 %")
    assert found["return-rate-sku-table"][1][-1] == "66,7 %" and found["reasons-table"][1][-1] == "41,7 %"
    assert text_of(html, "days-p90").endswith(": 7,2")
    assert "37.5" not in html and "66.7" not in html
    csv_rows = read_csv(client.get(f"/staff/dashboard/return-rate-by-category.csv?{MARCH}"))
    assert ["shirts", "21", "7", "33.3"] in csv_rows  # machine-readable: a point in every language
    assert "Inga data för perioden" in client.get(f"/staff/dashboard?{MARCH}&country=DK").text

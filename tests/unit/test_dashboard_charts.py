"""The dashboard's SVG charts: valid XML, accessible, bar lengths proportional to the values, an empty state."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from portal.dashboard import charts
from portal.web.templating import build_environment

SVG = "{http://www.w3.org/2000/svg}"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture(scope="module")
def env():
    return build_environment(TEMPLATES)


def render(env, chart, title="Return rate by SKU", desc="Highest: A-1") -> ET.Element:
    return ET.fromstring(str(charts.render_svg(env, chart, title, desc)))


def bars(svg: ET.Element) -> list[ET.Element]:
    return [rect for rect in svg.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def test_bar_chart_is_accessible_valid_svg(env):
    chart = charts.bar_chart("chart-x", [charts.Item("A-1", 0.3, "30.0 % (6 of 20)")])
    svg = render(env, chart)
    assert svg.tag == f"{SVG}svg"
    assert svg.get("role") == "img" and svg.get("aria-label") == "Return rate by SKU"
    assert svg.get("aria-describedby") == "chart-x-desc"
    assert svg.find(f"{SVG}title").text == "Return rate by SKU"
    assert svg.find(f"{SVG}desc").text == "Highest: A-1" and svg.find(f"{SVG}desc").get("id") == "chart-x-desc"
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "A-1" in texts and "30.0 % (6 of 20)" in texts  # the number is printed next to its bar
    assert not any(el.get("style") for el in svg.iter())  # the CSP allows no inline styles


def test_bar_lengths_are_proportional_to_the_values(env):
    items = [charts.Item("a", 4, "4"), charts.Item("b", 2, "2"), charts.Item("c", 1, "1"), charts.Item("d", 0, "0")]
    widths = [float(rect.get("width")) for rect in bars(render(env, charts.bar_chart("c", items)))]
    assert widths[0] == charts.WIDTH - 150 - 170  # the largest value spans the plot
    assert widths == [widths[0], widths[0] / 2, widths[0] / 4, 0]
    assert {float(rect.get("x")) for rect in bars(render(env, charts.bar_chart("c", items)))} == {150}


def test_column_heights_are_proportional_and_share_the_baseline(env):
    items = [charts.Item("W10", 150000, "NOK 1,500.00"), charts.Item("W11", 0, "NOK 0.00"),
             charts.Item("W12", 30000, "NOK 300.00")]
    chart = charts.column_chart("w", items, tick_text=lambda minor: f"{minor / 100:.2f}")
    svg = render(env, chart, "Refunded per week in NOK", "Columns per week")
    columns = bars(svg)
    heights = [float(c.get("height")) for c in columns]
    assert heights[1] == 0 and heights[0] == pytest.approx(5 * heights[2], abs=0.02)
    assert {round(float(c.get("y")) + float(c.get("height")), 2) for c in columns} == {chart.baseline}
    assert [c.find(f"{SVG}title").text for c in columns][0] == "W10: NOK 1,500.00"
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert ticks == ["0.00", "750.00", "1500.00"]
    assert [float(c.get("x")) for c in columns] == sorted(float(c.get("x")) for c in columns)


def test_many_columns_label_only_some_so_labels_never_overlap(env):
    items = [charts.Item(f"{day}", day + 1, str(day + 1)) for day in range(31)]
    svg = render(env, charts.column_chart("d", items, left=50))
    labels = [t.text for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert len(bars(svg)) == 31 and 0 < len(labels) <= 16 and labels[0] == "0"


@pytest.mark.parametrize("make", [
    lambda: charts.bar_chart("e", []),
    lambda: charts.bar_chart("e", [charts.Item("A-1", 0, "0.0 % (0 of 9)")]),
    lambda: charts.column_chart("e", []),
])
def test_no_data_renders_an_empty_state(env, make):
    chart = make()
    svg = render(env, chart, "Reasons", "No data for this period")
    assert chart.empty and bars(svg) == []
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["No data for this period"]
    assert svg.get("role") == "img" and svg.find(f"{SVG}title").text == "Reasons"


def test_labels_are_escaped_and_long_ones_shortened(env):
    chart = charts.bar_chart("x", [charts.Item('<b>"Tom & Jerry" extra long product name', 1, "1 < 2")])
    svg = render(env, chart, 'Title with <tags> & "quotes"', "desc & more")
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert '<b>"Tom & Jerry"…' in texts and "1 < 2" in texts
    assert svg.get("aria-label") == 'Title with <tags> & "quotes"'


def test_bar_colours_meet_contrast_on_white():
    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    def contrast(colour: str) -> float:
        return (1.05) / (luminance(colour) + 0.05)

    assert contrast(charts.TEXT_COLOUR) >= 4.5 and contrast(charts.MUTED_COLOUR) >= 4.5  # text
    assert contrast(charts.BAR_COLOUR) >= 4.5 and contrast(charts.GRID_COLOUR) >= 3  # graphics

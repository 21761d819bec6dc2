"""Report building blocks without a database: traffic lights, number and period formats, the SVG charts."""

from __future__ import annotations

import pytest
from lxml import etree

from aggregator.indicators.status import status
from aggregator.periods import parse_period
from aggregator.reports.charts import Bar, bar_chart, line_chart
from aggregator.reports.labels import fmt_seconds, fmt_target, fmt_value, period_label

ABOVE_91 = {"op": ">", "value": 91, "clause": "intro"}
BELOW_08 = {"op": "<", "value": 0.8, "clause": "intro"}


@pytest.mark.parametrize(
    ("value", "target", "hidden", "expected"),
    [
        (92.0, ABOVE_91, False, "met"),
        (90.0, ABOVE_91, False, "close"),  # 1.1 % short of the target
        (86.0, ABOVE_91, False, "not_met"),  # 5.5 % short
        (0.84, BELOW_08, False, "close"),  # 5 % above a "below" target
        (0.9, BELOW_08, False, "not_met"),
        (100 * 142 / 143, {"op": ">=", "value": 100}, False, "close"),  # the province workbook's 142/143
        (None, ABOVE_91, True, "suppressed"),
        (None, ABOVE_91, False, "no_data"),
        (12.0, {"op": None, "value": None, "clause": "no figure"}, False, "no_target"),
    ],
)
def test_one_status_rule(value: float | None, target: dict | None, hidden: bool, expected: str) -> None:
    assert status(value, target, suppressed=hidden) == expected


def test_formats_vietnamese_first() -> None:
    assert fmt_value(92.0, "percent", "vi") == "92,0 %"
    assert fmt_value(0.7333, "percent", "vi") == "0,73 %"
    assert fmt_value(1234.0, "count", "vi") == "1.234" and fmt_value(1234.0, "count", "en") == "1,234"
    assert fmt_value(12.5, "per_1000", "en") == "12.5 ‰"
    assert fmt_target(BELOW_08, "percent", "vi") == "< 0,80 %" and fmt_target(None, "percent", "vi") == "—"
    assert fmt_target({"op": ">=", "value": 100}, "percent", "en") == "≥ 100.0 %"
    assert fmt_seconds(1800, "vi") == "30 phút" and fmt_seconds(259200, "en") == "3.0 days"
    assert period_label(parse_period("2026Q4"), "vi") == "Quý 4/2026"
    assert period_label(parse_period("SY2026-2027"), "en") == "School year 2026-2027"
    assert period_label(parse_period("2026-11"), "vi") == "Tháng 11/2026"


def _svg(markup: str) -> etree._Element:
    return etree.fromstring(markup.encode("utf-8"))


def test_bar_chart_draws_bars_target_and_text() -> None:
    bars = [
        Bar("Phường Bình San", 100.0, "met"),
        Bar("Phường Tô Châu", 90.0, "close"),
        Bar("Xã Tiên Hải", None, "suppressed"),
    ]
    svg = _svg(bar_chart(bars, target=91.0, unit="percent", lang="vi", title="Đi học đúng độ tuổi"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    rects = svg.xpath("//s:rect[contains(@class, 'bar')]", namespaces=ns)
    assert [r.get("class") for r in rects] == ["bar status-met", "bar status-close"]
    assert float(rects[0].get("width")) > float(rects[1].get("width")) > 0
    texts = [t.text for t in svg.xpath("//s:text", namespaces=ns)]
    assert "Ẩn (ô nhỏ)" in texts and "90,0 % · Gần đạt" in texts and "Mục tiêu 91,0 %" in texts
    line = svg.xpath("//s:line[@class='target-line']", namespaces=ns)[0]
    x0 = float(rects[0].get("x"))
    # the target line sits at 91 % of the full (100 %) bar width
    assert float(line.get("x1")) - x0 == pytest.approx(0.91 * float(rects[0].get("width")), abs=0.2)


def test_line_chart_gaps_and_target() -> None:
    points = [("Q1/26", None), ("Q2/26", 83.3), ("Q3/26", None), ("Q4/26", 92.0)]
    svg = _svg(line_chart(points, target=91.0, unit="percent", lang="en", title="trend"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert len(svg.xpath("//s:circle", namespaces=ns)) == 2
    assert len(svg.xpath("//s:polyline", namespaces=ns)) == 2  # no line drawn across a missing quarter
    assert svg.xpath("//s:line[@class='target-line']", namespaces=ns)
    assert "92.0 %" in [t.text for t in svg.xpath("//s:text", namespaces=ns)]

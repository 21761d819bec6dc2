"""The CSV report: long format, one row per indicator × org unit × period × disaggregation, UTF-8 with BOM."""

from __future__ import annotations

import csv
import io
from typing import Any

from aggregator.reports import ReportData
from aggregator.reports.labels import has_target, light

COLUMNS = [
    "indicator",
    "name_vi",
    "name_en",
    "unit",
    "org_unit",
    "org_unit_name",
    "level",
    "hierarchy",
    "period",
    "disaggregation",
    "numerator",
    "denominator",
    "value",
    "target_op",
    "target_value",
    "status",
    "traffic_light",
]


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _row(r: Any) -> list[str]:
    dis = ";".join(f"{k}={v}" for k, v in sorted((r.disaggregation or {}).items()))
    return [
        r.indicator,
        r.name_vi,
        r.name_en,
        r.unit,
        r.org_unit,
        r.org_unit_name,
        r.level,
        r.hierarchy,
        r.period,
        dis,
        _num(r.numerator),
        _num(r.denominator),
        _num(r.value),
        str(r.target["op"]) if has_target(r.target) else "",
        _num(float(r.target["value"])) if has_target(r.target) else "",
        r.status,
        light(r.status, r.value, r.target),
    ]


def render_csv(data: ReportData) -> bytes:
    """Rows in report order, each (indicator, org unit, period, disaggregation) once.

    ``status`` is the rollup's; ``traffic_light`` adds "close" (not met but within 5 % of the target).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    seen: set[tuple[str, str, str, str]] = set()
    for r in data.all_rows():
        line = _row(r)
        key = (line[0], line[4], line[8], line[9])
        if key in seen:
            continue
        seen.add(key)
        w.writerow(line)
    # the BOM makes Excel read UTF-8 (Vietnamese) instead of the local code page
    return buf.getvalue().encode("utf-8-sig")

"""The CSV report: long format, one row per indicator × org unit × period × disaggregation, UTF-8 with BOM."""

from __future__ import annotations

import csv
import io
from typing import Any

from aggregator.indicators.status import has_target, label, shows_denominator
from aggregator.reports import ReportData
from aggregator.reports.labels import clause_text
from aggregator.rollup import ROW_FIELDS

# The rows' exported fields (rollup.ROW_FIELDS, shared with the JSON API), ``target`` spelt as two columns,
# then the status words and the plan clause.
COLUMNS = [
    *(c for f in ROW_FIELDS for c in (("target_op", "target_value") if f == "target" else (f,))),
    "status_text",
    "clause",
]


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _row(r: Any, lang: str) -> list[str]:
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
        _num(r.denominator) if shows_denominator(r.unit) else "",
        _num(r.value),
        str(r.target["op"]) if has_target(r.target) else "",
        _num(float(r.target["value"])) if has_target(r.target) else "",
        r.status,
        label(r.status, lang),
        clause_text(r, lang),
    ]


def render_csv(data: ReportData) -> bytes:
    """Rows in report order, each (indicator, org unit, period, disaggregation) once.

    ``status`` is rule 9's code (aggregator.indicators.status), ``status_text`` its words in the report's
    language, ``clause`` the plan clause; a count indicator has no denominator (counts are shown as counts).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    seen: set[tuple[str, str, str, str]] = set()
    for r in data.all_rows():
        line = _row(r, data.lang)
        key = (line[0], line[4], line[8], line[9])
        if key in seen:
            continue
        seen.add(key)
        w.writerow(line)
    # the BOM makes Excel read UTF-8 (Vietnamese) instead of the local code page
    return buf.getvalue().encode("utf-8-sig")

"""The HTML report: self-contained (inline CSS and SVG, no scripts), printable on A4, Vietnamese first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from aggregator.indicators.status import STATUSES, has_target, shows_denominator
from aggregator.reports import DISAGGREGATIONS, ReportData
from aggregator.reports.charts import Bar, bar_chart, line_chart
from aggregator.reports.labels import (
    STATUS_COLOURS,
    clause_text,
    fmt_number,
    fmt_seconds,
    fmt_target,
    fmt_value,
    period_label,
    t,
)

TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["j2", "html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def row_name(row: Any, lang: str) -> str:
    return str(row.name_en if lang == "en" else row.name_vi)


def row_light(row: Any) -> str:
    """Rule 9's status of the row (computed once, by aggregator.indicators.status)."""
    return str(row.status)


def _target_value(row: Any) -> float | None:
    return float(row.target["value"]) if has_target(row.target) else None


def charts(data: ReportData) -> dict[str, Any]:
    """Every chart of the report, as inline SVG markup."""
    lang = data.lang
    out: dict[str, Any] = {
        "trend": {},
        "trend_empty": {},
        "ranking": {},
        "ranking_missing": {},
        "disaggregation": {},
    }
    for row in data.summary:
        by_period = {r.period: r for r in data.trends.get(row.indicator, [])}
        points = [
            (_short_period(p, lang), by_period[p].value if p in by_period else None)
            for p in data.trend_periods
        ]
        if all(v is None for _, v in points):
            out["trend"][row.indicator] = None  # the card says why instead of drawing empty axes
            hidden = any(r.status == "suppressed" for r in by_period.values())
            out["trend_empty"][row.indicator] = "suppressed" if hidden else "no_data"
            continue
        out["trend"][row.indicator] = line_chart(
            points, target=_target_value(row), unit=row.unit, lang=lang, title=row_name(row, lang)
        )
    for ind, rows in data.ranking.items():
        if not rows:
            continue
        head = rows[0]
        # units without data are listed under the chart, not drawn: 40 empty bars hide the 8 that matter
        shown = [r for r in rows if r.value is not None]
        # units without a figure are named under the chart by why (hidden / no data), not drawn as bars
        out["ranking_missing"][ind] = [
            (status, [r.org_unit_name for r in rows if r.value is None and r.status == status])
            for status in ("suppressed", "no_data")
            if any(r.value is None and r.status == status for r in rows)
        ]
        if not shown:
            continue
        bars = [Bar(r.org_unit_name, r.value, row_light(r)) for r in shown]
        out["ranking"][ind] = bar_chart(
            bars, target=_target_value(head), unit=head.unit, lang=lang, title=row_name(head, lang)
        )
    for dim, per in data.disaggregation.items():
        out["disaggregation"][dim] = {}
        for ind in key_indicators(data):
            rows = per.get(ind, [])
            if not any(r.value is not None for r in rows):
                continue  # nothing but hidden or empty groups: the table below says so, no hatched bars
            bars = [Bar(t(str(r.disaggregation.get(dim)), lang), r.value, row_light(r)) for r in rows]
            out["disaggregation"][dim][ind] = bar_chart(
                bars,
                target=_target_value(rows[0]),
                unit=rows[0].unit,
                lang=lang,
                title=row_name(rows[0], lang),
                width=340,
                label_width=90,
                text_width=118,
            )
    return out


def key_indicators(data: ReportData) -> list[str]:
    """Indicators with a plan target, in summary order (the ones ranked and charted)."""
    return [r.indicator for r in data.summary if has_target(r.target)][:8]


def _short_period(code: str, lang: str) -> str:
    if "Q" in code and not code.startswith("SY"):
        y, q = code.split("Q")
        return f"Q{q}/{y[2:]}" if lang == "vi" else f"Q{q} {y[2:]}"
    return code[2:] if code.startswith("SY") else code


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    lang = data.lang
    ctx: dict[str, Any] = {
        "d": data,
        "lang": lang,
        "charts": charts(data),
        "key_indicators": key_indicators(data),
        "dims": list(DISAGGREGATIONS.items()),
        "statuses": STATUSES,
        "colours": STATUS_COLOURS,
        "t": lambda key: t(key, lang),
        "name": lambda row: row_name(row, lang),
        "light": row_light,
        "value": lambda row: fmt_value(row.value, row.unit, lang),
        "num": lambda x, decimals=0: fmt_number(x, lang, decimals),
        "target": lambda row: fmt_target(row.target, row.unit, lang),
        "clause": lambda row: clause_text(row, lang),
        "denominator": lambda row: fmt_number(row.denominator, lang) if shows_denominator(row.unit) else "",
        "seconds": lambda s: fmt_seconds(s, lang),
        "period_label": period_label(data.period, lang),
        "short_period": lambda p: _short_period(p, lang),
        "Markup": Markup,
    }
    return _env.get_template("report.html.j2").render(**ctx)

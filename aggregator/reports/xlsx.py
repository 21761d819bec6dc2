"""The XLSX report (openpyxl): one sheet per section, Vietnamese header row with the English one under it."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from aggregator.indicators.status import has_target, shows_denominator
from aggregator.reports import DISAGGREGATIONS, ReportData
from aggregator.reports.labels import STATUS_COLOURS, both, t

HEAD_FILL = PatternFill("solid", fgColor="0F3D5E")
SUB_FILL = PatternFill("solid", fgColor="DCE6EE")
HEAD_FONT = Font(bold=True, color="FFFFFF")
SUB_FONT = Font(italic=True, color="33475B", size=9)
THIN = Border(bottom=Side(style="thin", color="B8C2CC"))
FORMATS = {"percent": "0.00", "per_1000": "0.0", "count": "#,##0"}


def _header(ws: Worksheet, keys: Sequence[str | tuple[str, str]], widths: Sequence[int]) -> None:
    """Row 1 Vietnamese, row 2 English; frozen below them; a filter over the columns."""
    for col, key in enumerate(keys, start=1):
        vi, en = key if isinstance(key, tuple) else both(key)
        a = ws.cell(row=1, column=col, value=vi)
        a.font, a.fill, a.alignment = HEAD_FONT, HEAD_FILL, Alignment(wrap_text=True, vertical="center")
        b = ws.cell(row=2, column=col, value=en)
        b.font, b.fill, b.border = SUB_FONT, SUB_FILL, THIN
        ws.column_dimensions[get_column_letter(col)].width = widths[col - 1] if col <= len(widths) else 14
    ws.freeze_panes = "B3"
    ws.row_dimensions[1].height = 30


def _status_cell(ws: Worksheet, row: int, col: int, status: str, lang: str) -> None:
    c = ws.cell(row=row, column=col, value=t(f"status_{status}", lang))
    c.font = Font(bold=True, color=STATUS_COLOURS.get(status, "#6b7280").lstrip("#"))


def _indicator_row(ws: Worksheet, r: int, row: Any, lang: str, lead: list[Any]) -> None:
    """Shared columns: lead cells, then value, numerator, denominator, unit, target, status."""
    values = lead + [
        row.value,
        row.numerator,
        row.denominator if shows_denominator(row.unit) else None,
        t(f"unit_{row.unit}", lang),
        (f"{row.target['op']} {row.target['value']}" if has_target(row.target) else None),
    ]
    for col, v in enumerate(values, start=1):
        ws.cell(row=r, column=col, value=v)
    n = len(lead)
    ws.cell(row=r, column=n + 1).number_format = FORMATS.get(row.unit, "0.00")
    ws.cell(row=r, column=n + 2).number_format = "#,##0"
    ws.cell(row=r, column=n + 3).number_format = "#,##0"
    _status_cell(ws, r, n + 6, row.status, lang)


VALUE_KEYS: list[str | tuple[str, str]] = ["value", "numerator", "denominator", "unit", "target", "status"]


def clause(row: Any, lang: str) -> str | None:
    """The plan clause in the report's language."""
    target = row.target or {}
    return target.get("clause_vi" if lang == "vi" else "clause") or target.get("clause")


def _name(row: Any, lang: str) -> str:
    return str(row.name_en if lang == "en" else row.name_vi)


def render_xlsx(data: ReportData) -> bytes:
    lang = data.lang
    wb = Workbook()
    ws = wb.active
    ws.title = t("sheet_summary", lang)
    _header(ws, ["code", "indicator", *VALUE_KEYS, "clause"], [16, 52, 11, 11, 11, 10, 10, 18, 30])
    for i, row in enumerate(data.summary, start=3):
        _indicator_row(ws, i, row, lang, [row.indicator, _name(row, lang)])
        ws.cell(row=i, column=9, value=clause(row, lang))
    # the report's identity under the table, never mixed into data rows
    base = len(data.summary) + 5
    for j, (key, value) in enumerate(
        [
            ("org_unit", f"{data.area_name} ({data.area})"),
            ("level", t(f"level_{data.level}", lang)),
            ("hierarchy", t(f"hierarchy_{data.hierarchy}", lang)),
            ("period", data.period.code),
            ("generated_at", data.generated_at.strftime("%Y-%m-%d %H:%M UTC+7")),
            ("min_cell", data.min_cell),
        ]
    ):
        ws.cell(row=base + j, column=1, value=t(key, lang)).font = Font(bold=True)
        ws.cell(row=base + j, column=2, value=value)

    ws = wb.create_sheet(t("sheet_trend", lang))
    _header(ws, ["code", "indicator", "period", *VALUE_KEYS], [16, 52, 12, 11, 11, 11, 10, 10, 18])
    r = 3
    for row in data.summary:
        for tr in data.trends.get(row.indicator, []):
            _indicator_row(ws, r, tr, lang, [tr.indicator, _name(tr, lang), tr.period])
            r += 1

    ws = wb.create_sheet(t("sheet_ranking", lang))
    _header(
        ws,
        ["code", "indicator", "rank", ("Mã đơn vị", "Org unit code"), "org_unit", *VALUE_KEYS],
        [16, 44, 7, 11, 28, 11, 11, 11, 10, 10, 18],
    )
    r = 3
    for ind, rows in data.ranking.items():
        for rank, cr in enumerate(rows, start=1):
            _indicator_row(
                ws,
                r,
                cr,
                lang,
                [ind, _name(cr, lang), rank if cr.value is not None else None, cr.org_unit, cr.org_unit_name],
            )
            r += 1

    ws = wb.create_sheet(t("sheet_disagg", lang))
    _header(
        ws, ["code", "indicator", "dimension", "group", *VALUE_KEYS], [16, 44, 16, 14, 11, 11, 11, 10, 10, 18]
    )
    r = 3
    for dim in DISAGGREGATIONS:
        for ind_rows in data.disaggregation.get(dim, {}).values():
            for dr in ind_rows:
                group = (dr.disaggregation or {}).get(dim, "")
                _indicator_row(ws, r, dr, lang, [dr.indicator, _name(dr, lang), t(dim, lang), t(group, lang)])
                r += 1

    ws = wb.create_sheet(t("sheet_quality", lang))
    q = data.quality
    _header(
        ws,
        [
            "figure",
            "area_type",
            ("Giá trị", "Value"),
            ("Trung vị (giờ)", "Median (hours)"),
            ("Phân vị 90 (giờ)", "90th percentile (hours)"),
        ],
        [46, 16, 12, 16, 20],
    )
    r = 3
    for key, value in [
        ("q_received", q.received),
        ("q_current", q.current),
        ("q_superseded", q.superseded),
        ("q_deleted", q.deleted),
        ("q_quarantined", q.quarantined),
        ("q_suppressed", q.suppressed_cells),
    ]:
        ws.cell(row=r, column=1, value=t(key, lang))
        ws.cell(row=r, column=3, value=value).number_format = "#,##0"
        r += 1
    for lag in q.lag:
        ws.cell(row=r, column=1, value=t("q_lag", lang))
        ws.cell(row=r, column=2, value=t("q_all", lang) if lag.area_type == "all" else t(lag.area_type, lang))
        ws.cell(row=r, column=3, value=lag.submissions).number_format = "#,##0"
        for col, s in ((4, lag.median_seconds), (5, lag.p90_seconds)):
            ws.cell(row=r, column=col, value=None if s is None else round(s / 3600, 2)).number_format = "0.00"
        r += 1
    for code, n in q.flags:
        ws.cell(row=r, column=1, value=f"{t('q_flag_code', lang)}: {code}")
        ws.cell(row=r, column=3, value=n).number_format = "#,##0"
        r += 1
    for e in q.edges:  # edge nodes: backlog under "Value", lag since the last success under "Median (hours)"
        ws.cell(row=r, column=1, value=f"{t('q_edges', lang)}: {e.get('node_name')}")
        ws.cell(row=r, column=2, value=e.get("state") or "")
        ws.cell(row=r, column=3, value=e.get("backlog")).number_format = "#,##0"
        edge_lag = e.get("lag_seconds")
        hours = None if edge_lag is None else round(edge_lag / 3600, 2)
        ws.cell(row=r, column=4, value=hours).number_format = "0.00"
        r += 1
    out = BytesIO()
    wb.save(out)
    return out.getvalue()

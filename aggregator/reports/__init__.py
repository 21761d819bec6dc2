"""The officers' report: gather each section's aggregates once (ReportData), then render HTML, XLSX or CSV."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from aggregator.indicators.status import has_target
from aggregator.periods import Period, parse_period, previous
from aggregator.reports.labels import (
    HIERARCHIES,
    LANGS,
    LEVELS,
    VIETNAM_TIME,
    better_high,
)
from aggregator.reports.quality import QualityPanel, quality_panel
from core.errors import BadRequest, NotFound
from core.orgunits import PROVINCE_2025_NAME, PROVINCE_CODE, PROVINCE_NAME, communes, communes_2025, districts

DISAGGREGATIONS = {
    "area_type": ("island", "border", "mainland"),
    "ethnicity": ("kinh", "khmer", "hoa", "other"),
}
MAX_KEY_INDICATORS = 8
TREND_PERIODS = 4


@dataclass
class ReportData:
    """Everything the report shows — aggregates only, small cells already suppressed."""

    level: str
    area: str
    area_name: str
    hierarchy: str
    period: Period
    lang: str
    generated_at: datetime
    min_cell: int
    summary: list[Any] = field(default_factory=list)  # IndicatorRow per indicator
    trend_periods: list[str] = field(default_factory=list)
    trends: dict[str, list[Any]] = field(default_factory=dict)  # indicator → rows, oldest period first
    ranking: dict[str, list[Any]] = field(default_factory=dict)  # key indicator → child rows, best first
    disaggregation: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # dim → indicator → rows
    quality: QualityPanel = field(default_factory=QualityPanel)

    def all_rows(self) -> list[Any]:
        """Every row in the report, each once (the long CSV format)."""
        rows: list[Any] = list(self.summary)
        for group in self.trends.values():
            rows += [r for r in group if r.period != self.period.code]
        for group in self.ranking.values():
            rows += group
        for per_dim in self.disaggregation.values():
            for group in per_dim.values():
                rows += group
        return rows


def area_name(level: str, area: str, hierarchy: str) -> str:
    """The org unit's name from the register; an unknown code is the caller's to fix."""
    if level == "province" and area == PROVINCE_CODE:
        return PROVINCE_2025_NAME if hierarchy == "2025" else PROVINCE_NAME
    if level == "district" and area in districts():
        return districts()[area].name
    if level == "commune":
        if hierarchy == "2025" and area in communes_2025():
            return communes_2025()[area]
        if hierarchy == "legacy" and area in communes():
            return communes()[area].name
    raise NotFound(
        f"Không có đơn vị mã '{area}' ở cấp '{level}' (hệ thống {hierarchy}). Kiểm tra lại mã đơn vị.",
        f"There is no org unit '{area}' at level '{level}' in the {hierarchy} hierarchy. Check the code.",
    )


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadRequest(
            f"Giá trị '{value}' của {name} không hợp lệ; chọn một trong: {', '.join(allowed)}.",
            f"'{value}' is not a valid {name}; use one of: {', '.join(allowed)}.",
        )


def guard(row: Any, min_cell: int) -> Any:
    """Suppress a small cell the rollup left open (defence in depth: shared outputs never show one)."""
    if row.status == "suppressed" or (row.denominator is not None and 0 < row.denominator < min_cell):
        return dataclasses.replace(row, numerator=None, denominator=None, value=None, status="suppressed")
    return row


def _sort_ranked(rows: list[Any], target: dict[str, Any] | None) -> list[Any]:
    high = better_high(target)
    with_value = sorted((r for r in rows if r.value is not None), key=lambda r: r.value, reverse=high)
    return with_value + sorted((r for r in rows if r.value is None), key=lambda r: r.org_unit_name)


def build_report(
    session: Session,
    *,
    level: str,
    area: str,
    period: str,
    hierarchy: str = "legacy",
    lang: str = "vi",
    min_cell: int = 5,
    now: datetime | None = None,
) -> ReportData:
    """Query the rollup for every section of the report (one org unit, one period)."""
    from aggregator.rollup import query_indicators, trend

    check_choice("level", level, LEVELS)
    check_choice("hierarchy", hierarchy, HIERARCHIES)
    check_choice("lang", lang, LANGS)
    p = parse_period(period)
    data = ReportData(
        level=level,
        area=area,
        area_name=area_name(level, area, hierarchy),
        hierarchy=hierarchy,
        period=p,
        lang=lang,
        generated_at=(now or datetime.now(UTC)).astimezone(VIETNAM_TIME),
        min_cell=min_cell,
    )
    common: dict[str, Any] = {
        "level": level,
        "area": area,
        "period": p.code,
        "hierarchy": hierarchy,
        "suppress": True,
        "min_cell": min_cell,
    }

    data.summary = [
        guard(r, min_cell)
        for r in query_indicators(session, **common)
        if not r.disaggregation and r.org_unit == area
    ]

    data.trend_periods = [x.code for x in previous(p, TREND_PERIODS)]
    for row in data.summary:
        rows = trend(
            session,
            indicator=row.indicator,
            org_unit=area,
            level=level,
            hierarchy=hierarchy,
            periods=data.trend_periods,
        )
        data.trends[row.indicator] = [guard(r, min_cell) for r in rows]

    if level != "commune":
        keys = [r.indicator for r in data.summary if has_target(r.target)][:MAX_KEY_INDICATORS]
        targets = {r.indicator: r.target for r in data.summary}
        if keys:
            children = [
                guard(r, min_cell)
                for r in query_indicators(session, **common, indicators=keys, children=True)
                if r.org_unit != area and not r.disaggregation
            ]
            for key in keys:
                data.ranking[key] = _sort_ranked([r for r in children if r.indicator == key], targets[key])

    for dim, order in DISAGGREGATIONS.items():
        rows = [
            guard(r, min_cell)
            for r in query_indicators(session, **common, disaggregate_by=dim)
            if r.disaggregation and r.org_unit == area
        ]
        per: dict[str, list[Any]] = {}
        for r in rows:
            per.setdefault(r.indicator, []).append(r)
        for group in per.values():
            group.sort(
                key=lambda r: (
                    order.index(r.disaggregation.get(dim))
                    if r.disaggregation.get(dim) in order
                    else len(order)
                )
            )
        data.disaggregation[dim] = per

    data.quality = quality_panel(
        session,
        level=level,
        area=area,
        hierarchy=hierarchy,
        start=p.start,
        end_inclusive=p.end,
    )
    data.quality.suppressed_cells = sum(1 for r in data.all_rows() if r.status == "suppressed")
    return data

"""The read API: indicator values for an org unit and period, with ratios, statuses and suppression."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    select,
)
from sqlmodel import Session

from aggregator import indicators as defs
from aggregator import suppression
from aggregator.periods import parse_period
from aggregator.rollup.tables import HIERARCHIES, LEVELS, IndicatorValue, ensure_tables
from core import orgunits
from core.errors import BadRequest, NotFound
from core.settings import get_settings

# The exported fields of an indicator row, in order: the JSON API's items and the CSV's columns (which spell
# ``target`` as target_op / target_value and add the status words and the plan clause) both follow this list.
ROW_FIELDS = (
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
    "target",
    "status",
)


@dataclass
class IndicatorRow:
    """One indicator × org unit × period (× disaggregation), ready to show."""

    indicator: str
    name_vi: str
    name_en: str
    unit: str
    org_unit: str
    org_unit_name: str
    level: str
    hierarchy: str
    period: str
    numerator: float | None
    denominator: float | None
    value: float | None
    target: dict[str, Any] | None
    status: str  # met | not_met | no_target | no_data | suppressed
    disaggregation: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def org_units(level: str, hierarchy: str) -> dict[str, str]:
    """Every org unit of a level in a hierarchy: code → name."""
    if level == "province":
        return {
            orgunits.PROVINCE_CODE: orgunits.PROVINCE_NAME
            if hierarchy == "legacy"
            else orgunits.PROVINCE_2025_NAME
        }
    if level == "district":
        return {d.code: d.name for d in orgunits.districts().values()}
    if hierarchy == "legacy":
        return {c.code: c.name for c in orgunits.communes().values()}
    return dict(sorted(orgunits.communes_2025().items()))


def children_of(level: str, area: str, hierarchy: str) -> tuple[str, dict[str, str]]:
    """The org units one level below ``area`` (for ranking): (their level, code → name)."""
    if level == "province":
        child = "district" if hierarchy == "legacy" else "commune"
        return child, org_units(child, hierarchy)
    if level == "district":
        cs = [c for c in orgunits.communes().values() if c.district_code == area]
        if hierarchy == "legacy":
            return "commune", {c.code: c.name for c in cs}
        return "commune", dict(sorted({c.code_2025: c.name_2025 for c in cs}.items()))
    raise BadRequest(
        "Xã/phường là cấp thấp nhất, không có đơn vị con.",
        "A commune is the lowest level; it has no org units below it.",
    )


def _check(level: str, hierarchy: str) -> None:
    if hierarchy not in HIERARCHIES:
        raise BadRequest(
            f"Hệ thống đơn vị '{hierarchy}' không hợp lệ (legacy hoặc 2025).",
            f"Hierarchy '{hierarchy}' is not valid; use legacy or 2025.",
        )
    if level not in LEVELS:
        raise BadRequest(
            f"Cấp '{level}' không hợp lệ (province, district, commune).",
            f"Level '{level}' is not valid; use province, district or commune.",
        )


def query_indicators(
    session: Session,
    *,
    level: str,
    area: str | None,
    period: str,
    hierarchy: str = "legacy",
    indicators: list[str] | None = None,
    disaggregate_by: str | None = None,
    children: bool = False,
    suppress: bool = True,
    min_cell: int | None = None,
) -> list[IndicatorRow]:
    """Indicator rows for one period at one level: the org unit ``area`` (all units of the level when
    None), or
    with ``children=True`` the units one level below it. ``disaggregate_by`` (sex, ethnicity, area_type,
    age_group) gives one row per value, and only for indicators defined with that disaggregation. Cells whose
    denominator is below ``min_cell`` (default settings.min_cell_size) are suppressed unless
    ``suppress=False``, and so are their complements (``aggregator.suppression``): the cells that would give a
    hidden one away by subtraction, the same in every answer."""
    _check(level, hierarchy)
    per = parse_period(period).code
    if disaggregate_by is not None and disaggregate_by not in defs.DIMENSIONS:
        raise BadRequest(
            f"Không phân tổ được theo '{disaggregate_by}'.",
            f"Cannot disaggregate by '{disaggregate_by}'; use {', '.join(defs.DIMENSIONS)}.",
        )
    all_defs = defs.load()
    chosen = [defs.get(c) for c in indicators] if indicators else list(all_defs.values())
    if disaggregate_by:
        chosen = [i for i in chosen if disaggregate_by in i.disaggregate]
    units_level = org_units(level, hierarchy)
    if area is not None and area not in units_level:
        raise NotFound(
            f"Không có đơn vị '{area}' ở cấp {level} ({hierarchy}).",
            f"No org unit '{area}' at level {level} ({hierarchy}).",
        )
    if children:
        if area is None:
            raise BadRequest("Cần chọn đơn vị (area) để xem các đơn vị con.", "children=True needs an area.")
        out_level, units = children_of(level, area, hierarchy)
    else:
        out_level, units = level, ({area: units_level[area]} if area is not None else units_level)
    limit = get_settings().min_cell_size if min_cell is None else min_cell
    conn = session.connection()
    ensure_tables(conn.engine)
    t = IndicatorValue.__table__  # type: ignore[attr-defined]
    where = [
        t.c.hierarchy == hierarchy,
        t.c.level == out_level,
        t.c.period == per,
        t.c.dis_key == (disaggregate_by or ""),
        t.c.indicator.in_([i.code for i in chosen]),
    ]
    if len(units) < 500:
        where.append(t.c.org_unit.in_(list(units)))
    found = {
        (r.indicator, r.org_unit, r.dis_value): (r.numerator, r.denominator)
        for r in conn.execute(
            select(t.c.indicator, t.c.org_unit, t.c.dis_value, t.c.numerator, t.c.denominator).where(*where)
        )
    }
    values = defs.DIMENSION_VALUES[disaggregate_by] if disaggregate_by else ("",)
    rows = []
    for ind in chosen:
        for code, name in units.items():
            for dv in values:
                n, d = found.get((ind.code, code, dv), (None, None))
                value = ind.value(n, d)
                status = ind.status(value)
                rows.append(
                    IndicatorRow(
                        indicator=ind.code,
                        name_vi=ind.name_vi,
                        name_en=ind.name_en,
                        unit=ind.unit,
                        org_unit=code,
                        org_unit_name=name,
                        level=out_level,
                        hierarchy=hierarchy,
                        period=per,
                        numerator=n,
                        denominator=d,
                        value=value,
                        target=ind.target,
                        status=status,
                        disaggregation={disaggregate_by: dv} if disaggregate_by else None,
                    )
                )
    if suppress:
        hidden = suppression.hidden_cells(conn, per, [i.code for i in chosen], limit)
        kind = suppression.unit_kind(out_level, hierarchy)
        dis_key = disaggregate_by or ""
        for r in rows:
            dis_value = (r.disaggregation or {}).get(dis_key, "")
            if (r.indicator, kind, r.org_unit, dis_key, dis_value) in hidden:
                r.numerator, r.value, r.status = None, None, "suppressed"
    return rows


def trend(
    session: Session, *, indicator: str, org_unit: str, level: str, hierarchy: str, periods: list[str]
) -> list[IndicatorRow]:
    """One indicator for one org unit over several periods (oldest first, as given)."""
    out: list[IndicatorRow] = []
    for p in periods:
        out += query_indicators(
            session, level=level, area=org_unit, period=p, hierarchy=hierarchy, indicators=[indicator]
        )
    return out

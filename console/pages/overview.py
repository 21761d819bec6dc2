"""Overview (GET /): the officer's area — each indicator against its target, trend, ranking of the units
below, area-type and ethnicity breakdowns, suppression as in the reports, links to the reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from console.pages.render import render
from console.sessions import Officer, area_scope, require_officer
from core import orgunits
from core.errors import BadRequest, Forbidden
from core.orgunits import may_see
from core.settings import Settings

router = APIRouter(tags=["console"])
SignedIn = Annotated[Officer, Depends(require_officer())]


def level_of(area: str) -> str:
    """The level of an account area: 91 → province, a legacy district → district, a commune → commune."""
    if area == orgunits.PROVINCE_CODE:
        return "province"
    return "district" if area in orgunits.districts() else "commune"


def _data(settings: Settings, visible: str, period: str | None, indicator: str | None) -> dict[str, Any]:
    from aggregator.db import session_scope
    from aggregator.periods import default_period, parse_period, previous, quarter
    from aggregator.rollup import query_indicators

    level = level_of(visible)
    try:
        per = parse_period(period) if period else default_period()
    except Exception as exc:  # noqa: BLE001 - a malformed period is the reader's typo
        raise BadRequest(f"Kỳ '{period}' không hợp lệ.", f"Period '{period}' is not valid.") from exc
    if not may_see(visible, level, visible):
        raise Forbidden("Không xem được vùng này.", "You may not see this area.")
    mc = settings.min_cell_size
    with session_scope(settings) as s:
        rows = query_indicators(s, level=level, area=visible, period=per.code, min_cell=mc)
        # Trend: a year's quarters, else the three periods of the same kind before this one.
        if per.type == "year":
            trend_periods = [quarter(per.start.year, q) for q in (1, 2, 3, 4)]
        else:
            trend_periods = previous(per, 4)[:-1]
        history = {
            p.code: {
                r.indicator: r
                for r in query_indicators(s, level=level, area=visible, period=p.code, min_cell=mc)
            }
            for p in trend_periods
        }
        chosen = (
            indicator
            if indicator in {r.indicator for r in rows}
            else next((r.indicator for r in rows if r.value is not None), rows[0].indicator if rows else None)
        )
        ranking: list[Any] = []
        breakdown: dict[str, list[Any]] = {}
        if chosen is not None:
            if level != "commune":
                ranking = [
                    r
                    for r in query_indicators(
                        s,
                        level=level,
                        area=visible,
                        period=per.code,
                        indicators=[chosen],
                        children=True,
                        min_cell=mc,
                    )
                    if may_see(visible, r.level, r.org_unit)
                ]
                ranking.sort(key=lambda r: (r.value is None, -(r.value or 0)))
            if per.type != "month":
                for dim in ("area_type", "ethnicity"):
                    breakdown[dim] = query_indicators(
                        s,
                        level=level,
                        area=visible,
                        period=per.code,
                        indicators=[chosen],
                        disaggregate_by=dim,
                        min_cell=mc,
                    )
    return {
        "level": level,
        "period": per.code,
        "rows": rows,
        "history": history,
        "chosen": chosen,
        "chosen_row": next((r for r in rows if r.indicator == chosen), None),
        "ranking": ranking,
        "breakdown": breakdown,
    }


@router.get("/", response_model=None)
async def overview(
    request: Request, officer: SignedIn, period: str | None = None, indicator: str | None = None
) -> Response:
    """The officer's own area only (area_scope): there is no parameter naming another area."""
    visible = area_scope(officer)
    data = await run_in_threadpool(_data, request.app.state.settings, visible, period, indicator)
    name = (
        orgunits.PROVINCE_NAME
        if visible == orgunits.PROVINCE_CODE
        else (
            orgunits.districts()[visible].name
            if visible in orgunits.districts()
            else orgunits.communes()[visible].name
        )
    )
    return render(request, officer, "overview.html", area=visible, area_name=name, **data)

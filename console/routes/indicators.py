"""GET /api/v1/indicators: indicator values (numerator, denominator, value, target, status), area-scoped JSON.

District officers read their district, its communes and the 2025 communes lying wholly inside it; province
accounts read everything; collaborators get 403. An org unit outside the reader's area is a 403 problem.
Small cells are always suppressed here (shared output).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from aggregator.rollup import ROW_FIELDS
from core.errors import Forbidden
from core.orgunits import PROVINCE_CODE, may_see
from sync_server.auth import OFFICER_ROLES, Account, require_roles, visible_area
from sync_server.deps import Ctx

router = APIRouter(prefix="/api/v1", tags=["indicators"])
Officer = Annotated[Account, Depends(require_roles(*OFFICER_ROLES))]


def _forbidden(account: Account, level: str, area: str | None) -> Forbidden:
    where = f"{level} {area}" if area else f"every {level}"
    return Forbidden(
        f"Tài khoản {account.name} chỉ xem được số liệu của địa bàn {visible_area(account)}, không xem được "
        f"{where}.",
        f"Account {account.name} may read indicators for area {visible_area(account)} only, not {where}.",
    )


@router.get("/indicators")
def get_indicators(
    ctx: Ctx,
    account: Officer,
    level: Annotated[str, Query(description="province | district | commune")] = "province",
    area: Annotated[
        str | None, Query(description="org unit code at `level`; default: every unit you may read")
    ] = None,
    period: Annotated[
        str | None, Query(description="2026, 2026Q4, 2026-11 or SY2026-2027; default this year")
    ] = None,
    hierarchy: Annotated[str, Query(description="legacy | 2025")] = "legacy",
    indicator: Annotated[list[str] | None, Query(description="indicator codes; default all")] = None,
    disaggregate_by: Annotated[
        str | None, Query(description="sex | ethnicity | area_type | age_group")
    ] = None,
    children: Annotated[bool, Query(description="the org units one level below `area`")] = False,
) -> dict[str, Any]:
    """One row per indicator, org unit and period (and disaggregation value, when asked)."""
    from aggregator.db import session_scope
    from aggregator.indicators.status import label as status_label
    from aggregator.periods import default_period
    from aggregator.rollup import query_indicators

    visible = visible_area(account)
    per = period or default_period().code
    if area is not None and not may_see(visible, level, area, hierarchy):
        raise _forbidden(account, level, area)
    if area is None and visible != PROVINCE_CODE and level == "province":
        raise _forbidden(account, level, area)
    with session_scope(ctx.settings) as session:
        rows = query_indicators(
            session,
            level=level,
            area=area,
            period=per,
            hierarchy=hierarchy,
            indicators=indicator,
            disaggregate_by=disaggregate_by,
            children=children,
            suppress=True,
            min_cell=ctx.settings.min_cell_size,
        )
    items = [
        {
            **{k: getattr(r, k) for k in ROW_FIELDS},
            # rule 9's words for the status (aggregator.indicators.status), the same in every output
            "status_text": {"vi": status_label(r.status, "vi"), "en": status_label(r.status, "en")},
        }
        for r in rows
        if may_see(visible, r.level, r.org_unit, hierarchy)
    ]
    return {
        "level": level,
        "area": area,
        "period": per,
        "hierarchy": hierarchy,
        "reader_area": visible,
        "min_cell_size": ctx.settings.min_cell_size,
        "items": items,
    }

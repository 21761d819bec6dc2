"""Field team (GET /field): collaborators and devices of the area — last submission, last sync, lag, those
silent for more than N days highlighted — and the edge nodes with their backlog and last contact."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from console.pages.render import render
from console.sessions import Officer, area_scope, require_officer
from core import orgunits
from core.stores import edge_summary
from sync_server.deps import ServerContext

router = APIRouter(tags=["console"])
SignedIn = Annotated[Officer, Depends(require_officer())]


def in_area(visible: str, area: str | None) -> bool:
    """Whether an account/edge area lies in the officer's area (the province sees every one)."""
    if visible == orgunits.PROVINCE_CODE:
        return True
    return bool(area) and (
        area == visible or (area in orgunits.communes() and orgunits.covers(visible, area))
    )


def _lag_by_collaborator(ctx: ServerContext, visible: str) -> dict[str, float]:
    """Median submission lag (hours) per collaborator over the rows ingested for the area."""
    from sqlalchemy import select

    from aggregator.db import session_scope
    from aggregator.models import RawSubmission

    q = select(RawSubmission.submitted_by, RawSubmission.lag_seconds).where(  # type: ignore[call-overload,union-attr,arg-type]
        RawSubmission.lag_seconds.is_not(None)  # type: ignore[call-overload,union-attr,arg-type]
    )  # type: ignore[union-attr]
    if visible != orgunits.PROVINCE_CODE:
        col = RawSubmission.district_code if visible in orgunits.districts() else RawSubmission.commune_code
        q = q.where(col == visible)
    lags: dict[str, list[float]] = {}
    with session_scope(ctx.settings) as s:
        for who, lag in s.execute(q):
            lags.setdefault(str(who), []).append(float(lag))
    return {k: sorted(v)[len(v) // 2] / 3600 for k, v in lags.items()}


def _data(ctx: ServerContext, visible: str, days: int) -> dict[str, Any]:
    ctx.ensure_ready()
    devices = ctx.devices.report(visible)
    lag = _lag_by_collaborator(ctx, visible)
    for d in devices:
        d["lag_hours"] = lag.get(d["collaborator"])
        since = d.get("days_since_last_contact")
        d["silent"] = since is None or since > days
    people = [a for a in ctx.accounts.list() if a["role"] == "collaborator" and in_area(visible, a["area"])]
    seen = {d["collaborator"] for d in devices}
    never = [a for a in people if a["name"] not in seen]
    edges = [e for e in edge_summary(ctx.couch, ctx.settings) if in_area(visible, e.get("area"))]
    return {"devices": devices, "never": never, "edges": edges, "days": days}


@router.get("/field", response_model=None)
async def field(
    request: Request, officer: SignedIn, days: Annotated[int, Query(ge=1, le=365)] = 7
) -> Response:
    """Devices, collaborators and edges of the officer's area (area_scope)."""
    data = await run_in_threadpool(_data, request.app.state.ctx, area_scope(officer), days)
    return render(request, officer, "field.html", **data)

"""Province monitoring of edge nodes: ``GET /api/v1/edges``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from core.stores import edge_summary
from sync_server.auth import Account, require_roles
from sync_server.deps import Ctx

router = APIRouter(tags=["edges"])

# Edge nodes span areas (an edge may hold records of any area it received): province accounts only.
ProvinceOnly = Annotated[Account, Depends(require_roles("province"))]


@router.get("/api/v1/edges")
async def edges(ctx: Ctx, account: ProvinceOnly) -> Response:
    """Per edge node its last report, last success, backlog and lag (province only)."""
    rows = await run_in_threadpool(edge_summary, ctx.couch, ctx.settings)
    return JSONResponse({"edges": rows})

"""GET /healthz: liveness and store reachability, for container health checks and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.errors import Problem
from sync_server.deps import Ctx

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz(ctx: Ctx) -> JSONResponse:
    """200 when the store answers (so the server can durably accept submissions), 503 otherwise."""
    try:
        await run_in_threadpool(ctx.couch.db_info, ctx.settings.submissions_db)
    except Problem:
        return JSONResponse(
            {"status": "store_unavailable", "node": ctx.settings.node_name},
            status_code=503,
            headers={"Retry-After": "30"},
        )
    return JSONResponse({"status": "ok", "node": ctx.settings.node_name})

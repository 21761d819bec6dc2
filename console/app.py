"""create_app(): the one FastAPI app — device routers (sync_server) and people routers (console)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from console.routes import api, edges, indicators, reports
from core.settings import Settings, get_settings
from fieldapp.router import PREFIX as FIELDAPP_PREFIX
from fieldapp.router import router as fieldapp_router
from sync_server.deps import ServerContext
from sync_server.http import DEVICE_ROUTERS, install_problem_handlers

PEOPLE_ROUTERS: tuple[Any, ...] = (api.router, indicators.router, reports.router, edges.router)


def create_app(settings: Settings | None = None) -> FastAPI:
    """OpenRosa at the root, /sync for PouchDB devices, the operator API (/api/v1) and reports (/reports)."""
    settings = settings or get_settings()
    ctx = ServerContext(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ctx.try_ready)  # a store that is down now is retried on the next request
        yield

    app = FastAPI(title="carecheck", version="1.0", lifespan=lifespan)
    app.state.ctx = ctx
    app.state.settings = settings
    for router in (*DEVICE_ROUTERS, *PEOPLE_ROUTERS):
        app.include_router(router)
    app.include_router(fieldapp_router, prefix=FIELDAPP_PREFIX)  # the field web app (fieldapp/), at /app
    install_problem_handlers(app)
    return app

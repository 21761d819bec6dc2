"""create_app(): the one FastAPI app — device routers (sync_server) and people routers (console)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from console import odata
from console.pages import auditlog, field, overview, quality, signin, submissions, users
from console.pages.render import error_page
from console.routes import api, edges, indicators, reports
from core.errors import BadRequest, Problem
from core.settings import Settings, get_settings
from fieldapp.router import PREFIX as FIELDAPP_PREFIX
from fieldapp.router import router as fieldapp_router
from sync_server import http as device_http
from sync_server.deps import ServerContext
from sync_server.http import DEVICE_ROUTERS, install_problem_handlers

PAGES: tuple[Any, ...] = (
    signin.router,
    overview.router,
    field.router,
    quality.router,
    submissions.router,
    users.router,
    auditlog.router,
)
PEOPLE_ROUTERS: tuple[Any, ...] = (
    api.router,
    indicators.router,
    reports.router,
    edges.router,
    *PAGES,
    odata.router,
)
STATIC = Path(__file__).resolve().parent / "static"
# Paths of the console's HTML pages: refusals there are pages (or a redirect to sign in), not JSON.
_JSON_PREFIXES = (
    "/api/",
    "/reports/",
    "/odata/",
    "/sync/",
    "/forms/",
    "/formList",
    "/submission",
    "/healthz",
    "/app/",  # the field web app's API: the phone reads JSON problems (its pages are static files)
)


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(_JSON_PREFIXES)


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    if request.url.path.startswith("/odata/"):
        resp = await device_http._problem(request, exc)
        if exc.status == 401:
            return resp  # keep the Digest/Basic challenge so Power Query asks for credentials
        return JSONResponse(
            {"error": {"code": exc.code, "message": exc.message_en, "message_vi": exc.message}},
            status_code=exc.status,
            headers={"OData-Version": "4.0", **exc.headers},
        )
    if _is_page(request):
        return error_page(request, exc)
    return await device_http._problem(request, exc)


async def _invalid(request: Request, exc: Exception) -> Response:
    """Bad query parameters on a console page: the bilingual page; elsewhere the usual problem."""
    assert isinstance(exc, RequestValidationError)
    if _is_page(request):
        where = "; ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return error_page(
            request, BadRequest(f"Tham số không hợp lệ: {where}.", f"Invalid parameters: {where}.")
        )
    return await device_http._validation_error(request, exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """OpenRosa at the root, /sync for PouchDB devices, the operator API (/api/v1), reports (/reports), the
    officers' console (/, /login, …) and the OData feed (/odata/v4)."""
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
    app.mount("/static/console", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(fieldapp_router, prefix=FIELDAPP_PREFIX)  # the field web app (fieldapp/), at /app
    install_problem_handlers(app)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    return app


__all__ = ["PEOPLE_ROUTERS", "ServerContext", "create_app"]

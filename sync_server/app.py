"""create_app(): all routers in sync_server/routes, OpenRosa headers, Problem → OpenRosa / JSON envelopes."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import formatdate
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import Problem
from core.settings import Settings, get_settings
from sync_server import openrosa, routes
from sync_server.auth import AuthChallenge
from sync_server.deps import ServerContext

log = logging.getLogger("carecheck.sync")


class OpenRosaHeaders:
    """Pure ASGI middleware: ``X-OpenRosa-Version: 1.0`` and ``Date`` on every response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in (b"date",)]
                headers.append((b"x-openrosa-version", openrosa.OPENROSA_VERSION.encode()))
                headers.append((b"date", formatdate(usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_headers(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Inside the app's error middleware, so the 500 still carries the OpenRosa headers.
            if started:
                raise
            request = Request(scope)
            response = await _unexpected(request)
            await response(scope, receive, send_with_headers)


def _is_openrosa(request: Request) -> bool:
    """Phone-facing paths get OpenRosa envelopes; /api and other operator pages get problem+json.

    A phone set up with a wrong path prefix asks for ``…/formList`` or ``…/submission``: an envelope too.
    """
    path = request.url.path
    return path.startswith("/forms/") or path.rstrip("/").endswith(("/formList", "/submission"))


def _lang(request: Request) -> str:
    return "en" if request.headers.get("accept-language", "").lower().startswith("en") else "vi"


def problem_response(
    request: Request,
    status: int,
    title: str,
    message_vi: str,
    message_en: str,
    headers: dict[str, str] | None = None,
    challenges: list[str] | None = None,
) -> Response:
    """The one place a refusal is rendered: JSON problem details for /api, an OpenRosa envelope otherwise."""
    if not _is_openrosa(request):
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": message_en if _lang(request) == "en" else message_vi,
            "detail_vi": message_vi,
            "detail_en": message_en,
            "instance": request.url.path,
        }
        resp: Response = JSONResponse(
            body, status_code=status, headers=headers, media_type="application/problem+json"
        )
    else:
        text = message_vi if message_vi == message_en else f"{message_vi} / {message_en}"
        resp = Response(
            openrosa.response_xml(text, "error"), status_code=status, headers=headers, media_type=None
        )
        resp.headers["Content-Type"] = openrosa.XML_CONTENT_TYPE
    for c in challenges or []:
        resp.headers.append("WWW-Authenticate", c)
    return resp


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    if exc.status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.message_en)
    return problem_response(
        request,
        exc.status,
        exc.title,
        exc.message,
        exc.message_en,
        exc.headers,
        exc.challenges if isinstance(exc, AuthChallenge) else None,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    vi = {404: "Không có đường dẫn này trên máy chủ.", 405: "Phương thức không được hỗ trợ."}.get(
        exc.status_code, "Yêu cầu không hợp lệ."
    )
    return problem_response(
        request, exc.status_code, str(exc.detail), vi, str(exc.detail), dict(exc.headers or {})
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
    return problem_response(
        request, 400, "Bad request", f"Tham số không hợp lệ: {where}.", f"Invalid parameters: {where}."
    )


async def _unexpected(request: Request) -> Response:
    # Called from an except block: the traceback goes to the log; the client's message names no data.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        500,
        "Internal server error",
        "Máy chủ gặp lỗi. Phiếu vẫn lưu trên máy; hãy gửi lại sau.",
        "The server failed. The record stays on the phone; send again later.",
    )


def _routers() -> list[Any]:
    found = []
    for m in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{routes.__name__}.{m.name}")
        if getattr(mod, "router", None) is not None:
            found.append(mod.router)
    return found


def create_app(settings: Settings | None = None) -> FastAPI:
    """The sync server: OpenRosa at the root, the operator API under /api/v1 (plus any router others add)."""
    settings = settings or get_settings()
    ctx = ServerContext(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(ctx.try_ready)  # a store that is down now is retried on the next request
        yield

    app = FastAPI(title="carecheck sync server", version="1.0", lifespan=lifespan)
    app.state.ctx = ctx
    app.state.settings = settings
    for router in _routers():
        app.include_router(router)
    # The field web app (issue 14). Temporary: console/app.py will mount it once the house has moved
    # (imports point down; sync_server must not import fieldapp for long).
    from fieldapp.router import PREFIX, router as fieldapp_router

    app.include_router(fieldapp_router, prefix=PREFIX)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(OpenRosaHeaders)
    return app

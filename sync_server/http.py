"""HTTP plumbing for every router: OpenRosa headers, Problem → OpenRosa / JSON envelopes, device routers."""

from __future__ import annotations

import logging
import time
from email.utils import formatdate
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import Problem
from sync_server import openrosa
from sync_server.auth import AuthChallenge
from sync_server.routes import edge_sync, formlist, health, replication, submission

log = logging.getLogger("carecheck.sync")


_date: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The Date header's value, formatted once a second (uvicorn does the same for its own)."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


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
                headers.append((b"date", _http_date()))
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


# The problem code of answers that did not come from a Problem (routing, validation, unexpected errors).
_STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "bad_request", 409: "conflict",
                 413: "too_large", 500: "internal_error", 503: "store_unavailable"}


def problem_response(
    request: Request,
    status: int,
    title: str,
    message_vi: str,
    message_en: str,
    headers: dict[str, str] | None = None,
    challenges: list[str] | None = None,
    code: str | None = None,
) -> Response:
    """The one place a refusal is rendered: JSON problem details for /api, an OpenRosa envelope otherwise."""
    if not _is_openrosa(request):
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": title,
            "code": code or _STATUS_CODES.get(status, "bad_request"),
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
        exc.code,
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


# What devices talk to, listed explicitly: a missing module is an ImportError at start, never a silent gap.
# edge_sync before replication: /sync/edge/… must not be taken for a device database named "edge".
DEVICE_ROUTERS: tuple[Any, ...] = (health.router, formlist.router, submission.router, edge_sync.router,
                                   replication.router)


def install_problem_handlers(app: FastAPI) -> None:
    """Refusals rendered one way (``problem_response``) and OpenRosa headers on every answer."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(OpenRosaHeaders)

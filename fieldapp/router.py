"""Serves the field web app at /app: the built shell (static/), manifest and icons, and its small JSON API.

Mount with ``app.include_router(router, prefix=PREFIX)``. The API:

- ``POST /app/api/session`` {username, password} → a device token (sync_server/tokens.py) for a collaborator;
  the password is checked once and never kept on the phone;
- ``DELETE /app/api/session`` revokes the caller's own token (sign-out); ``DELETE /app/api/tokens/{id}``
  lets a province officer revoke any phone's token;
- ``GET /app/api/forms`` the current forms with Enketo's HTML/model prepared at form-build time
  (forms/enketo.py), from the same version directory whose form.xml the OpenRosa server serves.

Finished records do not come here: the app replicates them to ``/sync/submissions`` with the same token.
Refusals are raised as Problems and rendered by the app's one handler (JSON problem details with ``code``,
``detail_vi``, ``detail_en``); a device 401 is a plain ``Unauthorized`` without a ``WWW-Authenticate``
challenge, so the browser never pops up a password dialog of its own.
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.errors import Forbidden, NotFound, Problem, Unauthorized
from sync_server import tokens
from sync_server.auth import Account
from sync_server.deps import ServerContext
from sync_server.store import utc_now

PREFIX = "/app"
STATIC = Path(__file__).with_name("static")
ENKETO_FILE = "enketo.json"
router = APIRouter(tags=["fieldapp"])

_NO_CACHE = {"Cache-Control": "no-cache"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class AppUnavailable(Problem):
    status = 503
    title = "Web app not built"
    code = "config_error"  # a local build step is missing; the operator runs `make install`


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=500)


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=_NO_CACHE)


def _static(name: str) -> Path:
    path = STATIC / name
    if not path.is_file():
        raise AppUnavailable(
            "Ứng dụng web chưa được dựng: hãy chạy 'make install' (npm + esbuild).",
            "The web app is not built: run 'make install' (npm + esbuild).",
        )
    return path


def _file(name: str) -> Response:
    path = _static(name)
    return FileResponse(path, media_type=_TYPES.get(path.suffix), headers=_NO_CACHE)


@router.get("", include_in_schema=False)
async def app_root_redirect() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=308)


@router.get("/", include_in_schema=False)
@router.get("/index.html", include_in_schema=False)
async def index() -> Response:
    return _file("index.html")


@router.get("/app.js", include_in_schema=False)
async def app_js() -> Response:
    return _file("app.js")


@router.get("/app.css", include_in_schema=False)
async def app_css() -> Response:
    return _file("app.css")


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> Response:
    return _file("sw.js")


@router.get("/manifest.webmanifest", include_in_schema=False)
async def manifest() -> Response:
    body = {
        "name": "Kiểm tra chăm sóc trẻ em — carecheck",
        "short_name": "Trẻ em",
        "description": "Phiếu kiểm tra chăm sóc trẻ em tại hộ gia đình, dùng được khi không có mạng.",
        "lang": "vi",
        "start_url": f"{PREFIX}/",
        "scope": f"{PREFIX}/",
        "display": "standalone",
        "background_color": "#f4f6f5",
        "theme_color": "#0b6e4f",
        "icons": [
            {"src": f"{PREFIX}/icon-192.png", "sizes": "192x192", "type": "image/png", "purpose": "any"},
            {
                "src": f"{PREFIX}/icon-512.png",
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "any maskable",
            },
        ],
    }
    return Response(
        json.dumps(body, ensure_ascii=False), media_type="application/manifest+json", headers=_NO_CACHE
    )


@router.get("/icon-{size}.png", include_in_schema=False)
async def icon(size: int) -> Response:
    if size not in (192, 512):
        raise NotFound("Không có biểu tượng này.", "No such icon.")
    return Response(_icon_png(size), media_type="image/png", headers={"Cache-Control": "max-age=86400"})


@lru_cache(maxsize=2)
def _icon_png(size: int) -> bytes:
    """A plain icon drawn here (a white cross on green), so no binary file is kept in the repository."""
    green, white = b"\x0b\x6e\x4f", b"\xff\xff\xff"
    lo, hi, bar_lo, bar_hi = size // 4, size - size // 4, size * 7 // 16, size * 9 // 16
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")
        for x in range(size):
            cross = (bar_lo <= x < bar_hi and lo <= y < hi) or (bar_lo <= y < bar_hi and lo <= x < hi)
            row += white if cross else green
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


# --- API ----------------------------------------------------------------------------------------------------


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def _device_account(request: Request) -> Account:
    ctx: ServerContext = request.app.state.ctx
    token = _bearer(request)
    account = await run_in_threadpool(tokens.verify, ctx.accounts, token) if token else None
    if account is None:
        raise tokens.refused()
    return account


@router.post("/api/session")
async def sign_in(body: SignIn, request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    if not ctx.ready:
        await run_in_threadpool(ctx.ensure_ready)
    account = await run_in_threadpool(ctx.accounts.verify_basic, body.username, body.password, ctx.secret)
    if account is None:
        raise Unauthorized(
            "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khoá.",
            "Wrong user name or password, or the account is disabled.",
        )
    if account.role != "collaborator":
        raise Forbidden(
            "Ứng dụng này dành cho cộng tác viên; cán bộ dùng trang báo cáo.",
            "This app is for field collaborators; officers use the reports.",
        )
    label = request.headers.get("user-agent", "")
    token, doc = await run_in_threadpool(tokens.issue, ctx.accounts, account, label)
    return _json(
        {
            "token": token,
            "token_id": doc["token_id"],
            "expires_at": doc["expires_at"],
            "server_time": utc_now(),
            "account": {"name": account.name, "role": account.role, "area": account.area},
        },
        201,
    )


@router.delete("/api/session")
async def sign_out(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    await _device_account(request)
    await run_in_threadpool(tokens.revoke_token, ctx.accounts, _bearer(request))
    return _json({"revoked": True})


@router.delete("/api/tokens/{token_id}")
async def revoke_device(token_id: str, request: Request) -> Response:
    """A province officer revokes a phone's token (Basic/Digest, like the operator API)."""
    from sync_server.auth import current_account

    ctx: ServerContext = request.app.state.ctx
    account = await current_account(request)
    if account.role != "province":
        raise Forbidden(
            "Chỉ cán bộ cấp tỉnh thu hồi được phiên của điện thoại khác.",
            "Only province officers may revoke another phone's token.",
        )
    n = await run_in_threadpool(lambda: tokens.revoke(ctx.accounts, token_id=token_id))
    return _json({"revoked": n})


@router.get("/api/forms")
async def forms(request: Request) -> Response:
    """The current forms, each with Enketo's form/model from its build directory."""
    ctx: ServerContext = request.app.state.ctx
    await _device_account(request)

    def read() -> list[dict[str, Any]]:
        out = []
        for b in ctx.forms.current():
            path = b.dir / ENKETO_FILE
            if not path.is_file():
                continue  # built without Node: `carecheck forms build` says so; OpenRosa still serves it
            enketo = json.loads(path.read_text(encoding="utf-8"))
            out.append(
                {
                    "form_id": b.form_id,
                    "version": b.version,
                    "title": b.title,
                    "hash": b.hash,
                    "languages": b.languages,
                    "enketo": enketo,
                }
            )
        return out

    return _json({"forms": await run_in_threadpool(read), "server_time": utc_now()})

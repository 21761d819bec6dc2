"""Rendering for console pages: the Jinja2 environment, the language (Vietnamese first), error pages."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from console.sessions import COOKIE, Officer, SignInRequired, set_session
from core.errors import Problem

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Inlined into every page: one request per page on 3G (the stylesheet is ~3 KB).
CSS = (Path(__file__).resolve().parent.parent / "static" / "console.css").read_text(encoding="utf-8")
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
LANG_COOKIE = "cc_lang"
NAV = (
    ("/", "Tổng quan", "Overview"),
    ("/field", "Đội thu thập", "Field team"),
    ("/quality", "Chất lượng số liệu", "Data quality"),
    ("/submissions", "Phiếu", "Submissions"),
    ("/users", "Tài khoản", "Users"),
    ("/audit", "Nhật ký", "Audit log"),
)
STATUS = {
    "met": ("Đạt", "Met"),
    "close": ("Gần đạt", "Close"),
    "not_met": ("Chưa đạt", "Not met"),
    "no_target": ("Không có chỉ tiêu", "No target"),
    "no_data": ("Chưa có số liệu", "No data"),
    "suppressed": ("Ẩn (ô nhỏ)", "Hidden (small cell)"),
}


def lang_of(request: Request) -> str:
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "vi"


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def sparkline(values: list[float | None], width: int = 80, height: int = 20) -> str:
    """A tiny inline SVG line of a trend (gaps where there is no value); empty when fewer than two values."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return ""
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span = (hi - lo) or 1.0
    step = (width - 4) / max(1, len(values) - 1)
    xy = " ".join(f"{2 + i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in points)
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'aria-hidden="true">'
        f'<polyline fill="none" stroke="#2f5d8a" stroke-width="1.5" points="{xy}"/></svg>'
    )


def render(
    request: Request, officer: Officer | None, template: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    """A page; re-issues the session cookie (the idle timeout slides with each page)."""
    lang = lang_of(request)

    def t(vi: str, en: str) -> str:
        return en if lang == "en" else vi

    body = _env.get_template(template).render(
        t=t,
        lang=lang,
        officer=officer,
        nav=NAV,
        path=request.url.path,
        fmt=fmt,
        status_label=STATUS,
        quote=quote,
        css=CSS,
        sparkline=sparkline,
        **ctx,
    )
    headers = {"Cache-Control": "private, no-store", "Vary": "Accept-Encoding"}
    data = body.encode("utf-8")
    # Pages are gzipped here, not by a middleware: the device routes stream (the /sync proxy's feeds), and a
    # compressor would hold them back. A 20 KB overview becomes ~4 KB: a second less on 3G.
    if "gzip" in request.headers.get("accept-encoding", "").lower() and len(data) > 1024:
        data = gzip.compress(data, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    resp = HTMLResponse(data, status_code=status, headers=headers)
    refresh = getattr(request.state, "refresh_cookie", None)
    if officer is not None and refresh:
        set_session(resp, request, refresh, request.app.state.settings.console_idle_minutes * 60)
    return resp


def error_page(request: Request, exc: Problem) -> Response:
    """A refusal on a console page: sign-in redirects; anything else a small bilingual page."""
    if isinstance(exc, SignInRequired):
        target = "/login?next=" + quote(request.url.path, safe="/") + ("&expired=1" if exc.expired else "")
        resp: Response = RedirectResponse(target, status_code=303)
        if exc.expired or request.cookies.get(COOKIE):
            resp.delete_cookie(COOKIE, path="/")
        return resp
    officer = getattr(request.state, "officer", None)
    return render(request, officer, "error.html", status=exc.status, exc=exc)

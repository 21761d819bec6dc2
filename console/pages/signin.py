"""Sign-in, sign-out and the language switch (GET/POST /login, POST /logout, GET /lang/{code})."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from console import audit
from console.pages.render import LANG_COOKIE, lang_of, render
from console.sessions import (
    COOKIE,
    check_password,
    clear_session,
    client_address,
    cross_site,
    end_sessions,
    make_cookie,
    read_cookie,
    read_form,
    session_officer,
    set_session,
)
from core.errors import Forbidden, Problem
from sync_server.auth import OFFICER_ROLES
from sync_server.deps import ServerContext

router = APIRouter(tags=["console"])


def _local(path: str | None) -> str:
    """Only a path on this site (no scheme, no //host): an open redirect otherwise."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


@router.get("/login", response_model=None)
def login_form(request: Request, next: str = "/", expired: int = 0) -> Response:
    """The sign-in form (anyone)."""
    return render(request, None, "login.html", next=_local(next), expired=bool(expired), error=None)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Form fields ``username``, ``password`` (and optional ``next``): 303 + session cookie when right."""
    ctx: ServerContext = request.app.state.ctx
    if cross_site(request):
        raise Forbidden(
            "Yêu cầu đăng nhập đến từ trang khác.", "A sign-in posted from another site.", code="csrf_failed"
        )
    form = await read_form(request, None)
    name = form.get("username", "").strip()
    addr = client_address(request)
    try:
        account = await run_in_threadpool(check_password, ctx, name, form.get("password", ""), addr)
    except Problem as exc:  # the throttle's 429 (account or address locked) or a store outage
        page = render(
            request,
            None,
            "login.html",
            status=exc.status,
            next=_local(form.get("next")),
            expired=False,
            error=exc.message_en if lang_of(request) == "en" else exc.message,
        )
        page.headers.update(exc.headers)  # Retry-After
        return page
    if account is None or account.role not in OFFICER_ROLES:
        await run_in_threadpool(
            audit.record,
            ctx.couch,
            ctx.settings,
            audit.SIGN_IN_FAILED,
            actor=name[:100] or None,
            route="POST /login",
            client=addr,
            reason="not_officer" if account is not None else "wrong_password",
        )
        msg = (
            "Tài khoản này không dùng được trang cán bộ."
            if account is not None
            else "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khoá."
        )
        msg_en = (
            "This account cannot use the officers' console."
            if account is not None
            else "Wrong user name or password, or the account is disabled."
        )
        return render(
            request,
            None,
            "login.html",
            status=401,
            next=_local(form.get("next")),
            expired=False,
            error=msg_en if lang_of(request) == "en" else msg,
        )
    await run_in_threadpool(
        audit.record,
        ctx.couch,
        ctx.settings,
        audit.SIGN_IN,
        actor=account.name,
        role=account.role,
        area=account.area,
        route="POST /login",
        client=addr,
    )
    resp = RedirectResponse(_local(form.get("next")), status_code=303)
    set_session(resp, request, make_cookie(ctx.secret, account.name), ctx.settings.console_idle_minutes * 60)
    return resp


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    """Ends the account's sessions (every browser: cookies are stateless, so the end time is recorded) and
    clears the cookie; CSRF-checked while the session is valid, an expired one is simply cleared."""
    ctx: ServerContext = request.app.state.ctx
    claims = read_cookie(ctx.secret, request.cookies.get(COOKIE, ""))
    if claims is not None:
        try:
            officer = await session_officer(request)
        except Problem:
            officer = None
        if officer is not None:
            await read_form(request, officer)
            await run_in_threadpool(end_sessions, ctx, officer.name)
            await run_in_threadpool(
                audit.record,
                ctx.couch,
                ctx.settings,
                audit.SIGN_OUT,
                actor=officer.name,
                role=officer.role,
                area=officer.area,
                route="POST /logout",
                client=client_address(request),
            )
    resp = RedirectResponse("/login", status_code=303)
    clear_session(resp, request)
    return resp


@router.get("/lang/{code}", response_model=None)
def set_language(code: str, next: str = "/") -> Response:
    """Switch between Vietnamese (default) and English; remembered in a cookie for a year."""
    resp = RedirectResponse(_local(next), status_code=303)
    resp.set_cookie(LANG_COOKIE, "en" if code == "en" else "vi", max_age=365 * 86400, samesite="lax")
    return resp

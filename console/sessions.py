"""Console sign-in: signed session cookies, CSRF tokens, idle timeout, the officer dependency.

A session is a cookie ``cc_session`` = base64(JSON {n: account, s: session id, t: last activity}) + "." + an
HMAC-SHA256 under the server secret (``var/sync_secret``, the one the Digest nonces use), so every server
process accepts it and nothing is stored per session. Each request re-reads the account (the accounts cache,
30 s): a disabled account is signed out within that time, and a role or area change applies at once. The
cookie is HttpOnly, SameSite=Lax, ``Secure`` when the request came over HTTPS (directly or as told by the TLS
proxy's ``X-Forwarded-Proto``). It is re-issued on each page so the idle timeout (``console_idle_minutes``)
slides; past it the officer signs in again.

CSRF: every form carries ``csrf`` = HMAC(secret, "csrf:" + session id); a POST without the right token
changes nothing. The sign-in form needs no session: its POST is refused when the browser says it came from
another site (``Origin``/``Sec-Fetch-Site``), which is what matters for login CSRF, and scripts may post it
with just ``username`` and ``password`` (contract).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.errors import BadRequest, Forbidden, Problem
from core.throttle import attempt
from sync_server.auth import OFFICER_ROLES, Account, current_account, visible_area
from sync_server.deps import ServerContext

COOKIE = "cc_session"
MAX_FORM_BYTES = 64 * 1024


class SignInRequired(Problem):
    """401 on a console page: the handler answers with a redirect to the sign-in form."""

    status = 401
    title = "Sign-in required"
    code = "sign_in_required"

    def __init__(self, expired: bool = False):
        if expired:
            super().__init__(
                "Phiên làm việc đã hết hạn. Hãy đăng nhập lại.", "Your session expired. Please sign in again."
            )
        else:
            super().__init__("Cần đăng nhập.", "Please sign in.")
        self.expired = expired


def _sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, b"session:" + body, hashlib.sha256).hexdigest()


def make_cookie(
    secret: bytes, name: str, sid: str | None = None, now: float | None = None, issued: int | None = None
) -> str:
    """A signed session cookie; ``issued`` (sign-in time, ms) is kept when the cookie is re-issued."""
    t = now if now is not None else time.time()
    body = json.dumps(
        {
            "n": name,
            "s": sid or secrets.token_hex(16),
            "t": int(t),
            "i": issued if issued is not None else int(t * 1000),
        },
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _sign(secret, body)


def read_cookie(secret: bytes, value: str) -> dict[str, Any] | None:
    """The cookie's claims when its signature is ours, else None (a forged or damaged cookie)."""
    raw, _, sig = value.partition(".")
    try:
        body = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        claims = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict) or not hmac.compare_digest(sig, _sign(secret, body)):
        return None
    if not isinstance(claims.get("n"), str) or not isinstance(claims.get("t"), int):
        return None
    return claims


def csrf_token(secret: bytes, sid: str) -> str:
    return hmac.new(secret, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()[:32]


def is_https(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def set_session(response: Response, request: Request, cookie: str, idle_seconds: int) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=idle_seconds,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request))


class Officer:
    """The signed-in person: their account, session id and CSRF token (for templates)."""

    def __init__(self, account: Account, sid: str, csrf: str):
        self.account = account
        self.sid = sid
        self.csrf = csrf

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def role(self) -> str:
        return self.account.role

    @property
    def area(self) -> str:
        return visible_area(self.account)

    @property
    def admin(self) -> bool:
        return self.account.admin


def area_scope(officer: Officer) -> str:
    """The area whose data the officer may see ("91" = everything): THE access rule's input for pages."""
    return visible_area(officer.account)


async def session_officer(request: Request) -> Officer:
    """Dependency: the signed-in officer (SignInRequired → redirect to /login otherwise)."""
    cached = getattr(request.state, "officer", None)
    if isinstance(cached, Officer):
        return cached
    ctx: ServerContext = request.app.state.ctx
    value = request.cookies.get(COOKIE)
    if not value:
        raise SignInRequired()
    claims = read_cookie(ctx.secret, value)
    if claims is None:
        raise SignInRequired()
    if time.time() - claims["t"] > ctx.settings.console_idle_minutes * 60:
        raise SignInRequired(expired=True)
    issued = int(claims.get("i") or claims["t"] * 1000)
    account, ended = await run_in_threadpool(_active_account, ctx, claims["n"])
    if account is None or account.role not in OFFICER_ROLES or issued <= ended:
        raise SignInRequired()
    sid = str(claims.get("s") or "")
    officer = Officer(account, sid, csrf_token(ctx.secret, sid))
    request.state.officer = officer
    request.state.refresh_cookie = make_cookie(ctx.secret, account.name, sid, issued=issued)
    return officer


def _active_account(ctx: ServerContext, name: str) -> tuple[Account | None, float]:
    account, _ = ctx.accounts.digest_record(name)
    return account, (ended_at(ctx, name) if account is not None else 0.0)


# --- ending sessions --------------------------------------------------------------------------------------
# Cookies are stateless, so signing out (or an admin's password reset) records when the account's sessions
# ended: one doc ``end:<name>`` (``at``, ms) in ``<accounts_db>_sessions``; a cookie issued at or before it is
# refused by every server process (each caches the time for ``ENDED_TTL`` seconds).
ENDED_TTL = 5.0
_ended: dict[str, tuple[float, float]] = {}


def sessions_db(ctx: ServerContext) -> str:
    return f"{ctx.settings.accounts_db}_sessions"


def ended_at(ctx: ServerContext, name: str) -> float:
    key = f"{sessions_db(ctx)}:{name}"
    hit = _ended.get(key)
    if hit and time.monotonic() - hit[0] < ENDED_TTL:
        return hit[1]
    try:
        doc = ctx.couch.get(sessions_db(ctx), f"end:{name}")
    except Problem:
        doc = None  # no database yet: nobody ever signed out
    value = float((doc or {}).get("at") or 0.0)
    if len(_ended) > 10_000:
        _ended.clear()
    _ended[key] = (time.monotonic(), value)
    return value


def end_sessions(ctx: ServerContext, name: str) -> None:
    """Every session of ``name`` issued until now stops working (sign-out, password reset)."""
    now = int(time.time() * 1000)  # ms, as the cookies' issue time
    db = sessions_db(ctx)
    ctx.couch.ensure_db(db)
    for _ in range(5):
        doc = ctx.couch.get(db, f"end:{name}") or {"_id": f"end:{name}"}
        doc["at"] = now
        try:
            ctx.couch.save(db, doc)
            break
        except Problem:
            continue
    _ended[f"{db}:{name}"] = (time.monotonic(), float(now))


def require_officer(*, admin: bool = False, roles: tuple[str, ...] = OFFICER_ROLES) -> Callable[..., Any]:
    """Dependency factory: the officer when their role is one of ``roles`` (and an admin, if asked)."""

    async def dep(request: Request) -> Officer:
        officer = await session_officer(request)
        if officer.role not in roles or (admin and not officer.admin):
            raise Forbidden(
                f"Tài khoản {officer.name} không được phép mở trang này.",
                f"Account {officer.name} may not open this page.",
                code="forbidden",
            )
        return officer

    return dep


async def read_form(request: Request, officer: Officer | None) -> dict[str, str]:
    """A posted form (URL-encoded, ≤ 64 KB, text fields only), CSRF-checked when a session is given."""
    size = request.headers.get("content-length")
    if size is None or not size.isdigit() or int(size) > MAX_FORM_BYTES:
        raise BadRequest(
            "Biểu mẫu gửi lên quá lớn hoặc không có độ dài.",
            "The posted form is too large or has no length.",
            code="form_invalid",
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest(
            "Biểu mẫu phải gửi dạng application/x-www-form-urlencoded.",
            "Forms must be posted as application/x-www-form-urlencoded.",
            code="form_invalid",
        )
    try:
        form = await request.form(max_files=0, max_fields=50)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the client's malformed post
        raise BadRequest(
            "Biểu mẫu không đọc được.", "The form could not be read.", code="form_invalid"
        ) from exc
    out = {k: v for k, v in form.items() if isinstance(v, str)}
    if officer is not None and not hmac.compare_digest(out.get("csrf", ""), officer.csrf):
        raise Forbidden(
            "Biểu mẫu đã cũ hoặc không đến từ trang này (mã CSRF sai). Hãy tải lại trang và thử lại.",
            "The form is stale or did not come from this site (bad CSRF token). Reload the page and retry.",
            code="csrf_failed",
        )
    return out


def cross_site(request: Request) -> bool:
    """Whether the browser says this POST came from another site (login CSRF)."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") != host


def client_address(request: Request) -> str:
    """The client's address as the server sees it (uvicorn's --proxy-headers sets it behind a proxy)."""
    return request.client.host if request.client else ""


def check_password(ctx: ServerContext, name: str, password: str, addr: str) -> Account | None:
    """The account when the password is right, None otherwise — the one password check of the console.

    Counted by the same failed-login throttle as the phones' Digest/Basic attempts (``core.throttle.attempt``:
    per account and per client address; raises TooManyAttempts — 429 + Retry-After — while locked, even for
    the right password).
    """
    if not name or len(name) > 100 or not password or len(password) > 200:
        return None
    return attempt(
        ctx.throttle,
        name,
        addr,
        lambda: ctx.accounts.verify_basic(name, password, ctx.secret),
        route="POST /login",
    )


async def officer_account(request: Request) -> Account:
    """Dependency for officer reads a browser and a script both use (reports, OData): the console session's
    account when the cookie is valid, else the Authorization header's (Basic/Digest); officers only."""
    try:
        account = (await session_officer(request)).account
    except SignInRequired:
        account = await current_account(request)
    if account.role not in OFFICER_ROLES:
        raise Forbidden(
            f"Tài khoản {account.name} không đọc được số liệu.",
            f"Account {account.name} may not read data.",
        )
    return account

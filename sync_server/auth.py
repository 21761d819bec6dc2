"""Accounts (contracts §4), Digest and Basic authentication, roles and area scoping for the sync server.

Phones speak Digest (MD5, qop=auth; RFC 7616 / https://docs.getodk.org/openrosa-authentication/) or Basic
(only over HTTPS in production). A Digest nonce is a timestamp and the issuing process's instance id signed
with HMAC under a server secret kept in ``var/sync_secret``; an expired nonce, or one from another process,
gets ``stale=true`` (the phone retries without asking the collaborator). Each (nonce, nc) is accepted once
(``NonceCounts``), so a captured header cannot be replayed with another body. Failed passwords are throttled
per account and client address (``core.throttle``: 429 + Retry-After, lockouts cleared with ``carecheck user
unlock``). Basic checks an argon2 hash, which is slow on purpose; the result is
cached for a few minutes keyed by a salted hash of the credentials, so a burst of submissions stays cheap.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from core import orgunits
from core.couch import Couch, DocExists
from core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from core.settings import Settings
from core.throttle import Throttle
from sync_server import tokens

log = logging.getLogger("carecheck.sync.auth")

ROLES = ("collaborator", "commune", "district", "province")
# Officers read records and figures of their area (commune, legacy district, province); collaborators submit.
OFFICER_ROLES = ("commune", "district", "province")
EDGE_ROLE = "edge"  # an enrolled edge node (sync_server.edges); never made by `user add`, Basic auth only
ACCOUNT_TTL = 30.0  # seconds an account read from CouchDB is trusted (disable takes effect within this)
BASIC_TTL = 300.0  # seconds a verified Basic credential is trusted without re-running argon2
NONCE_TTL = 600  # seconds a Digest nonce is fresh; after that the challenge says stale=true
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Account:
    """Who is asking: name, role (collaborator | commune | district | province), area (91, district, commune).

    ``admin``: a district or province officer who also manages accounts of their area (the web console).
    """

    name: str
    role: str
    area: str
    admin: bool = False


def visible_area(account: Account) -> str:
    """The area whose data the account may read ("91" = everything)."""
    return orgunits.PROVINCE_CODE if account.role == "province" else account.area


def digest_ha1(name: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{name}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - Digest is MD5 by spec


def _check_area(role: str, area: str | None) -> str:
    if role == "province":
        if area not in (None, "", orgunits.PROVINCE_CODE):
            raise BadRequest(
                f"Tài khoản cấp tỉnh có vùng {orgunits.PROVINCE_CODE}, không phải {area}.",
                f"A province account's area is {orgunits.PROVINCE_CODE}, not {area}.",
            )
        return orgunits.PROVINCE_CODE
    if not area:
        raise BadRequest(
            f"Vai trò {role} cần --area (mã huyện hoặc mã xã).",
            f"Role {role} needs --area (a legacy district or commune code).",
        )
    districts = {c.district_code for c in orgunits.communes().values()}
    if area not in districts and area not in orgunits.communes():
        raise BadRequest(
            f"Mã vùng {area} không có trong danh mục đơn vị hành chính Kiên Giang.",
            f"Area code {area} is not a Kiên Giang district or commune code (see core.orgunits).",
        )
    if role == "district" and area not in districts:
        raise BadRequest(
            f"Tài khoản cấp huyện cần mã huyện (3 chữ số), không phải {area}.",
            f"A district account needs a district code (3 digits), not {area}.",
        )
    if role == "commune" and area not in orgunits.communes():
        raise BadRequest(
            f"Tài khoản cấp xã cần mã xã (5 chữ số), không phải {area}.",
            f"A commune account needs a commune code (5 digits), not {area}.",
        )
    return area


def _check_password(password: str) -> None:
    if len(password) < 6:
        raise BadRequest("Mật khẩu cần ít nhất 6 ký tự.", "The password needs at least 6 characters.")
    if len(password) > 200:
        raise BadRequest(
            "Mật khẩu quá dài (tối đa 200 ký tự).", "The password is too long (200 characters at most)."
        )


class Accounts:
    """The accounts database, with a short-lived in-memory cache for the hot path."""

    def __init__(self, couch: Couch, settings: Settings):
        self.couch = couch
        self.db = settings.accounts_db
        self.realm = settings.realm
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._basic_ok: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    # --- management (CLI) ---
    def add(self, name: str, password: str, role: str, area: str | None, *, admin: bool = False) -> Account:
        if role not in ROLES:
            raise BadRequest(
                f"Vai trò không hợp lệ: {role}. Chọn: {', '.join(ROLES)}.",
                f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.",
            )
        if not name or ":" in name or any(ch.isspace() for ch in name):
            raise BadRequest(
                "Tên tài khoản không được trống, chứa dấu ':' hoặc khoảng trắng.",
                "An account name must be non-empty, without ':' or spaces.",
            )
        _check_password(password)
        area = _check_area(role, area)
        if admin and role not in ("district", "province"):
            raise BadRequest(
                "Chỉ cán bộ cấp huyện hoặc tỉnh mới có quyền quản trị.",
                "Only district or province officers can be admins.",
            )
        doc = {
            "_id": f"user:{name}",
            "type": "user",
            "name": name,
            "role": role,
            "area": area,
            "password_argon2": _hasher.hash(password),
            "digest_ha1": digest_ha1(name, self.realm, password),
            "active": True,
            "admin": admin,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.couch.ensure_db(self.db)
        try:
            self.couch.create(self.db, doc)
        except DocExists:
            raise BadRequest(f"Tài khoản {name} đã tồn tại.", f"Account {name} already exists.") from None
        return Account(name, role, area, admin)

    def set_password(self, name: str, password: str) -> None:
        """A new password (the argon2 hash and the Digest HA1); earlier Basic verifications are dropped."""
        _check_password(password)
        doc = self.couch.get(self.db, f"user:{name}")
        if doc is None:
            raise NotFound(f"Không có tài khoản {name}.", f"No account named {name}.")
        doc["password_argon2"] = _hasher.hash(password)
        doc["digest_ha1"] = digest_ha1(name, self.realm, password)
        self.couch.save(self.db, doc)
        self._cache.pop(name, None)
        with self._lock:
            self._basic_ok.clear()

    def get(self, name: str) -> dict[str, Any] | None:
        """An account's public fields (no hashes), fresh from the store; None when there is none."""
        doc = self.couch.get(self.db, f"user:{name}")
        if doc is None:
            return None
        return {k: doc.get(k) for k in ("name", "role", "area", "active", "admin", "created_at")}

    def set_active(self, name: str, active: bool) -> None:
        doc = self.couch.get(self.db, f"user:{name}")
        if doc is None:
            raise NotFound(f"Không có tài khoản {name}.", f"No account named {name}.")
        doc["active"] = active
        self.couch.save(self.db, doc)
        self._cache.pop(name, None)

    def list(self) -> list[dict[str, Any]]:
        self.couch.ensure_db(self.db)
        rows = self.couch.all_docs(self.db, include_docs=True, startkey="user:", endkey="user:\ufff0")["rows"]
        keys = ("name", "role", "area", "active", "admin", "created_at")
        return [{k: r["doc"].get(k) for k in keys} for r in rows]

    # --- lookups (hot path) ---
    def _record(self, name: str) -> dict[str, Any] | None:
        now = time.monotonic()
        hit = self._cache.get(name)
        # Edge credentials are read every time: `carecheck edge revoke` takes effect at once.
        if hit and now - hit[0] < ACCOUNT_TTL and (hit[1] or {}).get("role") != EDGE_ROLE:
            return hit[1]
        doc = self.couch.get(self.db, f"user:{name}")
        self._cache[name] = (now, doc)
        return doc

    def _account(self, doc: dict[str, Any] | None) -> Account | None:
        if doc is None or not doc.get("active", False) or doc.get("role") not in (*ROLES, EDGE_ROLE):
            return None
        return Account(
            str(doc["name"]),
            str(doc["role"]),
            str(doc.get("area") or orgunits.PROVINCE_CODE),
            bool(doc.get("admin", False)),
        )

    def verify_basic(self, name: str, password: str, secret: bytes) -> Account | None:
        key = hmac.new(secret, f"{name}\x00{password}".encode(), hashlib.sha256).hexdigest()
        now = time.monotonic()
        doc = self._record(name)
        ok = self._basic_ok.get(key)
        if ok and now - ok[0] < BASIC_TTL and ok[1] == (doc or {}).get("password_argon2"):
            self._revoked_edge(doc)
            return self._account(doc)
        if doc is None:
            return None
        try:
            _hasher.verify(str(doc.get("password_argon2", "")), password)
        except (VerificationError, InvalidHashError):
            return None
        with self._lock:
            if len(self._basic_ok) > 10_000:
                self._basic_ok.clear()
            self._basic_ok[key] = (now, str(doc.get("password_argon2")))
        self._revoked_edge(doc)
        return self._account(doc)

    @staticmethod
    def _revoked_edge(doc: dict[str, Any] | None) -> None:
        """A revoked edge that still knows its secret is told so (403), not asked for a password again."""
        if doc and doc.get("role") == EDGE_ROLE and not doc.get("active", False):
            raise Forbidden(
                f"Nút biên {doc.get('name')} đã bị tỉnh thu hồi quyền đồng bộ ({doc.get('revoked_at')}). "
                "Hãy xin tỉnh mã đăng ký mới và chạy 'carecheck edge init --enroll-secret …'.",
                f"Edge {doc.get('name')} was revoked by the province ({doc.get('revoked_at')}). "
                "Ask the province for a new enrolment secret and run "
                "'carecheck edge init --enroll-secret …'.",
                code="edge_revoked",
            )

    def _fresh(self, name: str) -> bool:
        hit = self._cache.get(name)
        return (hit is not None and time.monotonic() - hit[0] < ACCOUNT_TTL
                and (hit[1] or {}).get("role") != EDGE_ROLE)

    def answer_cached(self, header: str, secret: bytes) -> bool:
        """Whether authenticating this header needs no I/O and no argon2 (so it may run on the event loop)."""
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "digest":
            return self._fresh(parse_auth_params(value).get("username", ""))
        if scheme == "basic":
            try:
                name, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return True
            key = hmac.new(secret, f"{name}\x00{password}".encode(), hashlib.sha256).hexdigest()
            ok = self._basic_ok.get(key)
            return self._fresh(name) and ok is not None and time.monotonic() - ok[0] < BASIC_TTL
        if scheme == "bearer":  # the field web app's device token (sync_server/tokens.py)
            return tokens.is_cached(self, value.strip())
        return True

    def digest_record(self, name: str) -> tuple[Account | None, str | None]:
        doc = self._record(name)
        return self._account(doc), (str(doc["digest_ha1"]) if doc and doc.get("digest_ha1") else None)


# --- Digest -------------------------------------------------------------------------------------------------


def load_secret(settings: Settings) -> bytes:
    """The secret signing Digest nonces and keying the Basic cache (created on first use, mode 0600)."""
    path = Path(settings.var_dir) / "sync_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(secrets.token_hex(32).encode())
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_bytes().strip()


def make_nonce(secret: bytes, now: float | None = None, instance: str = "") -> str:
    """A nonce: issue time, the issuing process's instance id and a random part, signed. Stateless to check;
    the random part makes every challenge's nonce its own, so nonce counts of two phones never collide."""
    ts = str(int(now if now is not None else time.time()))
    body = f"{ts}:{instance}.{secrets.token_hex(6)}"
    sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:32]
    return base64.b64encode(f"{body}:{sig}".encode()).decode()


def check_nonce(secret: bytes, nonce: str, instance: str = "") -> str:
    """'ok', 'stale' (well signed but old, or issued by another server process) or 'bad'."""
    try:
        ts, inst, sig = base64.b64decode(nonce.encode(), validate=True).decode().split(":", 2)
        int(ts)
    except (ValueError, UnicodeDecodeError):
        return "bad"
    good = hmac.new(secret, f"{ts}:{inst}".encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(sig, good):
        return "bad"
    if inst.rsplit(".", 1)[0] != instance:
        return "stale"  # another process (or before a restart): its nonce counts are not known here
    return "ok" if time.time() - int(ts) < NONCE_TTL else "stale"


class NonceCounts:
    """Digest nonce counts seen by this process, so a captured header cannot be replayed (RFC 7616 §3.4).

    Each (nonce, nc) is accepted once. Nonces carry this process's random instance id and are refused as
    stale by every other process (and after a restart), so counts kept in memory are complete: a header
    captured from one process cannot be replayed to another. The price behind several load-balanced
    processes is one extra 401 round trip when a phone changes process (it retries without asking).
    """

    def __init__(self) -> None:
        self.instance = secrets.token_hex(6)
        self._seen: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def use(self, nonce: str, nc: str) -> bool:
        """Record (nonce, nc); False when it was used before (a replay)."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 20_000:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < NONCE_TTL + 60}
            first, used = self._seen.setdefault(nonce, (now, set()))
            if nc in used or len(used) > 10_000:
                return False
            used.add(nc)
            return True


def parse_auth_params(value: str) -> dict[str, str]:
    """Parse ``k=v, k2="v 2"`` (the parameters of a Digest Authorization header)."""
    out: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " ,\t":
            i += 1
        eq = value.find("=", i)
        if eq < 0:
            break
        key = value[i:eq].strip().lower()
        i = eq + 1
        if i < n and value[i] == '"':
            i += 1
            close = value.find('"', i)
            close = n if close < 0 else close
            if "\\" not in value[i:close]:  # no escapes (every phone's header): the value is one slice
                out[key] = value[i:close]
                i = close + 1
                continue
            buf = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(value[i])
                i += 1
            i += 1
            out[key] = "".join(buf)
        else:
            end = value.find(",", i)
            end = n if end < 0 else end
            out[key] = value[i:end].strip()
            i = end
    return out


def challenge_headers(realm: str, secret: bytes, stale: bool = False, instance: str = "") -> list[str]:
    """The WWW-Authenticate values: a Digest challenge (what Collect uses) and Basic."""
    digest = (
        f'Digest realm="{realm}", qop="auth", algorithm=MD5, '
        f'nonce="{make_nonce(secret, instance=instance)}", '
        f'opaque="{hashlib.md5(realm.encode()).hexdigest()}"'
    )  # noqa: S324 - opaque is not a secret
    if stale:
        digest += ", stale=true"
    return [digest, f'Basic realm="{realm}", charset="UTF-8"']


class AuthChallenge(Unauthorized):
    """401 with the challenges; the handler emits one WWW-Authenticate header per challenge."""

    def __init__(self, message: str, message_en: str, challenges: list[str]):
        super().__init__(message, message_en)
        self.challenges = challenges


def client_address(request: Request) -> str:
    """The client's address as the server sees it (uvicorn's --proxy-headers sets it behind a proxy)."""
    return request.client.host if request.client else ""


def header_name(header: str) -> str:
    """The account name an Authorization header claims ('' when none)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "digest":
        return parse_auth_params(value).get("username", "")[:200]
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode("utf-8").partition(":")[0][:200]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def authenticate(
    request: Request,
    accounts: Accounts,
    settings: Settings,
    secret: bytes,
    throttle: Throttle | None = None,
    nonces: NonceCounts | None = None,
) -> Account:
    """The account behind the request's Authorization header, or raise AuthChallenge (401).

    Past the failed-login limits (core.throttle) every attempt answers 429 with Retry-After. The outcome is
    left in ``request.state.auth_outcome`` for :func:`record_outcome` to count (off the event loop when it
    writes). A Digest header is accepted once per (nonce, nc).
    """
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    instance = nonces.instance if nonces else ""
    addr = client_address(request)
    stale = False
    failed = False
    name = header_name(header) if scheme in ("digest", "basic") else ""
    if throttle is not None and name:
        throttle.check(name, addr)
    if scheme == "digest":
        p = parse_auth_params(value)
        state = check_nonce(secret, p.get("nonce", ""), instance)
        if state == "ok" and p.get("realm") == settings.realm:
            account, ha1 = accounts.digest_record(name)
            if account and ha1 and _digest_ok(p, ha1, request.method, request.url.path):
                if nonces is None or nonces.use(p.get("nonce", ""), p.get("nc", "")):
                    request.state.auth_outcome = (True, name, addr)
                    return account
                log.info("digest nonce count reused by %s: refused as a replay", name)
                stale = True  # a fresh challenge: a real phone retries at once, a replayed header cannot
            else:
                failed = True
        else:
            stale = state == "stale"
            failed = state == "bad"
    elif scheme == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            password = ""
        account = accounts.verify_basic(name, password, secret) if name else None
        if account:
            request.state.auth_outcome = (True, name, addr)
            return account
        failed = True
    elif scheme == "bearer":  # the field web app's device token (sync_server/tokens.py): 256 random bits,
        account = tokens.verify(accounts, value.strip())  # so no failed-login throttle is needed
        if account:
            return account
        raise tokens.refused()  # no Basic/Digest challenge: a browser must not open a password dialog
    if failed and name:
        request.state.auth_outcome = (False, name, addr)
    if header and not stale:
        raise AuthChallenge(
            "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã bị khoá.",
            "Wrong user name or password, or the account is disabled.",
            challenge_headers(settings.realm, secret, instance=instance),
        )
    raise AuthChallenge(
        "Cần đăng nhập.", "Authentication required.",
        challenge_headers(settings.realm, secret, stale=stale, instance=instance),
    )


def _digest_ok(p: dict[str, str], ha1: str, method: str, path: str) -> bool:
    uri = p.get("uri", "")
    # The response must be for this resource (a proxy may have stripped a path prefix, hence endswith).
    if not unquote(urlsplit(uri).path).endswith(path):  # request.url.path is percent-decoded
        return False
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()  # noqa: S324
    if p.get("qop") == "auth" and p.get("nc") and p.get("cnonce"):
        expected = hashlib.md5(  # noqa: S324
            f"{ha1}:{p.get('nonce', '')}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}".encode()
        ).hexdigest()
    else:
        return False  # RFC 2069 Digest (no qop) has no nonce count, so a replay could not be told apart
    return hmac.compare_digest(expected, p.get("response", ""))


# --- FastAPI dependencies -----------------------------------------------------------------------------------


async def current_account(request: Request) -> Account:
    """Dependency: the authenticated account (401 with a challenge otherwise).

    Async on purpose: when the answer is in memory (cached account, cached Basic verification) it is computed
    inline; only a CouchDB read or an argon2 check goes to the thread pool. This is the submission hot path.
    """
    cached = getattr(request.state, "account", None)
    if isinstance(cached, Account):
        return cached
    ctx = request.app.state.ctx
    header = request.headers.get("authorization", "")
    name = header_name(header)
    try:
        if ctx.accounts.answer_cached(header, ctx.secret) and (
            not name or ctx.throttle.cached(name, client_address(request))
        ):
            account = authenticate(request, ctx.accounts, ctx.settings, ctx.secret, ctx.throttle, ctx.nonces)
        else:
            account = await run_in_threadpool(
                authenticate, request, ctx.accounts, ctx.settings, ctx.secret, ctx.throttle, ctx.nonces
            )
    finally:
        await record_outcome(request, ctx.throttle)
    request.state.account = account
    return account


async def record_outcome(request: Request, throttle: Throttle) -> None:
    """Count a failed password, or clear earlier failures after a right one; store writes go to the thread
    pool, so a burst of wrong passwords never blocks the event loop (a success with nothing to clear costs
    nothing)."""
    outcome = getattr(request.state, "auth_outcome", None)
    if outcome is None:
        return
    request.state.auth_outcome = None
    ok, name, addr = outcome
    if ok:
        if throttle.needs_reset(name):
            await run_in_threadpool(throttle.succeeded, name, addr)
    else:
        await run_in_threadpool(throttle.failed, name, addr, route=f"{request.method} {request.url.path}")


def require_roles(*roles: str) -> Callable[..., Awaitable[Account]]:
    """Dependency factory: the account, when its role is one of ``roles`` (403 otherwise)."""

    async def dep(account: Account = Depends(current_account)) -> Account:  # noqa: B008 - FastAPI idiom
        if account.role not in roles:
            raise Forbidden(
                f"Tài khoản {account.name} (vai trò {account.role}) không được phép làm việc này.",
                f"Account {account.name} (role {account.role}) may not do this.",
            )
        return account

    return dep

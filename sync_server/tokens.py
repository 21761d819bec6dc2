"""Device tokens: a long-lived, revocable credential for the field web app, sent as ``Authorization: Bearer``.

A collaborator signs in once online with name and password (``POST /app/api/session``); the server answers
with a random token that the phone keeps instead of the password. Only a SHA-256 of the token is stored (the
token has 256 bits of entropy, so a fast hash is enough; nothing on the server can replay it), as a document
``token:<sha256>`` in the accounts database beside the ``user:`` docs:

    {"type": "device_token", "name", "token_id" (public: 12 hex of the hash), "label", "created_at",
     "expires_at", "revoked_at": null | time}

A token is accepted while it is neither revoked nor expired *and* its account is active, so disabling the
account also stops its phones. Lookups are cached for ``TOKEN_TTL`` seconds: a revocation takes effect within
that time (like ``ACCOUNT_TTL`` for a disabled account). Revoke with ``carecheck token revoke`` or
``DELETE /app/api/session`` (the phone's own sign-out).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from core.couch import Couch, Doc
from core.errors import NotFound, Unauthorized

A = TypeVar("A", covariant=True)


class AccountStore(Protocol[A]):
    """What this module needs of ``sync_server.auth.Accounts`` (a protocol: auth imports tokens, not back)."""

    couch: Couch
    db: str

    def _fresh(self, name: str) -> bool: ...

    def digest_record(self, name: str) -> tuple[A | None, str | None]: ...


class Named(Protocol):
    @property
    def name(self) -> str: ...


Accounts = AccountStore[Any]

TOKEN_TTL = 30.0  # seconds a token lookup is trusted (a revocation takes effect within this)
TOKEN_DAYS = 365  # a phone may stay offline for a long trip; an officer revokes a lost phone's token
PREFIX = "cct_"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_cache: dict[str, tuple[float, Doc | None]] = {}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def issue(accounts: Accounts, account: Named, label: str = "") -> tuple[str, Doc]:
    """A new token for ``account``: (the token, shown once; the stored doc without it)."""
    token = PREFIX + secrets.token_urlsafe(32)
    digest = _digest(token)
    now = _now()
    doc: Doc = {
        "_id": f"token:{digest}",
        "type": "device_token",
        "name": account.name,
        "token_id": digest[:12],
        "label": label[:120],
        "created_at": now.strftime(_TIME),
        "expires_at": (now + timedelta(days=TOKEN_DAYS)).strftime(_TIME),
        "revoked_at": None,
    }
    accounts.couch.ensure_db(accounts.db)
    accounts.couch.create(accounts.db, doc)
    return token, doc


def _lookup(accounts: Accounts, digest: str) -> Doc | None:
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit and now - hit[0] < TOKEN_TTL:
        return hit[1]
    doc = accounts.couch.get(accounts.db, f"token:{digest}")
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[digest] = (now, doc)
    return doc


def is_cached(accounts: Accounts, token: str) -> bool:
    """Whether checking this token needs no I/O (so it may run on the event loop)."""
    hit = _cache.get(_digest(token))
    if not hit or time.monotonic() - hit[0] >= TOKEN_TTL:
        return False
    return hit[1] is None or accounts._fresh(str(hit[1].get("name", "")))


def verify(accounts: AccountStore[A], token: str) -> A | None:
    """The account behind a bearer token, or None (unknown, revoked, expired, or the account is disabled)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    doc = _lookup(accounts, _digest(token))
    if doc is None or doc.get("type") != "device_token" or doc.get("revoked_at"):
        return None
    if str(doc.get("expires_at") or "") <= _now().strftime(_TIME):
        return None
    account, _ = accounts.digest_record(str(doc.get("name", "")))
    return account


def refused() -> Unauthorized:
    """The refusal of a bad token: a plain 401 without a Basic/Digest challenge, so a browser never opens a
    password dialog of its own (the app shows its sign-in screen instead)."""
    return Unauthorized(
        "Phiên đăng nhập trên máy này không còn hiệu lực (đã thu hồi, hết hạn hoặc tài khoản bị khoá). "
        "Hãy đăng nhập lại.",
        "This phone's sign-in is no longer valid (revoked, expired, or the account disabled). Sign in again.",
    )


def list_tokens(accounts: Accounts, name: str | None = None) -> list[dict[str, Any]]:
    """Token records (never the token), newest first, optionally of one account."""
    accounts.couch.ensure_db(accounts.db)
    rows = accounts.couch.all_docs(accounts.db, include_docs=True, startkey="token:", endkey="token:\ufff0")
    docs = [r["doc"] for r in rows["rows"] if r.get("doc")]
    out = [
        {k: d.get(k) for k in ("token_id", "name", "label", "created_at", "expires_at", "revoked_at")}
        for d in docs
        if name is None or d.get("name") == name
    ]
    return sorted(out, key=lambda d: str(d["created_at"]), reverse=True)


def revoke(accounts: Accounts, *, token_id: str | None = None, name: str | None = None) -> int:
    """Revoke one token (by its public id) or every token of an account; returns how many were revoked."""
    rows = accounts.couch.all_docs(accounts.db, include_docs=True, startkey="token:", endkey="token:\ufff0")
    n = 0
    for r in rows["rows"]:
        doc = r.get("doc") or {}
        if doc.get("revoked_at"):
            continue
        if (token_id and doc.get("token_id") == token_id) or (
            name and not token_id and doc.get("name") == name
        ):
            doc["revoked_at"] = _now().strftime(_TIME)
            accounts.couch.save(accounts.db, doc)
            _cache.pop(str(doc["_id"]).removeprefix("token:"), None)
            n += 1
    if n == 0 and token_id:
        raise NotFound(
            f"Không có mã thiết bị {token_id} còn hiệu lực.", f"No active device token with id {token_id}."
        )
    return n


def revoke_token(accounts: Accounts, token: str) -> None:
    """Revoke the token itself (a phone signing out)."""
    doc = _lookup(accounts, _digest(token))
    if doc is not None and not doc.get("revoked_at"):
        revoke(accounts, token_id=str(doc["token_id"]))

"""Failed-login throttling per account and per client address, shared by every password check.

The sync server's Digest/Basic check and the web console's password sign-in both call :func:`attempt`
(or :meth:`Throttle.check` / :meth:`Throttle.failed` / :meth:`Throttle.succeeded` around their own check).

- **Per account**: :data:`ACCOUNT_LIMIT` failures within :data:`ACCOUNT_WINDOW` lock the account for
  :data:`ACCOUNT_LOCK` seconds (every attempt answers 429 with ``Retry-After``, the right password too, so a
  guess that happens to be right during a lockout does not get in). An operator clears it at once with
  ``carecheck user unlock NAME``.
- **Per client address**: :data:`ADDRESS_LIMIT` failures within :data:`ADDRESS_WINDOW` block that address for
  :data:`ADDRESS_BLOCK` seconds (someone trying many names from one place).

State is one small document per account (``acct:<name>``) and per address (``addr:<ip>``) in the CouchDB
database ``<accounts_db>_guard``, so every server process (and a restart) sees the same counts. Each process
caches what it read for :data:`CACHE_TTL` seconds (the hot path of a burst of submissions reads nothing);
a lock set by another process is seen within that time. Lockouts and blocks are written to the audit log.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from core import audit
from core.couch import Couch, Doc, DocExists
from core.errors import Problem
from core.settings import Settings

ACCOUNT_LIMIT, ACCOUNT_WINDOW, ACCOUNT_LOCK = 10, 900.0, 900.0
ADDRESS_LIMIT, ADDRESS_WINDOW, ADDRESS_BLOCK = 30, 300.0, 300.0
CACHE_TTL = 2.0
T = TypeVar("T")


class TooManyAttempts(Problem):
    """429: too many failed logins; ``Retry-After`` says when to try again."""

    status = 429
    title = "Too many requests"

    def __init__(self, seconds: int, *, account: bool):
        minutes = max(1, (seconds + 59) // 60)
        if account:
            vi = (
                f"Tài khoản tạm khoá sau nhiều lần nhập sai mật khẩu. Thử lại sau {minutes} phút, "
                "hoặc nhờ cán bộ mở khoá."
            )
            en = (
                f"The account is locked after too many wrong passwords. Try again in {minutes} minute(s), "
                "or ask an officer to unlock it."
            )
        else:
            vi = f"Quá nhiều lần đăng nhập sai từ máy này. Thử lại sau {minutes} phút."
            en = f"Too many failed logins from this address. Try again in {minutes} minute(s)."
        super().__init__(vi, en, headers={"Retry-After": str(max(1, seconds))}, code="too_many_attempts")
        self.retry_after = max(1, seconds)


def guard_db(settings: Settings) -> str:
    return f"{settings.accounts_db}_guard"


def _addr_key(addr: str) -> str:
    # Address docs are keyed by a hash so ids stay short and uniform (IPv6, proxies); the address itself is
    # kept in the doc for operators.
    return "addr:" + hashlib.sha256(addr.encode()).hexdigest()[:24]


class Throttle:
    """Failed-login counters in CouchDB with a short per-process cache."""

    def __init__(self, couch: Couch, settings: Settings):
        self.couch = couch
        self.settings = settings
        self.db = guard_db(settings)
        self._cache: dict[str, tuple[float, Doc | None]] = {}
        self._lock = threading.Lock()
        self._ready = False

    def ensure(self) -> None:
        """Create the counters' database once (under a lock: concurrent creates confuse pouchdb-server)."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                self.couch.ensure_db(self.db)
                self._ready = True

    def _read(self, key: str, *, fresh: bool = False) -> Doc | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and not fresh and now - hit[0] < CACHE_TTL:
            return hit[1]
        self.ensure()
        doc = self.couch.get(self.db, key)
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = (now, doc)
        return doc

    def cached(self, name: str, addr: str) -> bool:
        """Whether :meth:`check` needs no store read now (so it may run on the event loop)."""
        now = time.monotonic()
        return all(
            (h := self._cache.get(k)) is not None and now - h[0] < CACHE_TTL
            for k in (f"acct:{name}", _addr_key(addr))
        )

    def check(self, name: str, addr: str) -> None:
        """Raise TooManyAttempts while the account is locked or the address blocked."""
        now = time.time()
        acct = self._read(f"acct:{name}") if name else None
        if acct and float(acct.get("locked_until") or 0) > now:
            raise TooManyAttempts(int(float(acct["locked_until"]) - now) + 1, account=True)
        a = self._read(_addr_key(addr)) if addr else None
        if a and float(a.get("locked_until") or 0) > now:
            raise TooManyAttempts(int(float(a["locked_until"]) - now) + 1, account=False)

    def failed(self, name: str, addr: str, *, route: str | None = None) -> None:
        """Count one failure for the account and the address; lock when a limit is reached."""
        events: list[Doc] = []
        if name:
            if self._bump(f"acct:{name}", {"name": name}, ACCOUNT_LIMIT, ACCOUNT_WINDOW, ACCOUNT_LOCK):
                events.append(
                    audit.event(
                        audit.ACCOUNT_LOCKED,
                        node=self.settings.node_name,
                        actor=name,
                        route=route,
                        client=addr,
                        reason="failed_logins",
                    )
                )
        if addr:
            if self._bump(_addr_key(addr), {"addr": addr}, ADDRESS_LIMIT, ADDRESS_WINDOW, ADDRESS_BLOCK):
                events.append(
                    audit.event(
                        audit.ADDRESS_THROTTLED,
                        node=self.settings.node_name,
                        actor=name or None,
                        route=route,
                        client=addr,
                        reason="failed_logins",
                    )
                )
        audit.record(self.couch, self.settings, events)

    def _bump(self, key: str, base: Doc, limit: int, window: float, lock: float) -> bool:
        """Add a failure; True when this failure locked the key."""
        self.ensure()
        for _ in range(10):
            now = time.time()
            doc = self._read(key, fresh=True) or {"_id": key, **base}
            recent = [t for t in doc.get("failures", []) if now - float(t) < window][-(limit - 1) :]
            recent.append(now)
            doc["failures"] = recent
            locking = len(recent) >= limit and float(doc.get("locked_until") or 0) <= now
            if locking:
                doc["locked_until"] = now + lock
                doc["failures"] = []
            try:
                doc["_rev"] = self.couch.save(self.db, doc)
            except DocExists:
                continue  # another process counted meanwhile: count again on top of it
            with self._lock:
                self._cache[key] = (time.monotonic(), doc)
            return locking
        return False

    def needs_reset(self, name: str) -> bool:
        """Whether :meth:`succeeded` may have work to do (failures on record, or nothing cached to tell)."""
        hit = self._cache.get(f"acct:{name}")
        if hit is None or time.monotonic() - hit[0] >= CACHE_TTL:
            return True
        return bool(hit[1] and hit[1].get("failures"))

    def succeeded(self, name: str, addr: str) -> None:
        """A correct password: forget the account's earlier failures (only when there were any)."""
        acct = self._read(f"acct:{name}")
        if acct and acct.get("failures") and float(acct.get("locked_until") or 0) <= time.time():
            acct["failures"] = []
            try:
                acct["_rev"] = self.couch.save(self.db, acct)
                with self._lock:
                    self._cache[f"acct:{name}"] = (time.monotonic(), acct)
            except DocExists:
                pass

    def unlock(self, name: str, *, by: str | None = None) -> bool:
        """Clear an account's lockout and failures (operator command); True when it was locked."""
        self.ensure()
        key = f"acct:{name}"
        for _ in range(10):
            doc = self._read(key, fresh=True)
            if doc is None:
                return False
            was = float(doc.get("locked_until") or 0) > time.time()
            doc["locked_until"] = 0
            doc["failures"] = []
            try:
                self.couch.save(self.db, doc)
            except DocExists:
                continue
            with self._lock:
                self._cache.pop(key, None)
            audit.record(
                self.couch,
                self.settings,
                [
                    audit.event(
                        audit.ACCOUNT_UNLOCKED,
                        node=self.settings.node_name,
                        actor=by,
                        doc_id=None,
                        reason="operator",
                        detail=f"account {name}",
                    )
                ],
            )
            return was
        return False

    def locked(self) -> list[Doc]:
        """Accounts and addresses locked now: ``{"name"|"addr", "seconds_left"}``."""
        self.ensure()
        now = time.time()
        rows = self.couch.all_docs(self.db, include_docs=True)["rows"]
        out = []
        for r in rows:
            d = r.get("doc") or {}
            left = float(d.get("locked_until") or 0) - now
            if left > 0:
                out.append({k: d[k] for k in ("name", "addr") if k in d} | {"seconds_left": int(left) + 1})
        return out


def attempt(
    throttle: Throttle, name: str, addr: str, verify: Callable[[], T | None], *, route: str | None = None
) -> T | None:
    """The password check every sign-in uses: refuse while locked, verify, count the outcome.

    Returns what ``verify`` returned (the account), or None for a wrong password / unknown name (counted).
    Raises TooManyAttempts (429 + Retry-After) while the account or address is locked.
    """
    throttle.check(name, addr)
    result = verify()
    if result is None:
        throttle.failed(name, addr, route=route)
    else:
        throttle.succeeded(name, addr)
    return result


def security_lines(settings: Settings, lang: str = "") -> list[str]:
    """What ``carecheck status`` prints about refused writes and lockouts (counts over 7 days, the latest)."""
    def say(vi: str, en: str) -> str:
        return vi if lang == "vi" else en if lang == "en" else f"{vi} / {en}"

    try:
        couch = Couch.from_settings(settings, start=False)  # read-only: never starts a stopped store
        info = audit.summary(couch, settings)
        locked = Throttle(couch, settings).locked()
    except Problem as exc:
        return [say("Nhật ký an ninh: không đọc được", "Security log: unreadable") + f" ({exc.message_en})"]
    counts = info["counts"]
    lines = [
        say(f"Nhật ký an ninh ({info['days']} ngày)", f"Security log (last {info['days']} days)")
        + ": "
        + (
            ", ".join(f"{k} {v}" for k, v in counts.items())
            if counts
            else say("không có sự kiện", "no events")
        )
    ]
    last = info["latest"]
    if last:
        lines.append(
            say("Gần nhất", "Latest")
            + f": {last['at']} {last['kind']} {last.get('reason') or ''} "
            f"{last.get('actor') or ''} {last.get('doc_id') or ''}".rstrip()
        )
    for item in locked:
        who = item.get("name") or item.get("addr") or "?"
        lines.append(
            say("Đang khoá", "Locked") + f": {who} ({item['seconds_left']} s; carecheck user unlock)"
        )
    return lines

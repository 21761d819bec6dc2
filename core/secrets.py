"""The pseudonym key: the secret behind every keyed hash the child registry stores (never logged or printed).

``pseudonym_key(settings)`` returns the key bytes:

* ``CARECHECK_PSEUDONYM_KEY`` when set: 32 or more hex digits (even length) are decoded, any other string is
  used as its UTF-8 bytes. Fewer than 16 bytes is refused (a short key could be guessed, and with it every
  pseudonym).
* otherwise ``<var_dir>/secrets/pseudonym.key``: 32 random bytes, hex, created on first use (directory 0700,
  file 0600) and reused. Two processes starting at once agree: each writes a complete temporary file and
  ``os.link``s it to the final name, which fails for all but the first; the losers read the winner's key.
  A key file that exists but does not hold a key is an error, never silently replaced (a new key would unlink
  every child from its earlier visits).

The key of a process is read once per (setting, key file) and kept for the life of the process.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings

KEY_BYTES = 32
MIN_KEY_BYTES = 16
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){16,}$")
_CACHE: dict[tuple[str, str], bytes] = {}
_LOCK = threading.Lock()


def key_file(settings: Settings) -> Path:
    return settings.var_dir / "secrets" / "pseudonym.key"


def pseudonym_key(settings: Settings) -> bytes:
    """The HMAC key for pseudonyms (see the module docstring); raises ConfigError without echoing the key."""
    configured = settings.pseudonym_key.get_secret_value().strip()
    cache_key = (hashlib.sha256(configured.encode()).hexdigest(), str(key_file(settings)))
    with _LOCK:
        if cache_key in _CACHE:
            return _CACHE[cache_key]
        key = _from_setting(configured) if configured else _from_file(key_file(settings))
        _CACHE[cache_key] = key
        return key


def key_id(key: bytes) -> str:
    """A short, non-secret fingerprint of a key (to check that two processes use the same one)."""
    return hmac.new(key, b"carecheck key id", hashlib.sha256).hexdigest()[:12]


def clear_cache() -> None:
    """Forget the keys read so far (tests; a process never needs this)."""
    with _LOCK:
        _CACHE.clear()


def _from_setting(value: str) -> bytes:
    key = bytes.fromhex(value) if _HEX.match(value) else value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"CARECHECK_PSEUDONYM_KEY quá ngắn (cần ít nhất {MIN_KEY_BYTES} byte, ví dụ 64 chữ số hex)",
            f"CARECHECK_PSEUDONYM_KEY is too short (at least {MIN_KEY_BYTES} bytes, e.g. 64 hex digits: "
            "python -c 'import secrets; print(secrets.token_hex(32))')",
        )
    return key


def _read(path: Path) -> bytes:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not _HEX.match(text) or len(text) < 2 * MIN_KEY_BYTES:
        raise ConfigError(
            f"Tệp khoá {path} không chứa khoá hợp lệ; không tự tạo khoá mới (sẽ mất liên kết trẻ em "
            "giữa các lượt thăm) — khôi phục tệp từ bản sao lưu",
            f"the key file {path} does not hold a valid key; not replaced automatically (a new key would "
            "unlink every child from its earlier visits) — restore it from a backup",
        )
    return bytes.fromhex(text)


def _from_file(path: Path) -> bytes:
    if path.exists():
        return _read(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a crashed process with this pid and thread id
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(os.urandom(KEY_BYTES).hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if another process got there first: then its key wins
        except FileExistsError:
            pass
        else:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new name survives a power cut
            finally:
                os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path)

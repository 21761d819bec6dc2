"""Start local servers: the embedded pouchdb-server (CouchDB HTTP API) for the default setup and for tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.errors import ConfigError
from core.settings import ROOT, Settings

POUCHDB_BIN = ROOT / "node_modules" / ".bin" / "pouchdb-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CouchProcess:
    """A running pouchdb-server: its URL (with admin credentials), port, data dir and process."""

    url: str
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None
    user: str
    password: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def start(self) -> None:
        """(Re)start on the same port and data dir — used by tests that stop the store."""
        self.proc = _spawn(self.data_dir, self.port, self.user, self.password)
        wait_for_couch(self.base_url, self.user, self.password)


def _spawn(
    data_dir: Path, port: int, user: str, password: str, in_memory: bool = False
) -> subprocess.Popen[bytes]:
    if not POUCHDB_BIN.exists():
        raise ConfigError(
            f"pouchdb-server is not installed at {POUCHDB_BIN}. Run 'make install' (npm install) first.",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "config.json"
    if not config.exists():
        # pouchdb-server hashes the plain password in place on first start, like CouchDB's local.ini.
        config.write_text(
            json.dumps({"admins": {user: password}, "log": {"file": str(data_dir / "log.txt")}})
        )
    env = dict(os.environ)
    # Without it some requests (filtered _changes, anonymous PUT /db) crash the server (docs/design.md §3).
    env["NODE_OPTIONS"] = "--unhandled-rejections=warn"
    args = [str(POUCHDB_BIN), "--port", str(port), "--config", str(config), "-n"]
    args += ["--in-memory"] if in_memory else ["--dir", str(data_dir)]
    log = open(data_dir / "stdout.txt", "ab")  # noqa: SIM115 - handed to the child process
    return subprocess.Popen(
        args, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )


def wait_for_couch(base_url: str, user: str, password: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base_url}/_session", auth=(user, password), timeout=2)
            if r.status_code == 200 and r.json().get("userCtx", {}).get("name") == user:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise ConfigError(f"pouchdb-server at {base_url} did not answer within {timeout:.0f}s ({last}).")


def start_pouchdb(
    data_dir: Path,
    port: int | None = None,
    user: str = "admin",
    password: str = "admin",
    in_memory: bool = False,
) -> CouchProcess:
    port = port or free_port()
    proc = _spawn(data_dir, port, user, password, in_memory=in_memory)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_couch(base, user, password)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return CouchProcess(url=base, port=port, data_dir=data_dir, proc=proc, user=user, password=password)


@contextlib.contextmanager
def pouchdb_server(data_dir: Path, user: str = "admin", password: str = "admin") -> Iterator[CouchProcess]:
    """A pouchdb-server on a free loopback port for the duration of the block."""
    cp = start_pouchdb(data_dir, user=user, password=password)
    try:
        yield cp
    finally:
        cp.stop()


def running_embedded_couch(settings: Settings) -> str | None:
    """The embedded store's base URL if it is running now; never starts it."""
    state = settings.var_dir / "couch" / "server.json"
    if not state.exists():
        return None
    base = f"http://127.0.0.1:{json.loads(state.read_text())['port']}"
    try:
        wait_for_couch(base, settings.couchdb_user, settings.couchdb_password, timeout=1.5)
    except ConfigError:
        return None
    return base


def ensure_embedded_couch(settings: Settings) -> str:
    """The embedded default: one pouchdb-server under var/couch, started once and left running.

    Returns its base URL (without credentials). The port and pid are kept in var/couch/server.json.
    """
    data_dir = settings.var_dir / "couch"
    state = data_dir / "server.json"
    if running := running_embedded_couch(settings):
        return running
    port = 5984 if _port_free(5984) else free_port()
    cp = start_pouchdb(data_dir, port=port, user=settings.couchdb_user, password=settings.couchdb_password)
    state.write_text(json.dumps({"port": cp.port, "pid": cp.proc.pid if cp.proc else None}))
    return cp.base_url


def stop_embedded_couch(settings: Settings) -> bool:
    state = settings.var_dir / "couch" / "server.json"
    if not state.exists():
        return False
    info = json.loads(state.read_text())
    with contextlib.suppress(ProcessLookupError, TypeError):
        os.killpg(int(info["pid"]), signal.SIGTERM)
    state.unlink()
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

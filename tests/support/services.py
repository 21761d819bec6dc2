"""Private PostgreSQL and Redis servers for one test run: started on free ports, removed afterwards.

The run never talks to a PostgreSQL or Redis it did not start (unless ``CARECHECK_TEST_PG_ADMIN`` /
``CARECHECK_TEST_REDIS_URL`` point it at one of the developer's own). Binaries are Debian's, installed by
``scripts/system-deps.sh``: ``postgresql`` (initdb/pg_ctl under /usr/lib/postgresql/<version>/bin, the newest
version found) and ``redis-server``.

initdb refuses to run as root, so a run as root starts the cluster as the ``postgres`` system user (created by
Debian's postgresql package) through ``runuser``; its temporary directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "postgres"


class ServiceUnavailable(RuntimeError):
    """A server binary is missing or did not start; the message says what to install."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _version_key(p: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in p.parent.parent.name.split(".") if x.isdigit())


def pg_bindir() -> Path:
    """The newest PostgreSQL server bin directory (Debian layout first, then whatever pg_config names)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version_key)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise ServiceUnavailable(
        "no PostgreSQL server binaries (initdb) found: run scripts/system-deps.sh "
        "(apt-get install postgresql) or set CARECHECK_TEST_PG_ADMIN"
    )


def _as_pg_user(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as an unprivileged user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError as exc:
        raise ServiceUnavailable(
            f"running as root needs the '{PG_SYSTEM_USER}' system user (Debian's postgresql package makes it)"
        ) from exc
    return ["runuser", "-u", PG_SYSTEM_USER, "--", *cmd]


def _wait_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ServiceUnavailable(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s\n{tail}")


@dataclass
class PrivatePostgres:
    """A throw-away cluster: trust auth for ``postgres``, TCP on 127.0.0.1:<port>, socket in its own dir."""

    root: Path
    port: int
    bindir: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls) -> PrivatePostgres:
        bindir = pg_bindir()
        root = Path(tempfile.mkdtemp(prefix="carecheck-pg-"))
        if os.geteuid() == 0:
            _as_pg_user(["true"])  # raises when the system user is missing
            pw = pwd.getpwnam(PG_SYSTEM_USER)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        pg = cls(root, free_port(), bindir)
        data, log = root / "data", root / "server.log"
        r = subprocess.run(
            _as_pg_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
            capture_output=True, text=True, timeout=120,
        )
        if r.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise ServiceUnavailable(f"initdb failed: {r.stderr.strip() or r.stdout.strip()}")
        # Speed over durability: the cluster is deleted at the end of the run.
        opts = (f"-c listen_addresses=127.0.0.1 -c port={pg.port} -c unix_socket_directories={root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        r = subprocess.run(
            _as_pg_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w",
                         "-t", "60", "start"]),
            capture_output=True, text=True, timeout=90,
        )
        if r.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pg.stop()
            raise ServiceUnavailable(f"PostgreSQL did not start: {r.stderr.strip()}\n{tail}")
        _wait_port(pg.port, 30, "PostgreSQL", log)
        return pg

    def stop(self) -> None:
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_pg_user([str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True, timeout=60,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PrivateRedis:
    """A redis-server of the run's own: no persistence, 127.0.0.1:<port>, its files in a temporary dir."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> PrivateRedis:
        exe = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if exe is None:
            raise ServiceUnavailable(
                "redis-server not found: run scripts/system-deps.sh (apt-get install redis-server) "
                "or set CARECHECK_TEST_REDIS_URL"
            )
        root = Path(tempfile.mkdtemp(prefix="carecheck-redis-"))
        port = free_port()
        log = root / "redis.log"
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(root), "--logfile", str(log), "--daemonize", "no", "--databases", "16"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        rd = cls(root, port, proc)
        try:
            _wait_port(port, 20, "redis-server", log)
        except ServiceUnavailable:
            rd.stop()
            raise
        return rd

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres.start()
    try:
        yield pg
    finally:
        pg.stop()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    rd = PrivateRedis.start()
    try:
        yield rd
    finally:
        rd.stop()

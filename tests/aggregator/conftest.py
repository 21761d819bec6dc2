"""Aggregator test fixtures: settings on PostgreSQL/SQLite, a submissions db, real `carecheck worker`s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from aggregator.db import dispose_engines, get_engine, init_db
from aggregator.models import (
    Child,
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
    Quarantine,
    RawSubmission,
    RegistryConflict,
)
from core.couch import Couch
from core.services import CouchProcess
from core.settings import ROOT, Settings
from tests.conftest import make_settings

CARECHECK = str(Path(sys.executable).with_name("carecheck"))
TABLES = {
    "raw": RawSubmission,
    "household": Household,
    "obs": ChildObservation,
    "child": Child,
    "facility": FacilityCheck,
    "flag": QualityFlag,
    "quarantine": Quarantine,
    "conflict": RegistryConflict,
}


def counts(settings: Settings) -> dict[str, int]:
    with Session(get_engine(settings)) as s:
        return {k: int(s.exec(select(func.count()).select_from(m)).one()) for k, m in TABLES.items()}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess (worker, CLI) see exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    for name in (
        "var_dir",
        "couchdb_url",
        "couchdb_user",
        "couchdb_password",
        "submissions_db",
        "accounts_db",
        "database_url",
        "broker_url",
        "result_backend",
        "ingest_page_size",
        "ingest_hooks",
        "ingest_partitions",
        "refresh_pause_s",
    ):
        value = getattr(settings, name)
        if value not in ("", None):
            env[f"CARECHECK_{name.upper()}"] = str(value)
    if key := settings.pseudonym_key.get_secret_value():  # a SecretStr: str() would give '**********'
        env["CARECHECK_PSEUDONYM_KEY"] = key
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture()
def pg_settings(
    tmp_path: Path, couch_server: CouchProcess, pg_url: str, redis_url: str
) -> Iterator[Settings]:
    # The indicators' refresh hook is off: these tests are about ingestion (the embedded-default test turns it
    # on).
    s = make_settings(
        tmp_path,
        couch_server,
        database_url=pg_url,
        broker_url=redis_url,
        result_backend=redis_url,
        ingest_hooks=False,
    )
    Couch(couch_server.url, couch_server.user, couch_server.password).ensure_db(s.submissions_db)
    init_db(s)
    yield s
    dispose_engines()  # let the fixture drop the database


@pytest.fixture()
def sqlite_settings(tmp_path: Path, couch_server: CouchProcess) -> Iterator[Settings]:
    s = make_settings(tmp_path, couch_server, ingest_hooks=False)
    Couch(couch_server.url, couch_server.user, couch_server.password).ensure_db(s.submissions_db)
    init_db(s)
    yield s
    dispose_engines()


class WorkerProc:
    """A real `carecheck worker` (Celery) in its own process group, logging to a file."""

    def __init__(self, settings: Settings, log: Path, *args: str) -> None:
        self.log = log
        self.start = log.stat().st_size if log.exists() else 0
        self.fh = log.open("ab")
        self.proc = subprocess.Popen(
            [CARECHECK, *args],
            env=settings_env(settings),
            stdout=self.fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )

    def wait_ready(self, timeout: float = 60.0, marker: bytes = b"ready.") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log.read_bytes()[self.start :]:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"worker not ready: {self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (worker, pool children, embedded beat): a crash, not a shutdown."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.fh.close()


@pytest.fixture()
def spawn(tmp_path: Path) -> Iterator[Callable[..., WorkerProc]]:
    procs: list[WorkerProc] = []

    def _spawn(settings: Settings, *args: str, name: str = "worker") -> WorkerProc:
        w = WorkerProc(settings, tmp_path / f"{name}.log", *args)
        procs.append(w)
        return w

    yield _spawn
    for w in procs:
        w.stop()


def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v := pred():
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

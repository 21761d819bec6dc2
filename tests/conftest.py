"""Shared fixtures: real servers started by the test run (pouchdb-server, a private PostgreSQL cluster and a
private Redis server, see tests/support/services.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.couch import Couch
from core.services import CouchProcess, start_pouchdb
from core.settings import ROOT, Settings
from tests.support.services import PrivatePostgres, PrivateRedis, ServiceUnavailable

ARTIFACTS = ROOT / "test-artifacts"
# Your own servers instead of the run's private ones (then it flushes nothing and drops only what it created).
PG_ADMIN_OVERRIDE = os.environ.get("CARECHECK_TEST_PG_ADMIN")
REDIS_OVERRIDE = os.environ.get("CARECHECK_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def couch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CouchProcess]:
    """One pouchdb-server for the session (tests use their own database names)."""
    cp = start_pouchdb(tmp_path_factory.mktemp("couch"), user="admin", password="admin")
    yield cp
    cp.stop()


@pytest.fixture()
def fresh_couch(tmp_path: Path) -> Iterator[CouchProcess]:
    """A pouchdb-server of the test's own, for tests that stop and restart the store."""
    cp = start_pouchdb(tmp_path / "couch", user="admin", password="admin")
    yield cp
    cp.stop()


@pytest.fixture()
def couch(couch_server: CouchProcess) -> Couch:
    return Couch(couch_server.url, couch_server.user, couch_server.password)


def make_settings(tmp_path: Path, couch: CouchProcess, **over: object) -> Settings:
    """Settings for one test: its own var dir, database names unique to the test, the given store."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "couchdb_url": couch.base_url,
        "couchdb_user": couch.user,
        "couchdb_password": couch.password,
        "submissions_db": f"submissions_{tag}",
        "accounts_db": f"accounts_{tag}",
        "forms_build_dir": tmp_path / "forms",
    }
    values.update(over)
    (tmp_path / "var").mkdir(exist_ok=True)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Admin URL of the run's own PostgreSQL cluster (started on first use, removed at the end of the run)."""
    if PG_ADMIN_OVERRIDE:
        yield PG_ADMIN_OVERRIDE
        return
    try:
        pg = PrivatePostgres.start()
    except ServiceUnavailable as exc:  # a clear failure, not a skip: scripts/system-deps.sh installs it
        pytest.fail(f"cannot start a private PostgreSQL: {exc}")
    try:
        yield pg.admin_url
    finally:
        pg.stop()


@pytest.fixture()
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the test, dropped afterwards."""
    import sqlalchemy

    name = f"carecheck_test_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - a clear failure, not a skip
        pytest.fail(f"PostgreSQL at {pg_admin_url} is not usable ({exc})")
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with engine.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _worker_share() -> tuple[int, int]:
    """(this test process's index, how many there are): pytest-xdist (``make test`` runs two) or one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


@dataclass
class RedisServer:
    url: str  # without a database number
    private: bool  # started by this run: its databases are ours to flush
    # the database numbers this test process may use: 1–15 on its own server; on a shared one
    # (CARECHECK_TEST_REDIS_URL) its share of them, so two processes never pick the same empty database
    dbs: tuple[int, ...] = tuple(range(1, 16))
    turn: int = 0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The run's own redis-server (no persistence), or ``CARECHECK_TEST_REDIS_URL``."""
    if REDIS_OVERRIDE:
        k, n = _worker_share()
        yield RedisServer(REDIS_OVERRIDE.rstrip("/"), private=False, dbs=tuple(range(1 + k, 16, n)))
        return
    try:
        rd = PrivateRedis.start()
    except ServiceUnavailable as exc:
        pytest.fail(f"cannot start a private Redis: {exc}")
    try:
        yield RedisServer(rd.url, private=True)
    finally:
        rd.stop()


def pick_redis_db(server: RedisServer) -> str:
    """A Redis database of the test's own: on the private server (one per test process) the next of 1–15,
    emptied first; on someone else's server an empty one of this process's share (never flushed: the run
    does not own its data)."""
    import redis

    for _ in range(len(server.dbs)):
        db = server.dbs[server.turn % len(server.dbs)]
        server.turn += 1
        url = f"{server.url}/{db}"
        try:
            client = redis.Redis.from_url(url)
            if server.private:
                client.flushdb()
                return url
            if client.dbsize() == 0:
                return url
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"Redis at {server.url} is not usable ({exc})")
    pytest.fail(f"no empty database on {server.url} (CARECHECK_TEST_REDIS_URL); the run flushes none")


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    """A Redis database of the test's own (see ``pick_redis_db``)."""
    return pick_redis_db(redis_server)

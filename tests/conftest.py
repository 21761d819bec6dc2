"""Shared fixtures: real servers started by the test run (pouchdb-server, PostgreSQL databases, Redis)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.couch import Couch
from core.services import CouchProcess, start_pouchdb
from core.settings import ROOT, Settings

ARTIFACTS = ROOT / "test-artifacts"
PG_ADMIN_URL = os.environ.get(
    "CARECHECK_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CARECHECK_TEST_REDIS_URL", "redis://127.0.0.1:6379")


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


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the test, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"carecheck_test_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - turn into a clear failure, not a skip: CI starts PostgreSQL
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not usable ({exc}); .ci/run starts it.")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with engine.connect() as c:
        c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture()
def redis_url() -> str:
    """A Redis database number of the test's own (flushed first)."""
    import redis

    db = int(uuid.uuid4().int % 14) + 1
    url = f"{REDIS_URL}/{db}"
    try:
        redis.Redis.from_url(url).flushdb()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Redis at {REDIS_URL} is not usable ({exc}); .ci/run starts it.")
    return url

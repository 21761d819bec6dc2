"""The run's PostgreSQL and Redis are its own: never the machine's 5432/6379, and nothing else is flushed."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.conftest import PG_ADMIN_OVERRIDE, REDIS_OVERRIDE, RedisServer, pick_redis_db


@pytest.mark.skipif(bool(PG_ADMIN_OVERRIDE), reason="CARECHECK_TEST_PG_ADMIN points at your own PostgreSQL")
def test_postgresql_is_the_runs_own(pg_admin_url: str, pg_url: str) -> None:
    import sqlalchemy

    assert urlsplit(pg_admin_url).port not in (None, 5432)
    assert urlsplit(pg_url).port == urlsplit(pg_admin_url).port
    engine = sqlalchemy.create_engine(pg_url)
    with engine.connect() as c:
        # a cluster made by this run: trust auth, fsync off (speed; it is deleted afterwards)
        assert c.execute(sqlalchemy.text("SHOW fsync")).scalar() == "off"
    engine.dispose()


@pytest.mark.skipif(bool(REDIS_OVERRIDE), reason="CARECHECK_TEST_REDIS_URL points at your own Redis")
def test_redis_is_the_runs_own(redis_server: RedisServer, redis_url: str) -> None:
    import redis

    assert redis_server.private
    assert urlsplit(redis_url).port not in (None, 6379)
    info = redis.Redis.from_url(redis_url).config_get("save")
    assert info.get("save") == ""  # no persistence


def test_someone_elses_redis_is_never_flushed(redis_server: RedisServer) -> None:
    """With CARECHECK_TEST_REDIS_URL set, the fixture picks an empty database and flushes none (checked here
    against the private server posing as someone else's: keys in every database but one survive)."""
    import redis

    if not redis_server.private:
        pytest.skip("needs the run's private Redis to pose as someone else's")
    planted = {}
    for db in range(16):
        client = redis.Redis.from_url(f"{redis_server.url}/{db}")
        client.flushdb()  # ours: the private server
        if db != 9:
            client.set("someone:data", f"db{db}")
            planted[db] = client
    other = RedisServer(redis_server.url, private=False)
    url = pick_redis_db(other)
    assert url.endswith("/9")
    # two test processes on one shared server never share a database: each takes its own share of them
    halves = [RedisServer(redis_server.url, private=False, dbs=tuple(range(1 + k, 16, 2))) for k in (0, 1)]
    assert set(halves[0].dbs).isdisjoint(halves[1].dbs) and set(halves[0].dbs) | set(halves[1].dbs) == set(
        range(1, 16)
    )
    assert pick_redis_db(halves[0]).endswith("/9")  # 9 is odd: the first process's share (1, 3, …, 15)
    with pytest.raises(pytest.fail.Exception):
        pick_redis_db(halves[1])  # its share (2, 4, …, 14) has no empty database: a clear failure, no flush
    for db, client in planted.items():
        assert client.get("someone:data") == f"db{db}".encode()
        client.flushdb()


def test_no_connection_to_the_machines_default_ports() -> None:
    """Nothing in the test settings names 5432/6379 unless the developer asked for it."""
    for name in ("CARECHECK_TEST_PG_ADMIN", "CARECHECK_TEST_REDIS_URL"):
        if os.environ.get(name):
            pytest.skip(f"{name} is set")
    from core.settings import Settings

    s = Settings()
    for url in (s.database_url, s.broker_url, s.result_backend):
        assert ":5432" not in str(url) and ":6379" not in str(url)


def test_the_services_work_where_nothing_listens_on_5432_or_6379() -> None:
    """The PostgreSQL and Redis tests above, again inside a fresh network namespace (only loopback, nothing
    listening): the run needs no server of the machine's."""
    import shutil
    import subprocess
    import sys

    from core.settings import ROOT

    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip to make a network namespace")
    if PG_ADMIN_OVERRIDE or REDIS_OVERRIDE:
        pytest.skip("CARECHECK_TEST_PG_ADMIN / CARECHECK_TEST_REDIS_URL are set")
    inner = (
        "ip link set lo up && ! ss -tln | grep -qE ':(5432|6379) ' && "
        f"{sys.executable} -m pytest -q -p no:cacheprovider "
        "tests/test_private_services.py::test_postgresql_is_the_runs_own "
        "tests/test_private_services.py::test_redis_is_the_runs_own"
    )
    r = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]

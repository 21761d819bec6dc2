"""End to end with real `carecheck worker` processes (Celery, not eager): PostgreSQL + Redis, and the embedded
default (SQLite + kombu's SQLAlchemy broker, no server)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from sqlalchemy import update
from sqlmodel import Session

from aggregator.db import get_engine
from aggregator.models import Checkpoint, Household
from core.couch import Couch
from core.settings import Settings
from tests.aggregator.conftest import CARECHECK, WorkerProc, counts, settings_env, wait_for
from tests.aggregator.factory import bulk_insert, households
from tests.aggregator.test_ingest import one_household, snapshot


def _couch(s: Settings) -> Couch:
    return Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)


def _checkpoint(s: Settings) -> str:
    with Session(get_engine(s)) as sess:
        cp = sess.get(Checkpoint, f"changes:{s.submissions_db}")
        return cp.seq if cp else "0"


def test_worker_ingests_2000_households_replay_poison_latency(
    pg_settings: Settings, spawn: Callable[..., WorkerProc]
) -> None:
    s = pg_settings  # ingestion under test: the indicators' hook is off (it runs in the embedded test)
    couch = _couch(s)
    b = households(2000, seed=2026)
    poison = one_household("uuid:poison", [])
    poison["xml"] = "<household_child_check><meta><instanceID>uuid:poison"  # cut off mid-upload
    bulk_insert(couch, s.submissions_db, b.docs[:1000] + [poison] + b.docs[1000:])
    end_seq = couch.update_seq(s.submissions_db)

    w = spawn(s, "worker", "--beat", "-n", "agg1@%h")
    w.wait_ready()
    t0 = time.monotonic()
    wait_for(lambda: _checkpoint(s) == end_seq, 240, "the worker to reach the end of the feed")
    elapsed = time.monotonic() - t0
    c = counts(s)
    assert (c["raw"], c["household"], c["obs"], c["child"]) == (2000, 2000, b.children, b.children), c
    assert c["quarantine"] == 1
    print(f"\n2000 households, {b.children} children ingested by the worker in {elapsed:.1f} s")

    # Near-real-time: a new submission becomes a Household row within a few seconds.
    lat = []
    for i in range(3):
        doc = one_household(f"uuid:late-{i}", [])
        t1 = time.monotonic()
        couch.bulk_docs(s.submissions_db, [doc])

        def landed(i: int = i) -> bool:
            with Session(get_engine(s)) as sess:
                return sess.get(Household, f"uuid:late-{i}") is not None

        wait_for(landed, 15, "a new submission to be ingested", every=0.05)
        lat.append(time.monotonic() - t1)
    print(f"submission → SQL row latency: {[round(x, 2) for x in lat]} s")
    assert max(lat) < 4.0, lat

    # Operators see the state: status (workers answer the ping on Redis) and the duplicates list.
    out = subprocess.run(
        [CARECHECK, "status", "--lang", "en"], env=settings_env(s), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "agg1@" in out.stdout and "Quarantined documents" in out.stdout
    assert "Changes behind" in out.stdout
    dup = subprocess.run(
        [CARECHECK, "registry", "duplicates"], env=settings_env(s), capture_output=True, text=True, timeout=60
    )
    assert dup.returncode == 0 and "no registry duplicates" in dup.stdout, dup.stdout + dup.stderr

    # Replay the whole feed from zero while the worker runs: nothing changes.
    before = snapshot(s)
    end_seq = couch.update_seq(s.submissions_db)
    with Session(get_engine(s)) as sess:
        sess.execute(update(Checkpoint).values(seq="0"))
        sess.commit()
    wait_for(lambda: _checkpoint(s) == end_seq, 240, "the replay to reach the end of the feed")
    assert snapshot(s) == before


def test_embedded_default_sqlite_and_sqla_broker(
    sqlite_settings: Settings, spawn: Callable[..., WorkerProc]
) -> None:
    s = sqlite_settings.model_copy(update={"ingest_hooks": True})  # the whole chain, indicators hook included
    assert not s.broker_url and s.effective_broker_url.startswith("sqla+sqlite:")
    assert s.effective_database_url.startswith("sqlite:")
    b = households(60, seed=5)
    bulk_insert(_couch(s), s.submissions_db, b.docs)
    w = spawn(s, "worker", "--beat")
    w.wait_ready()
    wait_for(lambda: counts(s)["household"] == 60, 90, "the embedded worker to ingest 60 households")
    c = counts(s)
    assert (c["raw"], c["obs"]) == (60, b.children)
    assert (s.var_dir / "broker.sqlite").exists()
    # The SQLite broker cannot broadcast a ping; status still names the worker from its heartbeat.
    out = subprocess.run(
        [CARECHECK, "status", "--lang", "en"], env=settings_env(s), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "celery@" in out.stdout, out.stdout + out.stderr

"""Rule 8: the indicators never fall behind the rows silently. A real worker is SIGKILLed between a page's
commit and its indicator refresh (held there by ``refresh_pause_s``), and then at random points while a
backlog is ingested; afterwards, without any rebuild, the live cells equal a full rebuild's."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from aggregator import follower, rollup
from aggregator.db import dispose_engines, get_engine, init_db
from aggregator.models import Checkpoint, RefreshDue
from aggregator.status import gather
from core.couch import Couch
from core.services import CouchProcess
from tests.aggregator.conftest import WorkerProc, wait_for
from tests.aggregator.factory import bulk_insert, households
from tests.conftest import make_settings


def _due(engine: object) -> int:
    with Session(engine) as s:  # type: ignore[arg-type]
        return int(s.execute(select(func.count()).select_from(RefreshDue)).scalar_one())


def _seq(engine: object, name: str) -> str:
    with Session(engine) as s:  # type: ignore[arg-type]
        cp = s.get(Checkpoint, name)
        return cp.seq if cp else "0"


def _cells(engine: object) -> dict[tuple[str, ...], tuple[float, float]]:
    t = rollup.IndicatorValue.__table__  # type: ignore[attr-defined]
    with engine.connect() as c:  # type: ignore[attr-defined]
        return {tuple(r[:7]): (r[7], r[8]) for r in c.execute(select(*[t.c[k] for k in rollup.COLS]))}


def test_sigkill_between_commit_and_refresh(
    tmp_path: Path,
    couch_server: CouchProcess,
    pg_url: str,
    redis_url: str,
    spawn: Callable[..., WorkerProc],
) -> None:
    s = make_settings(
        tmp_path,
        couch_server,
        database_url=pg_url,
        broker_url=redis_url,
        result_backend=redis_url,
        ingest_hooks=True,
        ingest_page_size=40,
    )
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    couch.ensure_db(s.submissions_db)
    engine = init_db(s)
    name = follower.checkpoint_name(s)
    docs = households(600, seed=812).docs
    # a first part ingested in-process: the live table exists (its first refresh computes everything)
    bulk_insert(couch, s.submissions_db, docs[:100])
    follower.follow(s, couch=couch)
    assert _due(engine) == 0 and _cells(engine)
    bulk_insert(couch, s.submissions_db, docs[100:250])
    before = _seq(engine, name)

    # 1. a worker that stops after a page's commit, before its refresh: killed right there
    beat = spawn(s, "beat", name="beat")
    paused = spawn(
        s.model_copy(update={"refresh_pause_s": 120.0}), "worker", "-n", "paused@%h", name="paused"
    )
    wait_for(lambda: _seq(engine, name) != before and _due(engine) > 0, 120, "a page committed, refresh due")
    paused.kill()
    due = _due(engine)
    assert due > 0, "the killed worker's refresh must stay recorded as due"
    assert gather(s, ping=False)["indicator_refreshes_due"] == due  # carecheck status shows it

    # 2. more of the backlog while workers are killed at random points (no pause)
    bulk_insert(couch, s.submissions_db, docs[250:])
    end_seq = couch.update_seq(s.submissions_db)
    rng = random.Random(8)
    for _ in range(4):
        w = spawn(s, "worker", "-n", "crash@%h", name="worker")
        w.wait_ready()
        time.sleep(rng.uniform(0.5, 2.5))
        w.kill()
    w = spawn(s, "worker", "-n", "last@%h", name="worker")
    wait_for(
        lambda: _seq(engine, name) == end_seq and _due(engine) == 0,
        240,
        "the feed ingested and every refresh done",
        every=0.5,
    )
    w.stop()
    beat.stop()
    live = _cells(engine)
    rollup.rebuild(get_engine(s))
    rebuilt = _cells(engine)
    assert live == rebuilt, {
        k: (live.get(k), rebuilt.get(k))
        for k in set(live) ^ set(rebuilt) or [k for k in live if live[k] != rebuilt[k]][:10]
    }
    dispose_engines()

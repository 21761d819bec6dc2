"""Two real workers on four partitions ingest 20,000 submissions while either is SIGKILLed every 1–3 s: each
record lands once, every partition's checkpoint reaches the end of the feed, and both workers did work."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlmodel import Session

from aggregator import feed, follower
from aggregator.db import get_engine
from aggregator.models import Checkpoint
from core.couch import Couch
from core.settings import Settings
from tests.aggregator.conftest import WorkerProc, counts, wait_for
from tests.aggregator.factory import bulk_insert, households

pytestmark = pytest.mark.slow
N = 20_000
MAX_KILLS = 10


def _behind(s: Settings, end: str) -> int:
    """Partitions whose checkpoint is not yet at the end of the feed."""
    with Session(get_engine(s)) as sess:
        seqs = [sess.get(Checkpoint, follower.checkpoint_name(s, p)) for p in feed.parts(s)]
    return sum(cp is None or cp.seq != end for cp in seqs)


def test_two_workers_on_partitions_sigkilled_land_each_record_once(
    pg_settings: Settings, spawn: Callable[..., WorkerProc]
) -> None:
    s = pg_settings.model_copy(update={"ingest_partitions": 4})
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    b = households(N, seed=2016)
    bulk_insert(couch, s.submissions_db, b.docs)
    per_doc = {d["_id"]: d["xml"].count("<child>") for d in b.docs}
    end = couch.update_seq(s.submissions_db)

    spawn(s, "beat", name="beat")
    workers = {n: spawn(s, "worker", "-n", f"{n}@%h", name=n) for n in ("a", "b")}
    for w in workers.values():
        w.wait_ready()
    rng = random.Random(16)
    kills = mid_feed = 0
    while kills < MAX_KILLS and _behind(s, end):
        time.sleep(rng.uniform(1.0, 3.0))
        name = rng.choice(sorted(workers))
        workers[name].kill()
        kills += 1
        mid_feed += _behind(s, end) > 0
        workers[name] = spawn(s, "worker", "-n", f"{name}@%h", name=name)  # appends to the same log
    wait_for(lambda: _behind(s, end) == 0, 300, "every partition at the end of the feed", every=0.5)
    assert mid_feed >= 3, "no worker was killed while ingesting: the test proves nothing"

    c = counts(s)
    assert (c["raw"], c["household"], c["quarantine"]) == (N, N, 0), c
    assert c["obs"] == c["child"] == sum(per_doc.values()), c
    with Session(get_engine(s)) as sess:
        per_sub = dict(
            sess.execute(
                text("SELECT submission_id, count(*) FROM childobservation GROUP BY submission_id")  # type: ignore[call-overload]
            ).all()
        )
    assert per_sub == {k: v for k, v in per_doc.items() if v}
    logs = {name: w.log.read_bytes() for name, w in workers.items()}
    for name, log in logs.items():  # both took part: each ran follow runs on the partitions it could lease
        assert b"'caught_up'" in log, f"worker {name} never ran the follower"
    # pages were written by the workers, whichever of them held a partition when it was not being killed
    assert any(re.search(rb"'pages': [1-9]", log) for log in logs.values()), "no worker ingested a page"

"""Crash test: a real worker is SIGKILLed every 1–3 s while ingesting 10,000 submissions; each lands once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlmodel import Session

from aggregator.db import get_engine
from aggregator.models import Checkpoint
from core.couch import Couch
from core.settings import Settings
from tests.aggregator.conftest import WorkerProc, counts, wait_for
from tests.aggregator.factory import bulk_insert, households

N = 10_000
MAX_KILLS = 12


def _checkpoint(s: Settings) -> str:
    with Session(get_engine(s)) as sess:
        cp = sess.get(Checkpoint, f"changes:{s.submissions_db}")
        return cp.seq if cp else "0"


def test_sigkill_while_ingesting_10000(pg_settings: Settings, spawn: Callable[..., WorkerProc]) -> None:
    s = pg_settings
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    b = households(N, seed=1028)
    bulk_insert(couch, s.submissions_db, b.docs)
    expected_children = {d["_id"]: d["xml"].count("<child>") for d in b.docs}
    end_seq = couch.update_seq(s.submissions_db)

    beat = spawn(s, "beat", name="beat")  # the scheduler survives; the worker is the one that crashes
    rng = random.Random(7)
    kills, mid_feed, t0 = 0, 0, time.monotonic()
    progress = []
    while kills < MAX_KILLS and _checkpoint(s) != end_seq:
        w = spawn(s, "worker", "-n", "crash@%h", name="worker")
        w.wait_ready()
        time.sleep(rng.uniform(1.0, 3.0))
        w.kill()
        kills += 1
        seq = _checkpoint(s)
        progress.append(seq)
        mid_feed += seq != end_seq
    # A last worker, left alone, finishes the feed.
    w = spawn(s, "worker", "-n", "crash@%h", name="worker")
    wait_for(lambda: _checkpoint(s) == end_seq, 240, "the feed to be ingested after the crashes", every=0.5)
    elapsed = time.monotonic() - t0
    beat.stop()
    print(
        f"\n{kills} SIGKILLs ({mid_feed} mid-feed), checkpoints after each kill: {progress}; "
        f"{N} submissions in {elapsed:.1f} s"
    )
    assert mid_feed >= 3, "the worker was never killed while ingesting: the test proves nothing"

    c = counts(s)
    assert (c["raw"], c["household"], c["quarantine"]) == (N, N, 0), c
    assert c["obs"] == sum(expected_children.values()) == c["child"], c
    with Session(get_engine(s)) as sess:
        per_sub = dict(
            sess.execute(
                text(  # type: ignore[call-overload]
                    "SELECT submission_id, count(*) FROM childobservation GROUP BY submission_id"
                )
            ).all()
        )
        dup_children = sess.execute(
            text(
                "SELECT count(*) FROM (SELECT child_id, count(*) FROM childobservation GROUP BY child_id "
                "HAVING count(*) > 1) d"
            )
        ).scalar_one()
    assert per_sub == {k: v for k, v in expected_children.items() if v}
    assert dup_children == 0  # each synthetic child appears once: no double-counted observation
    assert _checkpoint(s) == end_seq

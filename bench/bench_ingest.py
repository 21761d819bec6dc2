"""Ingestion throughput (rows/s) and the worker's peak RSS at two backlog sizes, against same-run baselines.

Same run, same feed: N household submissions are written to a fresh pouchdb-server with ``bulk_docs`` (in
batches; ingestion is what is measured), then one real ``carecheck worker --pool=solo`` (Celery on Redis, with
``carecheck beat``) drains the feed into a fresh PostgreSQL database. Figures:

* ``rows_per_s_<n>``: SQL rows written (raw + households + child observations) per second of wall time from
  worker start to checkpoint at the end of the feed (worker start-up included).
* ``steady_rows_per_s_<n>``: the same after start-up (from the first committed page to the end);
  ``steady_ratio_vs_changes_read`` = the large backlog's steady rate / the read baseline (a replay is a large
  backlog on running workers).
* ``peak_rss_mb_<n>``: the worker process's VmHWM (/proc) at the end. ``rss_ratio`` = large / small backlog:
  ~1.0 means memory stays flat (pages are streamed; the feed is never loaded into memory).
* Baselines, measured in the same run on the small backlog: ``changes_read_rows_per_s`` — reading the same
  ``_changes`` pages (include_docs, same page size) with nothing done to them, expressed in the same SQL rows;
  ``bulk_insert_rows_per_s`` — a plain executemany INSERT of the very rows ingestion produced into empty
  copies
  of the tables. ``ratio_vs_changes_read`` / ``ratio_vs_bulk_insert`` = ingestion / baseline.

The indicators' per-page refresh hook is off (``ingest_hooks=false``): ingestion is what is measured.
Sizes: 10 k and 100 k (quick: 2 k and 10 k).

Servers: the run's own pouchdb-server, PostgreSQL cluster and redis-server (tests/support/services.py: started
on free ports, removed at the end; the cluster runs with fsync off, as the tests' does), never the machine's.
``CARECHECK_BENCH_PG_ADMIN`` / ``CARECHECK_BENCH_REDIS_URL`` (a database number of its own, which the run
flushes) point it at servers of your own instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import MetaData, Table, func, select, text
from sqlmodel import col

from aggregator.db import dispose_engines, get_engine, init_db
from aggregator.feed import parts
from aggregator.follower import checkpoint_name
from aggregator.models import Checkpoint, ChildObservation, Household, RawSubmission
from core.couch import Couch
from core.services import start_pouchdb
from core.settings import ROOT, Settings
from tests.aggregator.factory import households
from tests.support.services import private_postgres, private_redis

# set by ``run`` to the run's own servers (or the CARECHECK_BENCH_* ones)
PG_ADMIN = ""
REDIS = ""
CARECHECK = str(Path(sys.executable).with_name("carecheck"))
BATCH = 2000
_LOADED: set[str] = set()  # feeds loaded into this run's pouchdb-server
_CREATED: list[str] = []  # PostgreSQL databases this run made (dropped at its end)


def _env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    for k in (
        "var_dir",
        "couchdb_url",
        "couchdb_user",
        "couchdb_password",
        "submissions_db",
        "database_url",
        "broker_url",
        "result_backend",
        "ingest_hooks",
        "ingest_partitions",
        "ingest_page_size",
    ):
        env[f"CARECHECK_{k.upper()}"] = str(getattr(s, k))
    env["PYTHONPATH"] = str(ROOT)
    return env


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rows(s: Settings) -> int:
    with get_engine(s).connect() as c:
        return sum(
            int(c.execute(select(func.count()).select_from(m.__table__)).scalar_one())  # type: ignore
            for m in (RawSubmission, Household, ChildObservation)
        )


def _one(
    n: int, root: Path, couch_url: str, couch: Couch, *, workers: int = 1, partitions: int = 1
) -> dict[str, Any]:
    """Ingest a backlog of ``n`` into a fresh PostgreSQL database with ``workers`` real workers (the feed
    ``bench_<n>`` is loaded once and reused by later runs of the same size)."""
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    db = f"carecheck_bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{db}"'))
    _CREATED.append(db)
    var = root / f"var{n}_{workers}x{partitions}"
    var.mkdir()
    s = Settings(
        var_dir=var,
        couchdb_url=couch_url,
        couchdb_user="admin",
        couchdb_password="admin",
        submissions_db=f"bench_{n}",
        database_url=PG_ADMIN.rsplit("/", 1)[0] + f"/{db}",
        broker_url=REDIS,
        result_backend=REDIS,
        ingest_hooks=False,
        ingest_partitions=partitions,
    )
    out: dict[str, Any] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if s.submissions_db not in _LOADED:
            _LOADED.add(s.submissions_db)
            couch.ensure_db(s.submissions_db)
            t = time.monotonic()
            for start in range(0, n, BATCH):
                couch.bulk_docs(
                    s.submissions_db, households(min(BATCH, n - start), seed=99, start=start).docs
                )
            out["load_s"] = round(time.monotonic() - t, 1)
        end_seq = couch.update_seq(s.submissions_db)
        init_db(s)
        log = (var / "worker.log").open("wb")
        t0 = time.monotonic()
        procs.append(
            subprocess.Popen(
                [CARECHECK, "beat"], env=_env(s), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        pool = [
            subprocess.Popen(
                [CARECHECK, "worker", "--pool=solo", "-n", f"w{i}@%h"],
                env=_env(s),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for i in range(workers)
        ]
        procs += pool
        engine = get_engine(s)
        names = [checkpoint_name(s, p) for p in parts(s)]
        first: tuple[float, int] | None = None  # (time, rows) when the first page was committed
        while True:
            with engine.connect() as c:
                seqs = (
                    c.execute(select(Checkpoint.seq).where(col(Checkpoint.name).in_(names))).scalars().all()
                )
            if len(seqs) == len(names) and set(seqs) == {end_seq}:
                break
            if first is None and any(q != "0" for q in seqs):
                first = (time.monotonic(), _rows(s))
            if any(w.poll() is not None for w in pool):
                raise RuntimeError(f"worker died: {(var / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        out["peak_rss_mb"] = round(max(_peak_rss_mb(w.pid) for w in pool), 1)
        out["rows"] = _rows(s)
        with engine.connect() as c:  # on-disk bytes (tables + indexes) per household visit, for sizing
            size = c.execute(
                text(
                    "SELECT sum(pg_total_relation_size(quote_ident(t))) FROM unnest(ARRAY['rawsubmission', "
                    "'household', 'childobservation', 'child', 'qualityflag']) t"
                )
            ).scalar()
            visits = c.execute(select(func.count()).select_from(RawSubmission.__table__)).scalar()  # type: ignore
        out["pg_bytes_per_visit"] = round(int(size or 0) / max(1, int(visits or 0)))
        out["seconds"] = round(elapsed, 1)
        out["rows_per_s"] = round(out["rows"] / elapsed, 1)
        if first is not None:  # after start-up: what a running worker sustains on a backlog
            t1, r1 = first
            out["steady_rows_per_s"] = round((out["rows"] - r1) / (t0 + elapsed - t1), 1)
        else:
            out["steady_rows_per_s"] = out["rows_per_s"]
        out["settings"] = s
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return out


def _baseline_changes(couch: Couch, s: Settings, rows: int) -> float:
    """Read the same feed page by page (include_docs, same page size), doing nothing with it."""
    t = time.monotonic()
    since: str | None = None
    while True:
        page, since = couch.changes(
            s.submissions_db, since=since, limit=s.ingest_page_size, include_docs=True
        )
        if len(page) < s.ingest_page_size:
            break
    return rows / (time.monotonic() - t)


def _baseline_bulk_insert(s: Settings) -> float:
    """Plain executemany INSERT of the rows ingestion produced, into empty copies of the same tables."""
    engine = get_engine(s)
    md = MetaData()
    total, seconds = 0, 0.0
    with engine.begin() as c:
        for model in (RawSubmission, Household, ChildObservation):
            src = model.__table__  # type: ignore[attr-defined]
            rows = [dict(r._mapping) for r in c.execute(select(src))]
            c.execute(text(f'CREATE TABLE "copy_{src.name}" (LIKE "{src.name}" INCLUDING ALL)'))
            dst = Table(f"copy_{src.name}", md, *[col.copy() for col in src.columns])
            t = time.monotonic()
            for i in range(0, len(rows), 2000):
                c.execute(dst.insert(), rows[i : i + 2000])
            seconds += time.monotonic() - t
            total += len(rows)
    return total / seconds


def _drop_created() -> None:
    admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        while _CREATED:
            c.execute(text(f'DROP DATABASE IF EXISTS "{_CREATED.pop()}" WITH (FORCE)'))
    admin.dispose()


def run(quick: bool = False) -> dict[str, Any]:
    global PG_ADMIN, REDIS
    small, large = (2_000, 10_000) if quick else (10_000, 100_000)
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        pg, rd = os.environ.get("CARECHECK_BENCH_PG_ADMIN"), os.environ.get("CARECHECK_BENCH_REDIS_URL")
        PG_ADMIN = pg or stack.enter_context(private_postgres()).admin_url
        REDIS = rd or stack.enter_context(private_redis()).url + "/15"
        out.update(_run(small, large))
    return out


def _run(small: int, large: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        root = Path(tmp)
        cp = start_pouchdb(root / "couch", user="admin", password="admin")
        couch = Couch(cp.url, "admin", "admin", timeout=300)
        try:
            a = _one(small, root, cp.base_url, couch)
            s_small: Settings = a.pop("settings")
            # baselines right after the run they are compared with (the load on a shared machine drifts)
            read_small = _baseline_changes(couch, s_small, a["rows"])
            insert_rate = _baseline_bulk_insert(s_small)
            b = _one(large, root, cp.base_url, couch)
            s_large: Settings = b.pop("settings")
            read_large = _baseline_changes(couch, s_large, b["rows"])
            # scale-out: two workers on four partitions of the same feed (BENCH_INGEST_SCALE_OUT=0: skipped)
            two: dict[str, Any] = {}
            read_large_2 = 0.0
            if os.environ.get("BENCH_INGEST_SCALE_OUT", "1") != "0":
                two = _one(large, root, cp.base_url, couch, workers=2, partitions=4)
                two.pop("settings")
                read_large_2 = _baseline_changes(couch, s_large, b["rows"])
        finally:
            dispose_engines()
            cp.stop()
            _drop_created()
    out.update(
        {
            f"rows_per_s_{small}": a["rows_per_s"],
            f"rows_per_s_{large}": b["rows_per_s"],
            f"steady_rows_per_s_{small}": a["steady_rows_per_s"],
            f"steady_rows_per_s_{large}": b["steady_rows_per_s"],
            f"seconds_{small}": a["seconds"],
            f"seconds_{large}": b["seconds"],
            f"rows_{small}": a["rows"],
            f"rows_{large}": b["rows"],
            f"peak_rss_mb_{small}": a["peak_rss_mb"],
            f"peak_rss_mb_{large}": b["peak_rss_mb"],
            "rss_ratio": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
            f"changes_read_rows_per_s_{small}": round(read_small, 1),
            f"changes_read_rows_per_s_{large}": round(read_large, 1),
            "bulk_insert_rows_per_s": round(insert_rate, 1),
            # as before: the small backlog, worker start-up included
            "ratio_vs_changes_read": round(a["rows_per_s"] / read_small, 3),
            "ratio_vs_bulk_insert": round(a["rows_per_s"] / insert_rate, 3),
            # the goal's figure: a large backlog (a replay) on a running worker, against reading it
            "steady_ratio_vs_changes_read": round(b["steady_rows_per_s"] / read_large, 3),
            f"couch_load_s_{large}": b["load_s"],
            f"pg_bytes_per_visit_{large}": b["pg_bytes_per_visit"],
        }
    )
    if two:
        out[f"steady_rows_per_s_{large}_2_workers_4_partitions"] = two["steady_rows_per_s"]
        out[f"seconds_{large}_2_workers"] = two["seconds"]
        out["steady_ratio_2_workers_vs_changes_read"] = round(two["steady_rows_per_s"] / read_large_2, 3)
        out["scale_out_2_workers_vs_1"] = round(two["steady_rows_per_s"] / b["steady_rows_per_s"], 3)
    return out

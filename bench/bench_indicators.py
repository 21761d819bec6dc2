"""Indicator rollup: full rebuild, PostgreSQL vs DuckDB on the same rows; submission → indicator latency.

1. Synthetic rows (1 M child observations, quick: 100 k; plus households and health-station checks) are
generated
   once, in DuckDB, with a fixed seed, exported to CSV and COPYed into a fresh PostgreSQL database: both
   engines
   hold exactly the same rows.
2. PostgreSQL: ``aggregator.rollup.rebuild`` (what `carecheck indicators rebuild` runs: side table, COPY,
swap).
3. DuckDB (baseline, same run): the same definitions compiled to the same SQL (the statements
   ``rollup.compute_into`` runs on PostgreSQL: each group's one-pass statement wrapped in the same
   ``CellQuery.insert_cells`` unpivot, INSERT … SELECT into the cell table), then rolled up to every level by
   the same ``rollup.derive`` statements. PostgreSQL spreads a rebuild over ``rollup.REBUILD_CONNECTIONS``
   connections (``rollup.rebuild_plan``: a large stock group in parts by unit hash, one per connection, and
   the other large groups on a connection of their own, all at once); DuckDB follows the same plan with the
   same statements (the parts and groups one after the other, each on all of DuckDB's threads; DuckDB's
   ``hash`` in place of ``hashtext``), and the same sum and unpivot statements over their results. Every
   cell must match PostgreSQL exactly, else the bench fails.
   Ratio = DuckDB seconds / PostgreSQL seconds (goal ≥ 0.5: PostgreSQL at least half DuckDB's speed).
4. Latency (not quick): a real sync server, pouchdb-server and `carecheck worker` (PostgreSQL + Redis);
household
   submissions POSTed at a steady rate through OpenRosa; for each, the time from the 201 to its commune's
   indicator cell changing in SQL (the follower's after_page hook refreshes it). Goal p95 ≤ 5 s.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SEED = 0.42
PG_DIALECT = postgresql.dialect(paramstyle="named")  # named: '%' in LIKE literals stays single for DuckDB


@contextmanager
def pg_database(admin_url: str = PG_ADMIN) -> Iterator[str]:
    name = f"carecheck_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from aggregator.db import dispose_engines

        dispose_engines()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sql(stmt: Any) -> str:
    return str(stmt.compile(dialect=PG_DIALECT, compile_kwargs={"literal_binds": True}))


# ---------------------------------------------------------------- synthetic data (generated in DuckDB)


def _communes_values() -> str:
    from core.orgunits import communes

    rows = [
        f"('{c.code}', '{c.district_code}', '{c.code_2025}', '{c.area_type}', {i})"
        for i, c in enumerate(communes().values())
    ]
    return ", ".join(rows)


def generate(con: Any, n_obs: int) -> dict[str, int]:
    """Create and fill childobservation, household and facilitycheck in DuckDB (same schema as the models)."""
    from aggregator.models import ChildObservation, FacilityCheck, Household

    for model in (ChildObservation, Household, FacilityCheck):
        con.execute(str(CreateTable(model.__table__).compile(dialect=PG_DIALECT)))  # type: ignore[attr-defined]
    con.execute(f"SELECT setseed({SEED})")
    con.execute(
        f"CREATE TEMP TABLE cm AS SELECT * FROM (VALUES {_communes_values()}) "
        "v(code, district, code_2025, area_type, idx)"
    )
    n_children = max(1, int(n_obs / 1.6))
    ncm = con.execute("SELECT count(*) FROM cm").fetchone()[0]
    # one row per observation; a child keeps its age, sex, ethnicity and (mostly) its commune across visits
    con.execute(f"""
    CREATE TEMP TABLE base AS
    SELECT i, i % {n_children} AS k,
           DATE '2025-09-01' + CAST(floor(random() * 485) AS INTEGER) AS vd,
           CASE WHEN random() < 0.03 THEN CAST(floor(random() * {ncm}) AS INTEGER)
                ELSE CAST((hash(i % {n_children}) % {ncm}) AS INTEGER) END AS cidx,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6
    FROM range({n_obs}) t(i)""")
    con.execute("""
    INSERT INTO childobservation
    SELECT 'sub' || CAST(i AS VARCHAR) || '/0', 'sub' || CAST(i AS VARCHAR), 'c' || CAST(k AS VARCHAR), vd,
           year(vd), quarter(vd), month(vd), NULL, cm.district, cm.code, cm.code_2025, cm.area_type,
           CASE WHEN hash(k * 3) % 100 < 51 THEN 'male' ELSE 'female' END,
           CASE WHEN hash(k * 5) % 1000 < 850 THEN 'kinh' WHEN hash(k * 5) % 1000 < 975 THEN 'khmer'
                WHEN hash(k * 5) % 1000 < 995 THEN 'hoa' ELSE 'other' END,
           age, age * 12 + CAST(hash(k * 11) % 12 AS INTEGER),
           CASE WHEN r1 < 0.9 THEN 'yes' WHEN r1 < 0.97 THEN 'no' ELSE 'dont_know' END,
           r2 < 0.7,
           CASE WHEN age >= 3 THEN r3 < 0.9 END,
           CASE WHEN age >= 3 AND r3 < 0.9 THEN
                CASE WHEN age < 6 THEN 'preschool' WHEN age < 11 THEN 'primary'
                     WHEN age < 15 THEN (CASE WHEN r4 < 0.93 THEN 'lower_secondary' ELSE 'primary' END)
                     ELSE 'upper_secondary' END END,
           CASE WHEN age * 12 < 24 THEN r4 < 0.8 END,
           CASE WHEN age * 12 < 24 AND r4 < 0.8 THEN
                (CASE WHEN r5 < 0.75 THEN 'bcg hepb0 penta1 penta2 penta3 opv1 opv2 opv3 ipv measles1'
                      ELSE 'bcg hepb0 penta1 penta2 opv1 opv2' END) END,
           CASE WHEN age < 5 THEN round(3 + age * 2.5 + r5 * 3, 1) END,
           CASE WHEN age < 5 THEN round(50 + age * 10 + r6 * 8, 1) END,
           CASE WHEN age < 5 THEN round((r1 + r2 + r3 - 1.5) * 2.2 - 0.6, 2) END,
           CASE WHEN age < 5 THEN round((r2 + r4 + r5 - 1.5) * 2.2 - 0.8, 2) END,
           CASE WHEN age < 5 AND r6 < 0.9 THEN round((r3 + r5 + r6 - 1.5) * 2.2 - 0.4, 2) END,
           CASE WHEN age >= 6 THEN r5 < 0.55 END,
           CASE WHEN age >= 2 THEN r6 < 0.04 END,
           CASE WHEN r2 < 0.97 THEN 'none' WHEN r2 < 0.985 THEN 'father_died' WHEN r2 < 0.995 THEN
           'mother_died'
                ELSE 'both_died' END,
           CASE WHEN r3 < 0.85 THEN 'both_parents' WHEN r3 < 0.95 THEN 'one_parent' WHEN r3 < 0.99 THEN
           'relatives'
                WHEN r3 < 0.995 THEN 'institution' ELSE 'foster_family' END,
           CASE WHEN age >= 5 THEN (CASE WHEN r4 < 0.9 THEN 0 ELSE CAST(floor(r5 * 50) AS INTEGER) END) END,
           CASE WHEN age >= 5 THEN CAST(floor(r6 * 28) AS INTEGER) END,
           CASE WHEN age < 16 THEN (CASE WHEN r1 < 0.008 THEN 'g04' ELSE 'none' END) END,
           CASE WHEN age < 16 THEN r1 < 0.008 END,
           CASE WHEN age < 16 THEN r2 < 0.06 END,
           CASE WHEN age < 16 AND r1 < 0.008 THEN r3 < 0.7 END,
           r4 < 0.003,
           CASE WHEN r4 < 0.003 THEN r5 < 0.8 END,
           CASE WHEN r4 < 0.003 AND r5 < 0.8 THEN r6 < 0.7 END,
           r5 < 0.6,
           -- injury_12m, injury_type, injury_drowning: ~5 % injured, ~0.3 % drowning (by hash)
           hash(i * 13) % 1000 < 50,
           CASE WHEN hash(i * 13) % 1000 < 3 THEN 'drowning' WHEN hash(i * 13) % 1000 < 20 THEN 'fall'
                WHEN hash(i * 13) % 1000 < 35 THEN 'traffic' WHEN hash(i * 13) % 1000 < 50 THEN 'other' END,
           hash(i * 13) % 1000 < 3,
           NULL, NULL  -- end_time, received_at (rule 2's tie-breakers)
    FROM (SELECT *, CAST(hash(k * 7) % 18 AS INTEGER) AS age FROM base) b JOIN cm ON cm.idx = b.cidx""")
    n_hh = max(1, n_obs // 3)
    con.execute(f"""
    INSERT INTO household
    SELECT 'hh' || CAST(i AS VARCHAR), vd, year(vd), quarter(vd), month(vd), NULL, cm.district, cm.code,
           cm.code_2025, cm.area_type, 'neither', CASE WHEN r1 < 0.97 THEN r2 < 0.35 END, CASE WHEN r1 < 0.97
           THEN r3 < 0.6 END, CAST(floor(r4 * 1.3) AS INTEGER), CASE WHEN r5 < 0.02 THEN 1 ELSE 0 END, r1 <
           0.97,
           3, NULL, CASE WHEN r1 < 0.97 THEN (CASE WHEN hash(i * 17) % 10000 < 1 THEN 1 ELSE 0 END) END,
           NULL, NULL
    FROM base b JOIN cm ON cm.idx = b.cidx WHERE i < {n_hh}""")
    con.execute("""
    INSERT INTO facilitycheck
    SELECT 'fc' || cm.code || '-' || CAST(q AS VARCHAR), vd, year(vd), quarter(vd), month(vd), cm.district,
           cm.code, cm.code_2025, cm.area_type, random() < 0.9, random() < 0.6, random() < 0.5, NULL, NULL
    FROM cm, (SELECT q, DATE '2025-09-15' + CAST(q AS INTEGER) * 91 AS vd FROM range(5) t(q)) p""")
    return {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("childobservation", "household", "facilitycheck")
    }


def copy_to_postgres(con: Any, engine: Engine, tmp: Path) -> float:
    """Export each DuckDB table to CSV and COPY it into PostgreSQL (the same rows, byte for byte)."""
    t0 = time.perf_counter()
    for table in ("childobservation", "household", "facilitycheck"):
        path = tmp / f"{table}.csv"
        con.execute(f"COPY {table} TO '{path}' (HEADER false)")
        with engine.begin() as conn:
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cur, path.open("rb") as f:  # type: ignore[union-attr]
                with cur.copy(f'COPY "{table}" FROM STDIN WITH (FORMAT csv)') as cp:
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
    return time.perf_counter() - t0


# ---------------------------------------------------------------- the DuckDB baseline


class DuckConn:
    """Just enough of a SQLAlchemy Connection for rollup.derive: statements compiled to text, run in
    DuckDB."""

    class dialect:  # noqa: N801 - mimics Connection.dialect
        name = "duckdb"

    def __init__(self, con: Any):
        self.con = con

    def execute(self, stmt: Any, params: Any = None) -> Any:
        return self.con.execute(sql(stmt))


def duckdb_rebuild(con: Any) -> tuple[float, int]:
    """Every indicator cell, computed in DuckDB from the same definitions; returns (seconds, cells)."""
    from aggregator import indicators as defs
    from aggregator import rollup
    from aggregator.periods import PERIOD_TYPES
    from core.orgunits import communes

    con.execute("DROP TABLE IF EXISTS indicator_value")
    con.execute(str(CreateTable(rollup.side_table("indicator_value", "duckdb")).compile(dialect=PG_DIALECT)))
    con.execute("DROP TABLE IF EXISTS indicator_orgunit")
    con.execute(str(CreateTable(rollup.IndicatorOrgUnit.__table__).compile(dialect=PG_DIALECT)))  # type: ignore
    con.executemany(
        "INSERT INTO indicator_orgunit VALUES (?, ?, ?)",
        [(c.code, c.district_code, c.code_2025) for c in communes().values()],
    )
    table = rollup.side_table("indicator_value", "duckdb")
    t0 = time.perf_counter()
    for (source, kind), group in rollup.groups(defs.load().values()).items():
        # the statements rollup.compute_into runs: every period type at once when the sums roll up exactly,
        # unpivoted into the long cells by the same INSERT … SELECT
        whole = rollup.CellQuery(defs.SOURCES[source], kind, rollup.ALL_PERIODS, group)
        # the same plan as PostgreSQL's (whose connections run the parts and the groups set aside at once;
        # DuckDB runs them one after the other, each on all its threads): the same part statements, the
        # same sum and unpivot statements
        rows = con.execute(f"SELECT count(*) FROM {whole.source.table.name}").fetchone()[0]
        how, parts = rollup.rebuild_plan(whole, rows, rollup.REBUILD_CONNECTIONS)
        tag = f"rebuild_wide_{source}_{kind}"
        if how == "split":
            tables = [rollup.wide_table(whole, f"{tag}_{k}", "duckdb") for k in range(parts)]
            for k, t in enumerate(tables):
                part = rollup.CellQuery(whole.source, kind, whole.ptype, group, part=(k, parts))
                con.execute(f"CREATE OR REPLACE TEMP TABLE {t.name} AS {sql(part.select('duckdb'))}")
            con.execute(sql(whole.insert_cells(table, "duckdb", wide_rows=whole.merged(tables))))
            continue
        if how == "aside":
            t = rollup.wide_table(whole, tag, "duckdb")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {t.name} AS {sql(whole.select('duckdb'))}")
            con.execute(sql(whole.insert_cells(table, "duckdb", wide_rows=select(t))))
            continue
        for ptype in [rollup.ALL_PERIODS] if whole.exact_rollup else PERIOD_TYPES:
            q = rollup.CellQuery(defs.SOURCES[source], kind, ptype, group)
            con.execute(sql(q.insert_cells(table, "duckdb")))
    rollup.derive(DuckConn(con), rollup.IndicatorValue.__table__)  # type: ignore[arg-type,attr-defined]
    seconds = time.perf_counter() - t0
    return seconds, con.execute("SELECT count(*) FROM indicator_value").fetchone()[0]


def cells_of(rows: Any) -> dict[tuple[Any, ...], tuple[float, float]]:
    return {tuple(r[:7]): (float(r[7]), float(r[8])) for r in rows}


# ---------------------------------------------------------------- the run


def rebuild_figures(quick: bool, tmp: Path, latency: bool) -> dict[str, Any]:
    import duckdb

    from aggregator import rollup
    from aggregator.db import init_db
    from core.settings import Settings

    n = 100_000 if quick else 1_000_000
    con = duckdb.connect(str(tmp / "bench.duckdb"))
    t0 = time.perf_counter()
    counts = generate(con, n)
    gen_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "child_rows": counts["childobservation"],
        "household_rows": counts["household"],
        "facility_rows": counts["facilitycheck"],
        "generate_s": round(gen_s, 2),
    }
    with pg_database() as url:
        engine = init_db(Settings(var_dir=tmp, database_url=url))
        out["load_pg_s"] = round(copy_to_postgres(con, engine, tmp), 2)
        pg_times, duck_times = [], []
        for _ in range(2):  # best of two for each engine (the machine is shared)
            stats = rollup.rebuild(engine)
            pg_times.append(stats["seconds"])
            d_s, d_cells = duckdb_rebuild(con)
            duck_times.append(d_s)
        t = rollup.IndicatorValue.__table__  # type: ignore[attr-defined]
        with engine.connect() as c:
            pg_cells = cells_of(c.execute(select(*[t.c[k] for k in rollup.COLS])))
        duck_cells = cells_of(con.execute(f"SELECT {', '.join(rollup.COLS)} FROM indicator_value").fetchall())
        if pg_cells != duck_cells:
            diff = [k for k in set(pg_cells) | set(duck_cells) if pg_cells.get(k) != duck_cells.get(k)]
            raise AssertionError(
                f"PostgreSQL and DuckDB disagree on {len(diff)} cells, e.g. "
                f"{[(k, pg_cells.get(k), duck_cells.get(k)) for k in diff[:3]]}"
            )
        prov = {k[6]: v for k, v in pg_cells.items() if k[:6] == ("legacy", "province", "2026", "91", "", "")}
        if latency:
            out.update(latency_figures(tmp, url))
        else:
            out["latency"] = "not measured in --quick"
        out.update(
            {
                "cells": len(pg_cells),
                "cells_match_exactly": True,
                "pg_rebuild_s": round(min(pg_times), 3),
                "pg_rebuild_runs_s": [round(x, 2) for x in pg_times],
                "duckdb_s": round(min(duck_times), 3),
                "duckdb_runs_s": [round(x, 2) for x in duck_times],
                "speed_vs_duckdb": round(min(duck_times) / min(pg_times), 3),
                "goal_speed_vs_duckdb": 0.5,
                "province_2026_cedc_rate_pct": round(100 * prov["cedc_rate"][0] / prov["cedc_rate"][1], 3),
                "province_2026_stunting_pct": round(100 * prov["stunting_u5"][0] / prov["stunting_u5"][1], 2),
            }
        )
    con.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_ind_") as d:
        tmp = Path(d)
        return rebuild_figures(quick, tmp, latency=not quick or bool(os.environ.get("BENCH_LATENCY")))


def latency_figures(tmp: Path, url: str, *, n: int = 90, rate_per_s: float = 1.0) -> dict[str, Any]:
    """Submissions through the real sync server at a steady rate; seconds from each 201 to its indicator cell.

    Each household is in a commune of its own (so a cell change is that household's doing); the watched
    cell is
    ``cedc_count``'s denominator (children observed in the commune this year), which grows by the household's
    children once the worker has ingested the page and its after_page hook has refreshed the cells.
    """
    import os
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    from cli.simulate import download_form
    from core.couch import Couch
    from core.services import free_port, start_pouchdb
    from core.settings import Settings
    from core.stores import ensure_store
    from forms.build import build_all
    from simulator.client import OpenRosaClient
    from simulator.fill import fill
    from simulator.households import generate as households
    from sync_server.auth import Accounts

    redis_url = "redis://127.0.0.1:6379/13"
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    couch_proc = start_pouchdb(tmp / "couch", user="admin", password="admin")
    procs: list[subprocess.Popen[bytes]] = []
    engine = create_engine(url)
    try:
        var = tmp / "var"
        var.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
        env.update(
            CARECHECK_VAR_DIR=str(var),
            CARECHECK_COUCHDB_URL=couch_proc.base_url,
            CARECHECK_COUCHDB_USER="admin",
            CARECHECK_COUCHDB_PASSWORD="admin",
            CARECHECK_DATABASE_URL=url,
            CARECHECK_BROKER_URL=redis_url,
            CARECHECK_RESULT_BACKEND=redis_url,
        )
        settings = Settings(
            var_dir=var,
            couchdb_url=couch_proc.base_url,
            couchdb_user="admin",
            couchdb_password="admin",
            database_url=url,
            broker_url=redis_url,
        )
        build_all(settings.forms_src_dir, settings.effective_forms_build_dir)
        couch = Couch(couch_proc.base_url, "admin", "admin")
        ensure_store(couch, settings)
        # a collaborator account sends households province-wide, as the demo's does
        Accounts(couch, settings).add("ctv_bench", "bench-pass-2026", "collaborator", "899")
        exe = str(Path(sys.executable).parent / "carecheck")
        port = free_port()
        server = f"http://127.0.0.1:{port}"
        for args, log in (
            ([exe, "serve", "--host", "127.0.0.1", "--port", str(port)], "server.log"),
            ([exe, "worker", "--beat", "--concurrency", "1"], "worker.log"),
        ):
            with (var / log).open("ab") as out:
                procs.append(
                    subprocess.Popen(
                        args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.head(f"{server}/submission", timeout=2).status_code in (204, 401):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"sync server did not start; see {var / 'server.log'}")
            time.sleep(0.3)
        template = download_form(server, "ctv_bench", "bench-pass-2026")
        chosen, seen = [], set()
        for h in households(2000, seed=7, period="2026Q4"):
            if h.commune not in seen and h.answers.get("consent") == "yes" and h.children:
                seen.add(h.commune)
                chosen.append(h)
        chosen = chosen[:n]

        def cell(commune: str, year: str) -> float:
            q = text(
                "SELECT denominator FROM indicator_value WHERE indicator = 'cedc_count' AND hierarchy = "
                "'legacy' AND level = 'commune' AND org_unit = :c AND period = :p AND dis_key = ''"
            )
            with engine.connect() as c:
                return float(c.execute(q, {"c": commune, "p": year}).scalar() or 0)

        latencies: list[float] = []
        failed: list[str] = []
        pending: dict[str, tuple[str, float, float]] = {}  # commune -> (year, baseline, accepted at)
        lock = threading.Lock()
        done = threading.Event()

        def watch() -> None:
            while not done.is_set() or pending:
                with lock:
                    items = list(pending.items())
                for commune, (year, base, t_acc) in items:
                    if cell(commune, year) > base:
                        with lock:
                            latencies.append(time.monotonic() - t_acc)
                            pending.pop(commune, None)
                    elif time.monotonic() - t_acc > 120:
                        with lock:
                            failed.append(commune)
                            pending.pop(commune, None)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        t_start = time.monotonic()
        with OpenRosaClient(server, "ctv_bench", "bench-pass-2026") as phone:
            for i, h in enumerate(chosen):
                time.sleep(max(0.0, t_start + i / rate_per_s - time.monotonic()))
                year = h.answers["visit_date"][:4]
                base = cell(h.commune, year)
                out = phone.submit(fill(template, h, photo_bytes=2_000), h.device_id)
                if not out.ok:
                    failed.append(h.commune)
                    continue
                with lock:
                    pending[h.commune] = (year, base, time.monotonic())
        done.set()
        watcher.join(180)
        lat = sorted(latencies)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else float("nan")

        return {
            "latency_submissions": len(chosen),
            "latency_rate_per_s": rate_per_s,
            "latency_updated": len(lat),
            "latency_not_updated": len(failed),
            "latency_p50_s": pct(0.5),
            "latency_p95_s": pct(0.95),
            "latency_max_s": round(lat[-1], 3) if lat else float("nan"),
            "goal_latency_p95_s": 5.0,
        }
    finally:
        engine.dispose()
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        couch_proc.stop()

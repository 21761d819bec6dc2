"""How the indicator side grows: rebuild, incremental refresh and what an officer waits for, at two sizes.

For each size (1 M and 10 M child observations; quick: 20 k and 200 k; ``BENCH_SCALE_SIZES=a,b`` to choose),
the synthetic rows of bench_indicators (same generator, same seed; households = a third of the child rows,
health-station checks per commune) are generated in DuckDB and COPYed into a fresh PostgreSQL database, then
each step runs in a process of its own so its peak memory is its own (its VmHWM):

* ``rebuild``: ``aggregator.rollup.rebuild`` (what `carecheck indicators rebuild` runs); seconds, the
  process's peak RSS and the bytes PostgreSQL spilled to temporary files meanwhile (``pg_stat_database``);
* ``refresh``: ``aggregator.rollup.refresh`` (what the follower's after-page hook runs per page) for pages
  as they arrive — up to 200 submissions (households and child observations) of four communes' teams over
  one week; p50/p95 seconds per page over 20 pages, peak RSS. (A page of 200 submissions drawn from every
  commune and date at once touches nearly every cell: that is a rebuild, not a refresh.)
* ``read``: the console app in-process (FastAPI TestClient, a district officer signed in): 20 ×
  ``GET /api/v1/indicators?level=district&area=<the largest district>&period=2026`` (p50/p95 ms) and
  the district's HTML report ``GET /reports/district/<it>?period=2026``: the first call (cold caches:
  every suppression pattern of the period and of the trend's periods), 5 warm calls (p50/max s), and
  what an officer waits for during data collection: the report right after one incremental refresh page
  (3 pages, each followed by one report call; max s), since every refresh changes some periods' cells.

Figures per size, and the growth ratios the goals are about (large / small): ``rebuild_growth`` (≤ 12 for
10 M over 1 M: linear would be 10), ``rebuild_rss_growth`` (≤ 1.5). The machine is shared: absolute seconds
are stated with the load average at the start of each step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

PAGE = 200
PAGES = 20
REPORT_AFTER_PAGES = 3  # refresh pages the read step follows each with a report call


def _sizes(quick: bool) -> tuple[int, int]:
    if env := os.environ.get("BENCH_SCALE_SIZES"):
        a, b = (int(x) for x in env.split(","))
        return a, b
    return (20_000, 200_000) if quick else (1_000_000, 10_000_000)


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _child(step: str, url: str, tmp: Path, n: int) -> dict[str, Any]:
    """Run ``step`` in a fresh Python process; its figures plus its peak RSS (MB)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_scale", step, url, str(tmp), str(n)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench_scale {step} failed (status {proc.returncode})")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _temp_bytes(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as c:
        v = c.execute(
            text("SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()")
        ).scalar()
    engine.dispose()
    return int(v or 0)


def size_figures(n: int, tmp: Path) -> dict[str, Any]:
    import duckdb

    from aggregator.db import init_db
    from bench.bench_indicators import copy_to_postgres, generate, pg_database
    from core.settings import Settings

    d = tmp / f"n{n}"
    d.mkdir()
    con = duckdb.connect(str(d / "gen.duckdb"))
    t = time.perf_counter()
    counts = generate(con, n)
    out: dict[str, Any] = {
        "child_rows": counts["childobservation"],
        "generate_s": round(time.perf_counter() - t, 1),
    }
    with pg_database() as url:
        engine = init_db(Settings(var_dir=d, database_url=url))
        out["load_pg_s"] = round(copy_to_postgres(con, engine, d), 1)
        con.close()
        (d / "gen.duckdb").unlink()
        for f in d.glob("*.csv"):
            f.unlink()
        engine.dispose()
        out["load_avg_rebuild"] = _load()
        spilled = _temp_bytes(url)
        r = _child("rebuild", url, d, n)
        out.update(rebuild_s=r["seconds"], rebuild_peak_rss_mb=r["peak_rss_mb"], rebuild_cells=r["cells"])
        out["rebuild_pg_temp_mb"] = round((_temp_bytes(url) - spilled) / 2**20, 1)
        out["load_avg_refresh"] = _load()
        r = _child("refresh", url, d, n)
        out.update(refresh_p50_s=r["p50"], refresh_p95_s=r["p95"], refresh_peak_rss_mb=r["peak_rss_mb"])
        out["load_avg_read"] = _load()
        r = _child("read", url, d, n)
        out.update({k: v for k, v in r.items() if k != "peak_rss_mb"}, read_peak_rss_mb=r["peak_rss_mb"])
    return out


def run(quick: bool = False) -> dict[str, Any]:
    small, large = _sizes(quick)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        figures = {}
        for n in (small, large):
            figures[n] = size_figures(n, Path(tmp))
            print(json.dumps({n: figures[n]}), file=sys.stderr, flush=True)  # kept if a later size fails
    for n, f in figures.items():
        out.update({f"{k}_{n}": v for k, v in f.items()})
    a, b = figures[small], figures[large]
    out.update(
        {
            "size_ratio": round(b["child_rows"] / a["child_rows"], 2),
            "rebuild_growth": round(b["rebuild_s"] / a["rebuild_s"], 2),
            "goal_rebuild_growth": 12.0,
            "rebuild_rss_growth": round(b["rebuild_peak_rss_mb"] / a["rebuild_peak_rss_mb"], 3),
            "goal_rebuild_rss_growth": 1.5,
            "refresh_p95_growth": round(b["refresh_p95_s"] / a["refresh_p95_s"], 2),
            "api_p95_growth": round(b["api_p95_ms"] / a["api_p95_ms"], 2),
            "report_growth": round(b["report_p50_s"] / a["report_p50_s"], 2),
            "report_after_refresh_growth": round(
                b["report_after_refresh_max_s"] / a["report_after_refresh_max_s"], 2
            ),
        }
    )
    return out


# ---------------------------------------------------------------- the steps, each in a process of its own


def _step_rebuild(url: str) -> dict[str, Any]:
    from aggregator import rollup
    from aggregator.db import get_engine
    from core.settings import Settings

    engine = get_engine(Settings(database_url=url))
    stats = rollup.rebuild(engine)
    with engine.connect() as c:
        cells = c.execute(text("SELECT count(*) FROM indicator_value")).scalar()
    out = {"seconds": round(stats["seconds"], 2), "cells": cells}
    if "counted_seconds" in stats:  # the rows the stock cells count, written for refresh by difference
        out.update(counted_s=round(stats["counted_seconds"], 2), counted_rows=stats["counted_rows"])
    return out


def _pages(url: str, seed: int, pages: int) -> Iterator[float]:
    """Refresh ``pages`` pages as they arrive (see the module docstring); yields each page's seconds."""
    import random
    from datetime import timedelta

    from sqlmodel import Session

    from aggregator import rollup
    from aggregator.db import get_engine
    from core.settings import Settings

    engine = get_engine(Settings(database_url=url))
    rng = random.Random(seed)
    with engine.connect() as c:
        communes = [r[0] for r in c.execute(text("SELECT DISTINCT commune_code FROM household ORDER BY 1"))]
        days = c.execute(text("SELECT min(visit_date), max(visit_date) FROM household")).one()
    for _ in range(pages):
        # a page of the feed as it arrives: a few commune teams back in coverage, sending a week's visits
        # (households and their children's observations) — the cells of those communes and periods move
        teams = rng.sample(communes, 4)
        start = days[0] + timedelta(days=rng.randrange((days[1] - days[0]).days - 7))
        # ORDER BY: the same rows whatever the plan (an index on (commune, date) made LIMIT take the first
        # commune's rows only: a page of one or two communes instead of four)
        q = text(
            "(SELECT submission_id FROM household WHERE commune_code = ANY(:c) "
            "AND visit_date BETWEEN :a AND :b ORDER BY submission_id LIMIT :n) UNION ALL "
            "(SELECT submission_id FROM childobservation WHERE commune_code = ANY(:c) "
            "AND visit_date BETWEEN :a AND :b ORDER BY submission_id LIMIT :n)"
        )
        with engine.connect() as c:
            ids = list(
                c.execute(
                    q, {"c": teams, "a": start, "b": start + timedelta(days=7), "n": PAGE // 2}
                ).scalars()
            )
        with Session(engine) as session:
            t = time.perf_counter()
            rollup.refresh(session, ids)
            session.commit()
            yield time.perf_counter() - t


def _step_refresh(url: str, n: int) -> dict[str, Any]:
    times = sorted(_pages(url, 16, PAGES))
    return {"p50": round(times[len(times) // 2], 3), "p95": round(times[int(0.95 * (len(times) - 1))], 3)}


def _step_read(url: str, tmp: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from console.app import create_app
    from console.sessions import officer_account
    from core.settings import Settings
    from sync_server.auth import Account, current_account

    engine = create_engine(url)
    with engine.connect() as c:
        district = c.execute(
            text("SELECT district_code FROM childobservation GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar()
    engine.dispose()
    # the store is not needed to read indicators: a district officer is signed in by the test hook
    settings = Settings(var_dir=tmp, database_url=url, couchdb_url="http://127.0.0.1:9")
    app = create_app(settings)
    officer = Account("huyen_bench", "district", str(district))
    app.dependency_overrides[current_account] = lambda: officer  # the API's dependency
    app.dependency_overrides[officer_account] = lambda: officer  # reports: session or device login
    api, report = [], []
    with TestClient(app, base_url="http://officer.test") as client:
        for i in range(21):
            t = time.perf_counter()
            r = client.get(
                "/api/v1/indicators", params={"level": "district", "area": district, "period": "2026"}
            )
            if i:  # the first request warms caches (indicator definitions, org units)
                api.append(time.perf_counter() - t)
            assert r.status_code == 200 and r.json()["items"], r.text[:300]

        def report_s() -> float:
            t = time.perf_counter()
            r = client.get(f"/reports/district/{district}", params={"period": "2026"})
            took = time.perf_counter() - t
            assert r.status_code == 200 and b"<html" in r.content[:500].lower(), r.text[:300]
            return took

        first = report_s()
        report = sorted(report_s() for _ in range(5))
        # during data collection: a refresh page, then an officer opens the report (other seeds than the
        # refresh step's pages: new data)
        after = [report_s() for _ in _pages(url, 61, REPORT_AFTER_PAGES)]
    api.sort()
    return {
        "district": district,
        "api_p50_ms": round(1000 * api[len(api) // 2], 1),
        "api_p95_ms": round(1000 * api[int(0.95 * (len(api) - 1))], 1),
        "report_first_s": round(first, 3),
        "report_p50_s": round(report[len(report) // 2], 3),
        "report_max_s": round(report[-1], 3),
        "report_after_refresh_max_s": round(max(after), 3),
        "report_after_refresh_s": [round(x, 3) for x in after],
    }


if __name__ == "__main__":
    step, url, tmp, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    if step == "rebuild":
        result = _step_rebuild(url)
    elif step == "refresh":
        result = _step_refresh(url, n)
    else:
        result = _step_read(url, tmp)
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result, default=str))

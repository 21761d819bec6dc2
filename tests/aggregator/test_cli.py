"""Operator commands as subprocesses: `carecheck ingest --once`, `status`, clear errors."""

from __future__ import annotations

import subprocess

from core.couch import Couch
from core.services import free_port
from core.settings import Settings
from tests.aggregator.conftest import CARECHECK, counts, settings_env
from tests.aggregator.factory import bulk_insert, households


def _run(s: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CARECHECK, *args], env=settings_env(s), capture_output=True, text=True, timeout=timeout
    )


def test_ingest_once_then_status(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    b = households(40, seed=77)
    bulk_insert(Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password), s.submissions_db, b.docs)
    r = _run(s, "status", "--lang", "en")
    assert r.returncode == 0, r.stderr
    assert "Changes behind" in r.stdout and " 40 " in r.stdout  # 40 changes waiting
    assert "0 (carecheck worker + beat?)" in r.stdout  # no worker: said plainly (and quickly, not hung)
    r = _run(s, "ingest", "--once")
    assert r.returncode == 0, r.stderr
    assert "caught up: 40 submissions" in r.stdout
    c = counts(s)
    assert (c["raw"], c["household"], c["obs"]) == (40, 40, b.children)
    r = _run(s, "status")
    assert r.returncode == 0 and "Số thay đổi chưa xử lý / Changes behind" in r.stdout
    line = next(x for x in r.stdout.splitlines() if "Changes behind" in x)
    assert line.rstrip(" │").endswith("0"), line


def test_store_down_is_one_clear_line(sqlite_settings: Settings) -> None:
    s = sqlite_settings.model_copy(update={"couchdb_url": f"http://127.0.0.1:{free_port()}"})
    r = _run(s, "ingest", "--once", timeout=120)
    assert r.returncode == 1
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("carecheck: ") and "Traceback" not in r.stderr, r.stderr
    assert "không truy cập được" in lines[0] and "unavailable" in lines[0]


def test_replay_fills_what_an_upgrade_added(sqlite_settings: Settings) -> None:
    """Rows ingested before a column existed stay NULL; `ingest --replay` reads the feed again and fills them,
    doubling nothing."""
    from sqlalchemy import create_engine, text

    s = sqlite_settings
    b = households(30, seed=78)
    bulk_insert(Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password), s.submissions_db, b.docs)
    assert _run(s, "ingest", "--once").returncode == 0
    engine = create_engine(s.effective_database_url)
    with engine.begin() as c:
        answered = c.execute(
            text("SELECT count(*) FROM childobservation WHERE injury_12m IS NOT NULL")
        ).scalar()
        assert answered and answered > 0
        c.execute(text("UPDATE childobservation SET injury_12m = NULL, injury_drowning = NULL"))  # "before"
    r = _run(s, "ingest", "--once", "--replay")
    assert r.returncode == 0, r.stderr
    assert "replaying from the start" in r.stdout and "caught up: 30 submissions" in r.stdout
    with engine.begin() as c:
        again = c.execute(text("SELECT count(*) FROM childobservation WHERE injury_12m IS NOT NULL")).scalar()
    engine.dispose()
    assert again == answered
    c2 = counts(s)
    assert (c2["raw"], c2["household"], c2["obs"]) == (30, 30, b.children)

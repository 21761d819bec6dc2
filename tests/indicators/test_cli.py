"""`carecheck indicators rebuild | list | show` through the real CLI (subprocesses) on a seeded database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect
from sqlmodel import Session

from aggregator.db import dispose_engines, get_engine, init_db
from core.settings import ROOT, Settings
from tests.indicators import dataset as ds

CARECHECK = Path(sys.executable).parent / "carecheck"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CARECHECK), "indicators", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_rebuild_list_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    settings = Settings(var_dir=tmp_path, database_url=url)
    with Session(init_db(settings)) as s:
        ds.seed(s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env.update(
        CARECHECK_DATABASE_URL=url,
        CARECHECK_VAR_DIR=str(tmp_path),
        CARECHECK_MIN_CELL_SIZE="1",
        COLUMNS="200",
    )
    r = run(env, "rebuild")
    assert r.returncode == 0, r.stderr
    assert "rebuilt 28 indicators" in r.stdout and "Đã tính lại" in r.stdout
    tables = inspect(get_engine(settings)).get_table_names()
    assert "indicator_value" in tables and not [t for t in tables if "_build_" in t or "_old_" in t]
    r = run(env, "list", "--lang", "en")
    assert r.returncode == 0 and "cedc_rate" in r.stdout and "< 0.8" in r.stdout
    r = run(env, "show", "cedc_rate", "--period", "2026")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if "│ 91 " in x)
    assert "2" in line and "9" in line and "22.2" in line and "not_met" in line
    assert "count child where age_years < 16" in r.stdout
    r = run(env, "show", "cedc_rate", "--period", "2026Q9")
    assert r.returncode == 1 and "2026Q9" in r.stderr and "Traceback" not in r.stderr
    r = run(env, "show", "no_such_indicator")
    assert r.returncode == 1 and "No indicator 'no_such_indicator'" in r.stderr
    dispose_engines()

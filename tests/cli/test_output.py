"""What operators read: read-only commands start nothing, times name the province's zone, codes are whole."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.localtime import shown
from core.settings import ROOT

CARECHECK = [sys.executable, "-c", "from cli.main import main; main()"]


def _env(var: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env.update(CARECHECK_VAR_DIR=str(var), PYTHONPATH=str(ROOT), **extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CARECHECK, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_status_never_starts_a_stopped_store(tmp_path: Path) -> None:
    env = _env(tmp_path / "var", COLUMNS="200")
    state = tmp_path / "var" / "couch" / "server.json"
    assert _run(["local", "start"], env).returncode == 0 and state.exists()
    assert _run(["local", "stop"], env).returncode == 0 and not state.exists()
    r = _run(["status"], env)
    assert r.returncode == 0, r.stderr
    assert "carecheck local start" in r.stdout  # it says the store is stopped, and how to start it
    assert not state.exists(), "status started the embedded store"


def test_indicators_list_keeps_every_code_whole_at_80_columns(tmp_path: Path) -> None:
    from aggregator.indicators import load

    r = _run(["indicators", "list"], _env(tmp_path / "var", COLUMNS="80"))
    assert r.returncode == 0, r.stderr
    first_cells = {line.split("│")[1].strip() for line in r.stdout.splitlines() if line.startswith("│")}
    assert set(load()) <= first_cells


def test_times_for_people_are_in_the_provinces_zone() -> None:
    assert shown(datetime(2026, 9, 30, 22, 30, tzinfo=UTC)) == "2026-10-01 05:30:00 UTC+7"
    assert shown(datetime(2026, 9, 30, 22, 30)) == "2026-10-01 05:30:00 UTC+7"  # naive: stored UTC
    assert shown("2026-09-30T22:30:00Z") == "2026-10-01 05:30:00 UTC+7"
    assert shown(None) == "" and shown("not a time") == "not a time"


def test_a_bad_setting_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = [{"CARECHECK_MIN_CELL_SIZE": "-3"}, {"CARECHECK_COUCHDB_PASSWORD_FILE": str(tmp_path / "no")}]
    for extra in bad:
        r = _run(["status"], _env(tmp_path / "var", **extra))
        assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
        assert "cấu hình sai / bad setting" in r.stderr and next(iter(extra)).split("_FILE")[0] in r.stderr

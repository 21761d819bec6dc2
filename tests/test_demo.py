"""`carecheck demo` — the README's first command — runs end to end on embedded defaults (small field work)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.services import stop_embedded_couch
from core.settings import Settings

pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env["CARECHECK_VAR_DIR"] = str(var)
    exe = Path(sys.executable).parent / "carecheck"
    try:
        run = subprocess.run(
            [str(exe), "demo", "--households", "80", "--seed", "7"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop_embedded_couch(Settings(var_dir=var))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    # every step spoke: forms built, field work per district, ingestion caught up, report written
    assert "household_child_check" in out and "commune_facility_check" in out
    assert "Thành phố Phú Quốc" in out and "Huyện Giang Thành" in out
    assert "còn chờ / behind: 0" in out
    reports = list((var / "reports").glob("bao-cao-911-*.html"))
    assert len(reports) == 1, out[-2000:]
    html = reports[0].read_text(encoding="utf-8")
    assert "<svg" in html and "Phú Quốc" in html
    # the worker ran for real on the server-less broker, and the server's log has no traceback
    assert (var / "broker.sqlite").exists()
    assert "Traceback" not in (var / "logs" / "server.log").read_text()


def test_demo_says_what_to_do_when_its_store_predates_a_form_change(tmp_path: Path) -> None:
    """Re-running the demo over a var/ filled with older forms: 409s (same instanceIDs, other content) give
    one line saying to start afresh; anything else names an example status and the log."""
    from cli.demo import _not_sent
    from core.errors import Problem
    from simulator.client import Outcome

    conflict = [Outcome("uuid:a", "rejected", 409, "other content"), Outcome("uuid:b", "rejected", 409, "")]
    with pytest.raises(Problem) as e:
        _not_sent(conflict, "2026Q1: ", tmp_path)
    assert "make clean" in str(e.value) and "2026Q1: 2 records" in str(e.value)
    other = [Outcome("uuid:c", "failed", None, "connection refused"), conflict[0]]
    with pytest.raises(Problem) as e:
        _not_sent(other, "", tmp_path)
    assert "make clean" not in str(e.value) and "connection refused" in str(e.value)

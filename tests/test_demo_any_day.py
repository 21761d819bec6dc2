"""`make demo` any day: twice on one day (the second run is a resend of every record), then with the clock a
day ahead (that day's field work is new; the earlier rounds are resent)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from cli.demo import run_demo
from core.services import stop_embedded_couch
from core.settings import Settings

pytestmark = pytest.mark.slow


def test_demo_twice_today_then_tomorrow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(var_dir=tmp_path / "var")  # embedded defaults: SQLite, pouchdb-server, SQLite broker
    first_day = date.today() - timedelta(days=1)  # the "today" of runs 1 and 2; run 3 is a day later
    period = f"{first_day.year}Q{(first_day.month - 1) // 3 + 1}"
    try:
        runs = [
            run_demo(settings, households=20, seed=11, period=period, today=first_day + timedelta(days=d))
            for d in (0, 0, 1)
        ]
    finally:
        stop_embedded_couch(settings)
    out = capsys.readouterr().out
    one, two, three = (r.sent for r in runs)
    earlier = [k for k in one if k.startswith("earlier ")]
    assert len(earlier) == 3
    new_only = {k: Counter({"new": c["new"]}) for k, c in one.items()}
    assert all(c["resent"] == 0 and c["failed"] == 0 for c in one.values()), one
    assert one["day"]["new"] == 20 and one["edits"]["new"] == 1 and one["facilities"]["new"] > 100
    # the same day again: every record already received, nothing new
    assert {k: Counter({"resent": c["new"]}) for k, c in new_only.items()} == two, two
    # a day later: that day's field work, corrections and checklists are new; the earlier rounds are resent
    for k in earlier:
        assert three[k] == Counter({"resent": one[k]["new"]}), three
    for k in ("day", "edits", "facilities"):
        assert three[k] == Counter({"new": one[k]["new"]}), three
    assert runs[2].day == runs[0].day + timedelta(days=1)
    # the last screen: what still runs, how to stop it, the accounts, three things to try
    assert "carecheck local stop" in out and "ctv_demo" in out and "tinh_demo" in out
    assert "    3. " in out

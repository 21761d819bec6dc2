"""Fixtures for the report tests: the hand-built dataset in SQLite (once per run), rolled up for real."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session

from core.settings import ROOT, Settings
from tests.reports.dataset import seed

CARECHECK = Path(sys.executable).parent / "carecheck"


@dataclass
class ReportDB:
    settings: Settings
    url: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
        env.update(
            CARECHECK_DATABASE_URL=self.url,
            CARECHECK_VAR_DIR=str(self.settings.var_dir),
            CARECHECK_MIN_CELL_SIZE=str(self.settings.min_cell_size),
        )
        return env

    def render(
        self,
        *,
        level: str,
        area: str,
        period: str = "2026Q4",
        hierarchy: str = "legacy",
        fmt: str = "html",
        lang: str = "vi",
    ) -> bytes:
        """The same code path as the CLI, in-process (subprocesses cost seconds each on a loaded machine)."""
        from aggregator.reports.render import render

        return render(
            self.settings, level=level, area=area, period=period, hierarchy=hierarchy, fmt=fmt, lang=lang
        )

    def report(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the real CLI (`carecheck report …`) in a subprocess against this database."""
        proc = subprocess.run(
            [str(CARECHECK), "report", *args],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"carecheck report failed ({proc.returncode}): {proc.stderr}")
        return proc


def seeded(settings: Settings) -> None:
    """Create the tables, insert the dataset, run the full rollup (what `indicators rebuild` runs)."""
    from aggregator import rollup
    from aggregator.db import init_db

    engine = init_db(settings)
    with Session(engine) as session:
        seed(session)
    rollup.rebuild(engine)


@pytest.fixture(scope="session")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReportDB]:
    var = tmp_path_factory.mktemp("reports")
    url = f"sqlite:///{var / 'carecheck.db'}"
    settings = Settings(var_dir=var, database_url=url, min_cell_size=5)
    seeded(settings)
    yield ReportDB(settings, url)
    from aggregator.db import dispose_engines

    dispose_engines()

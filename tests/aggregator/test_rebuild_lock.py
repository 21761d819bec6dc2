"""A full indicator build and an ingestion page at the same time (PostgreSQL): the build holds every row still
while it reads them (its cells and the rows it counts must see the same rows), and the page waits for it —
before its first write, on ingestion's own lock, so the two never deadlock on the source tables."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlmodel import Session

from aggregator import ingest, rollup
from aggregator.db import dispose_engines, init_db
from aggregator.locks import WRITE_LOCK
from aggregator.models import ChildObservation
from aggregator.rollup.tables import COUNTED
from core.settings import Settings
from tests.aggregator.factory import household_xml, submission_doc

KEY = b"k" * 32


def _change(sub: str, children: int) -> dict[str, Any]:
    answers = {
        "visit_date": "2026-11-10",
        "district": "911",
        "commune": "31078",
        "hamlet": "Ấp 1",
        "consent": "yes",
        "head_name": "Trần Văn Ba",
        "births_12m": 0,
        "under5_deaths_12m": 0,
        "child_drowning_deaths_12m": 0,
        "children_count": children,
    }
    kids = [{"child_name": f"Trần Thị {i}", "sex": "female", "dob": "2018-04-02"} for i in range(children)]
    return {"id": sub, "seq": "1", "doc": submission_doc(household_xml(sub, answers, kids), sub)}


def _build_waits(engine: Engine) -> str | None:
    """What the build waits for (a lock not granted: ingestion's advisory lock, or a table), if it does."""
    with engine.connect() as c:
        q = text("SELECT locktype, objid FROM pg_locks WHERE NOT granted")
        row = c.execute(q).first()
        return None if row is None else f"{row[0]}:{row[1]}"


def test_a_rebuild_waits_for_a_page_being_written_and_neither_deadlocks(pg_url: str, tmp_path: Path) -> None:
    engine = init_db(Settings(var_dir=tmp_path, database_url=pg_url))
    with Session(engine) as s:
        ingest.apply_page(s, [_change("uuid:before", 1)], key=KEY)
        s.commit()
    rollup.rebuild(engine)

    page = Session(engine)
    # the page's first document: a household without children (its rows lock household, not the children's
    # table)
    assert ingest.apply_page(page, [_change("uuid:first", 0)], key=KEY).ingested == ["uuid:first"]
    got: dict[str, Any] = {}

    def build() -> None:
        try:
            got["stats"] = rollup.rebuild(engine)
        except Exception as exc:  # noqa: BLE001 - reported below
            got["error"] = exc

    t = threading.Thread(target=build)
    t.start()
    t0 = time.monotonic()
    while (waits := _build_waits(engine)) is None:
        assert time.monotonic() - t0 < 30 and t.is_alive(), got
        time.sleep(0.05)
    assert waits == f"advisory:{WRITE_LOCK}", waits  # not a table: it holds none yet
    # the page goes on: a household with children writes the children's table, which a build holding a
    # SHARE lock on it (and waiting for the household table this page holds) would deadlock on
    second = ingest.apply_page(page, [_change("uuid:second", 2)], key=KEY)
    assert second.ingested == ["uuid:second"] and not second.failed, second.failed
    page.commit()
    page.close()
    t.join(120)
    assert not t.is_alive() and "error" not in got, got
    with engine.connect() as c:
        children = c.execute(select(func.count()).select_from(ChildObservation.__table__)).scalar()  # type: ignore[attr-defined]
        counted = c.execute(
            select(func.count()).select_from(COUNTED).where(COUNTED.c.submission_id == "uuid:second")
        ).scalar()
    assert children == 3
    assert counted  # the build ran after the page: what it wrote is counted
    dispose_engines()

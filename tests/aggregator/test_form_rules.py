"""Form-side rules in ingestion: no phantom children (5), local dates (7), the one age rule (4) — issue 12."""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

from aggregator import follower
from aggregator.db import get_engine
from aggregator.ingest import rows as ingest
from aggregator.models import Child, ChildObservation, Household, QualityFlag
from core.ages import age
from core.couch import Couch
from core.settings import Settings
from tests.aggregator.conftest import CARECHECK, settings_env
from tests.aggregator.factory import child_answers, household_xml, submission_doc

KEY = b"k" * 32
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def doc(
    iid: str,
    kids: list[dict[str, Any]],
    *,
    children_count: int | None = None,
    visit: str | None = "2026-11-10",
    end: str = "2026-11-10T10:00:00+07:00",
    received_at: str = "2026-11-10T08:00:00Z",
) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "end": end,
        "visit_date": visit,
        "district": "911",
        "commune": "31078",
        "hamlet": "Ấp 3",
        "consent": "yes",
        "head_name": "Trần Văn Hai",
        "poverty_status": "poor",
        "unfenced_water": "yes",
        "hotline_111_aware": "no",
        "births_12m": 0,
        "under5_deaths_12m": 0,
        "children_count": len(kids) if children_count is None else children_count,
    }
    return submission_doc(household_xml(iid, answers, kids), iid, received_at=received_at)


def codes(rows: ingest.DocRows) -> list[str]:
    return sorted(f["code"] for f in rows.flags)


def test_child_entries_of_a_household_with_zero_children_are_ignored_and_flagged() -> None:
    rng = random.Random(5)
    kid = child_answers(rng, date(2026, 11, 10), dob=date(2019, 4, 1))
    phantom = ingest.build_rows(doc("uuid:p0", [kid], children_count=0), NOW, key=KEY)
    assert phantom.children == [] and phantom.household is not None
    assert phantom.household["n_children"] == 0
    assert "child_with_zero_count" in codes(phantom)
    # the same child under children_count 1 counts, unflagged
    real = ingest.build_rows(doc("uuid:p1", [kid]), NOW, key=KEY)
    assert len(real.children) == 1 and "child_with_zero_count" not in codes(real)
    # a household with 0 children and no entries: nothing to flag
    assert codes(ingest.build_rows(doc("uuid:p2", []), NOW, key=KEY)) == []


@pytest.mark.parametrize(
    ("visit", "received_at", "flagged"),
    [
        ("2026-11-10", "2026-11-09T23:40:00Z", False),  # sent 06:40 in Vietnam on the visit day
        ("2026-11-10", "2026-11-09T16:59:00Z", True),  # 23:59 on the 9th in Vietnam: before the visit day
        ("2026-11-11", "2026-11-10T17:00:00Z", False),  # 00:00 on the 11th in Vietnam
        ("2026-11-11", "2026-11-10T16:00:00Z", True),
    ],
)
def test_visit_after_received_compares_days_in_vietnam(visit: str, received_at: str, flagged: bool) -> None:
    rows = ingest.build_rows(doc("uuid:v", [], visit=visit, received_at=received_at), NOW, key=KEY)
    assert ("visit_after_received" in codes(rows)) is flagged


def test_visit_date_fallback_is_the_local_day_the_form_was_finished() -> None:
    rows = ingest.build_rows(
        doc("uuid:e", [], visit=None, end="2026-11-10T06:30:00+07:00", received_at="2026-11-10T00:10:00Z"),
        NOW,
        key=KEY,
    )
    assert rows.household is not None and rows.household["visit_date"] == date(2026, 11, 10)


def test_ages_are_the_one_rule() -> None:
    assert ingest.age is age  # ingestion calls core.ages, no copy of its own
    rng = random.Random(6)
    kids = [
        child_answers(rng, date(2026, 3, 1), dob=date(2021, 3, 1)),
        child_answers(rng, date(2026, 3, 1), dob=date(2021, 3, 2)),
    ]
    rows = ingest.build_rows(doc("uuid:a", kids, visit="2026-03-01"), NOW, key=KEY)
    assert [(o["age_years"], o["age_months"]) for o, _ in rows.children] == [(5, 60), (4, 59)]


def test_replay_corrects_phantom_children_stored_by_the_old_release(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingested as the old release did (every child entry counted), then `carecheck ingest --once --replay`:
    the phantom observation and its registry child are gone, the household has 0 children, a flag says why;
    the real children stay."""
    s = sqlite_settings
    rng = random.Random(7)
    visit = date(2026, 11, 10)
    phantom = doc("uuid:old-0", [child_answers(rng, visit, dob=date(2020, 5, 5))], children_count=0)
    real = doc("uuid:old-1", [child_answers(rng, visit, dob=date(2016, 8, 8), name="Lâm Thị Hoa")])
    Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password).bulk_docs(s.submissions_db, [phantom, real])

    with monkeypatch.context() as m:  # the old release: no check of children_count
        m.setattr(ingest, "_counted_children", lambda rows, data, now: data.get("child") or [])
        follower.follow(s)
    with Session(get_engine(s)) as sess:
        assert len(sess.exec(select(ChildObservation)).all()) == 2
        assert len(sess.exec(select(Child)).all()) == 2

    r = subprocess.run(
        [CARECHECK, "ingest", "--once", "--replay"],
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    with Session(get_engine(s)) as sess:
        obs = sess.exec(select(ChildObservation)).all()
        assert [o.submission_id for o in obs] == ["uuid:old-1"]
        assert len(sess.exec(select(Child)).all()) == 1
        hh = {h.submission_id: h.n_children for h in sess.exec(select(Household))}
        assert hh == {"uuid:old-0": 0, "uuid:old-1": 1}
        flags = sess.exec(select(QualityFlag).where(QualityFlag.code == "child_with_zero_count")).all()
        assert [f.submission_id for f in flags] == ["uuid:old-0"]

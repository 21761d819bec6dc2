"""Migrations (Alembic): a fresh database, one made by the previous release and one made by the first release
all reach the head with their rows; `db check` finds drift; downgrade and upgrade round-trip."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Table, inspect, text
from sqlmodel import Session, select

from aggregator import ingest, schema
from aggregator.db import dispose_engines, get_engine, init_db
from aggregator.models import ChildObservation, Household
from core.settings import Settings
from tests.aggregator.factory import household_xml, submission_doc

# The columns added for plan II.2 injury events: a database created before them lacks exactly these.
NEW = {
    "household": {"child_drowning_deaths_12m"},
    "childobservation": {"injury_12m", "injury_type", "injury_drowning"},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        url = request.getfixturevalue("pg_url")
    yield Settings(var_dir=tmp_path, database_url=url)
    dispose_engines()  # before pg_url drops the database


def create_first_release_schema(engine: Engine) -> None:
    """The tables as the first release's ``create_all`` made them: no injury columns, no registry key table,
    the plain ``child.personal_id`` instead of its pseudonym (names, types, indexes)."""
    old = MetaData()
    for table in schema.target_metadata().sorted_tables:
        if table.name == "registrykey":
            continue
        gone = NEW.get(table.name, set()) | {"personal_id_hash"}
        cols = [c._copy() for c in table.columns if c.name not in gone]
        if table.name == "child":
            cols.append(Column("personal_id", String, nullable=True, index=True))
        Table(table.name, old, *cols)
    old.create_all(engine)


def create_previous_release_schema(engine: Engine) -> None:
    """What the previous release (``create_all`` + additive columns, no migrations) made from nothing."""
    schema.target_metadata().create_all(engine)


def columns(engine: Engine, table: str) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in inspect(engine).get_columns(table)}


def _household(engine: Engine, sub: str) -> None:
    answers = {
        "visit_date": "2026-11-10",
        "district": "911",
        "commune": "31078",
        "hamlet": "Ấp 1",
        "consent": "yes",
        "head_name": "Trần Văn Ba",
        "births_12m": 0,
        "under5_deaths_12m": 0,
        "child_drowning_deaths_12m": 1,
        "children_count": 1,
    }
    kid = {"child_name": "Trần Thị Tư", "sex": "female", "dob": "2018-04-02", "injury_12m": "yes"}
    kid["injury_type"] = "drowning"
    doc = submission_doc(household_xml(sub, answers, [kid]), sub)
    with Session(engine) as s:
        out = ingest.apply_page(s, [{"id": sub, "seq": "1", "doc": doc}], key=b"k" * 32)
        s.commit()
        assert out.ingested == [sub] and not out.failed


def test_fresh_database_reaches_the_head_and_matches_the_models(settings: Settings) -> None:
    engine = init_db(settings)
    assert schema.current(engine) == schema.head()
    assert schema.differences(engine) == []
    assert schema.check_fresh() == []
    init_db(settings)  # a second start changes nothing
    assert schema.upgrade(engine) == (schema.head(), schema.head())


def test_previous_release_database_is_adopted_with_its_rows(settings: Settings) -> None:
    engine = get_engine(settings)
    create_previous_release_schema(engine)
    _household(engine, "uuid:before")
    before = {t: set(columns(engine, t)) for t in inspect(engine).get_table_names()}
    assert "alembic_version" not in before

    assert schema.upgrade(engine) == (schema.FIRST, schema.head())
    after = {t: set(columns(engine, t)) for t in inspect(engine).get_table_names() if t != "alembic_version"}
    assert after == before  # nothing to add: the previous release had every column already
    assert schema.differences(engine) == []
    with Session(engine) as s:
        assert s.get(Household, "uuid:before").child_drowning_deaths_12m == 1  # type: ignore[union-attr]


def test_first_release_database_upgrades_in_place(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = get_engine(settings)
    create_first_release_schema(engine)
    plain = ["091218000123", "091315004567"]
    with engine.begin() as c:  # rows of the first release
        c.execute(text("INSERT INTO household (submission_id, births_12m, consent) VALUES ('o', 2, true)"))
        c.execute(text("INSERT INTO childobservation (id, submission_id, can_swim) VALUES ('o/0', 'o', 1=1)"))
        for i, pid in enumerate([*plain, None]):
            c.execute(
                text("INSERT INTO child (id, personal_id, name_hash) VALUES (:id, :pid, 'h')"),
                {"id": f"ch-old{i}", "pid": pid},
            )

    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        init_db(settings)
    assert schema.current(engine) == schema.head()
    assert schema.differences(engine) == []
    for table, new in NEW.items():
        info = columns(engine, table)
        assert new <= set(info) and all(info[n]["nullable"] for n in new)
    assert "personal_id" not in columns(engine, "child")  # the plain IDs are gone, column and all
    lines = [r.getMessage() for r in caplog.records if "plain personal IDs" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("cleared 2 plain personal IDs")
    assert not any(pid in r.getMessage() for r in caplog.records for pid in plain)

    with Session(engine) as s:  # the earlier rows read NULL in the new columns, their answers kept
        hh = s.get(Household, "o")
        obs = s.get(ChildObservation, "o/0")
        assert hh is not None and (hh.births_12m, hh.child_drowning_deaths_12m) == (2, None)
        assert obs is not None and (obs.can_swim, obs.injury_12m, obs.injury_drowning) == (True, None, None)
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM child WHERE id LIKE 'ch-old%'")).scalar_one() == 3

    _household(engine, "uuid:new")  # and ingestion writes the new answers into the upgraded database
    with Session(engine) as s:
        got = s.exec(select(ChildObservation).where(ChildObservation.submission_id == "uuid:new")).one()
        assert (got.injury_12m, got.injury_type, got.injury_drowning) == (True, "drowning", True)


def test_check_finds_drift_and_downgrade_round_trips(settings: Settings) -> None:
    engine = init_db(settings)
    with engine.begin() as c:
        c.execute(text("ALTER TABLE household ADD COLUMN stray INTEGER"))
    diffs = schema.differences(engine)
    assert any("stray" in d for d in diffs), diffs
    with engine.begin() as c:
        c.execute(text("ALTER TABLE household DROP COLUMN stray"))
    assert schema.differences(engine) == []

    _household(engine, "uuid:kept")
    assert schema.downgrade(engine, schema.FIRST) == (schema.head(), schema.FIRST)
    assert "injury_12m" not in columns(engine, "childobservation")
    assert any("injury_12m" in d for d in schema.differences(engine))
    schema.upgrade(engine)
    assert schema.differences(engine) == []
    with Session(engine) as s:
        assert s.get(Household, "uuid:kept") is not None  # rows survive the round trip


def test_db_check_command_fails_on_drift(settings: Settings, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    engine = init_db(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env.update(CARECHECK_DATABASE_URL=settings.effective_database_url, CARECHECK_VAR_DIR=str(tmp_path))
    carecheck = str(Path(sys.executable).with_name("carecheck"))
    ok = subprocess.run([carecheck, "db", "check"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    with engine.begin() as c:
        c.execute(text("ALTER TABLE household ADD COLUMN stray INTEGER"))
    bad = subprocess.run([carecheck, "db", "check"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "stray" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

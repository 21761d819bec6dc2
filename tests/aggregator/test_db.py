"""init_db on a database of an earlier schema: missing nullable columns are added, nothing else changes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, inspect, text
from sqlmodel import Session, SQLModel, select

from aggregator import ingest
from aggregator.db import add_missing_columns, dispose_engines, get_engine, init_db
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


def create_earlier_schema(engine: Engine) -> None:
    """The tables as ``create_all`` made them before the injury columns existed (names, types, indexes)."""
    from aggregator import models  # noqa: F401 - registers the tables

    old = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        cols = [c._copy() for c in table.columns if c.name not in NEW.get(table.name, set())]
        Table(table.name, old, *cols)
    old.create_all(engine)


def columns(engine: Engine, table: str) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in inspect(engine).get_columns(table)}


def test_init_db_adds_the_missing_columns_once_and_keeps_the_rows(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = get_engine(settings)
    create_earlier_schema(engine)
    assert not NEW["household"] & set(columns(engine, "household"))
    with engine.begin() as c:  # rows of the earlier version
        c.execute(text("INSERT INTO household (submission_id, births_12m, consent) VALUES ('o', 2, true)"))
        c.execute(text("INSERT INTO childobservation (id, submission_id, can_swim) VALUES ('o/0', 'o', 1=1)"))
    before = {t: set(columns(engine, t)) for t in inspect(engine).get_table_names()}

    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        init_db(settings)
    added = [r.getMessage().split()[2] for r in caplog.records if r.getMessage().startswith("added column")]
    assert sorted(added) == [  # one line per column
        "childobservation.injury_12m",
        "childobservation.injury_drowning",
        "childobservation.injury_type",
        "household.child_drowning_deaths_12m",
    ]
    after = {t: set(columns(engine, t)) for t in inspect(engine).get_table_names()}
    assert set(after) == set(before)  # no table made or dropped
    for table, cols in after.items():  # only the new columns appeared; none went
        assert cols - before[table] == NEW.get(table, set()), table
    for table, new in NEW.items():
        info = columns(engine, table)
        assert all(info[n]["nullable"] for n in new)
    assert "BOOL" in str(columns(engine, "childobservation")["injury_12m"]["type"]).upper()
    assert "INT" in str(columns(engine, "household")["child_drowning_deaths_12m"]["type"]).upper()

    with Session(engine) as s:  # the earlier rows read NULL in the new columns, their answers kept
        hh = s.get(Household, "o")
        obs = s.get(ChildObservation, "o/0")
        assert hh is not None and (hh.births_12m, hh.child_drowning_deaths_12m) == (2, None)
        assert obs is not None and (obs.can_swim, obs.injury_12m, obs.injury_drowning) == (True, None, None)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        init_db(settings)  # a second start: nothing to add, nothing logged
    assert not [r for r in caplog.records if "added column" in r.getMessage()]

    # and ingestion writes the new answers into the upgraded database
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
    doc = submission_doc(household_xml("uuid:new", answers, [kid]), "uuid:new")
    with Session(engine) as s:
        out = ingest.apply_page(s, [{"id": "uuid:new", "seq": "1", "doc": doc}], key=b"k" * 32)
        s.commit()
        assert out.ingested == ["uuid:new"] and not out.failed
        got = s.exec(select(ChildObservation).where(ChildObservation.submission_id == "uuid:new")).one()
        assert (got.injury_12m, got.injury_type, got.injury_drowning) == (True, "drowning", True)
        assert s.get(Household, "uuid:new").child_drowning_deaths_12m == 1  # type: ignore[union-attr]


def test_only_nullable_columns_are_added_indexes_come_along_and_races_are_fine(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    engine = get_engine(settings)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE probe (id VARCHAR NOT NULL PRIMARY KEY, kept VARCHAR)"))
        c.execute(text("INSERT INTO probe (id, kept) VALUES ('a', 'x')"))
    model = Table(
        "probe",
        MetaData(),
        Column("id", String, primary_key=True),
        Column("kept", Integer),  # a different type than the database has: left alone
        Column("note", String, nullable=True, index=True),
        Column("count", Integer, nullable=False),  # NOT NULL: needs a person, not init_db
    )
    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        assert add_missing_columns(engine, [model]) == ["probe.note"]
    have = columns(engine, "probe")
    assert set(have) == {"id", "kept", "note"}
    assert "VARCHAR" in str(have["kept"]["type"]).upper()  # never altered
    assert {i["name"] for i in inspect(engine).get_indexes("probe")} == {"ix_probe_note"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "count" in warnings[0] and "NOT NULL" in warnings[0]
    with engine.connect() as c:
        assert c.execute(text("SELECT id, kept, note FROM probe")).all() == [("a", "x", None)]

    # Another process added the column between our look and our ALTER: not an error, not logged as ours.
    from aggregator.db import _add_column

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        assert _add_column(engine, model, model.c.note) is False
    assert not [r for r in caplog.records if "added column" in r.getMessage()]


def test_init_db_scrubs_plain_personal_ids_of_an_earlier_version(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A registry made before keyed pseudonyms has ``child.personal_id`` with plain IDs: emptied, once."""
    from aggregator import models  # noqa: F401 - registers the tables

    engine = get_engine(settings)
    old = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        cols = [c._copy() for c in table.columns if c.name != "personal_id_hash"]
        if table.name == "child":
            cols.append(Column("personal_id", String, nullable=True, index=True))
        Table(table.name, old, *cols)
    old.create_all(engine)
    plain = ["091218000123", "091315004567"]
    with engine.begin() as c:
        for i, pid in enumerate([*plain, None]):
            c.execute(
                text("INSERT INTO child (id, personal_id, name_hash) VALUES (:id, :pid, 'h')"),
                {"id": f"ch-old{i}", "pid": pid},
            )

    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        init_db(settings)
    lines = [r.getMessage() for r in caplog.records if "plain personal IDs" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("cleared 2 plain personal IDs")
    assert not any(pid in r.getMessage() for r in caplog.records for pid in plain)
    with engine.connect() as c:
        rows = c.execute(text("SELECT id, personal_id, personal_id_hash FROM child ORDER BY id")).all()
    assert rows == [("ch-old0", None, None), ("ch-old1", None, None), ("ch-old2", None, None)]  # rows kept
    assert "personal_id_hash" in {i["column_names"][0] for i in inspect(engine).get_indexes("child")}

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="carecheck.db"):
        init_db(settings)  # the next start: nothing left to clear, nothing logged
    assert not [r for r in caplog.records if "plain personal IDs" in r.getMessage()]

    # the upgraded table takes new registry rows (the old column stays, NULL)
    kid = {"child_name": "Trần Văn Tư", "sex": "male", "dob": "2018-04-02", "personal_id": plain[0]}
    answers = {"visit_date": "2026-11-10", "district": "911", "commune": "31078", "consent": "yes"}
    doc = submission_doc(household_xml("uuid:up", {**answers, "head_name": "Trần Văn Ba"}, [kid]), "uuid:up")
    with Session(engine) as s:
        out = ingest.apply_page(s, [{"id": "uuid:up", "seq": "1", "doc": doc}], key=b"k" * 32)
        s.commit()
        assert out.ingested == ["uuid:up"] and not out.failed
    with engine.connect() as c:
        q = "SELECT personal_id, personal_id_hash FROM child WHERE id NOT LIKE 'ch-old%'"
        got = c.execute(text(q)).all()
    assert len(got) == 1 and got[0][0] is None and got[0][1] and plain[0] not in got[0][1]

"""Set-based writes (aggregator/ingest/bulk.py) on PostgreSQL (COPY, staging upsert) and SQLite alike."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from aggregator.db import get_engine
from aggregator.ingest.bulk import insert_rows, one_of, upsert_rows
from aggregator.models import Child, RawSubmission
from core.settings import Settings


def _child(cid: str, first: date | None, last: date | None, commune: str) -> dict[str, object]:
    return {
        "id": cid,
        "personal_id_hash": None,
        "household_key": "hk",
        "name_hash": "nh",
        "dob": date(2020, 1, 2),
        "sex": "female",
        "ethnicity": "kinh",
        "first_seen": first,
        "last_seen": last,
        "district_code": "911",
        "commune_code": commune,
    }


@pytest.mark.parametrize("which", ["pg_settings", "sqlite_settings"])
def test_upsert_merges_dates_and_replaces_the_rest(which: str, request: pytest.FixtureRequest) -> None:
    s: Settings = request.getfixturevalue(which)
    merge = {"first_seen": "least", "last_seen": "greatest"}
    with Session(get_engine(s)) as sess:
        upsert_rows(
            sess, Child, [_child("a", date(2026, 3, 1), date(2026, 3, 1), "1"), _child("b", None, None, "1")]
        )
        # a page that saw the children earlier/later (and one without dates) must not move the dates back
        upsert_rows(
            sess,
            Child,
            [_child("a", date(2026, 5, 1), date(2026, 5, 1), "2"), _child("b", date(2026, 4, 1), None, "3")],
            merge=merge,
        )
        upsert_rows(sess, Child, [_child("a", date(2026, 1, 1), date(2026, 2, 1), "4")], merge=merge)
        sess.commit()
        a, b = sess.get(Child, "a"), sess.get(Child, "b")
        assert a is not None and b is not None
        assert (a.first_seen, a.last_seen, a.commune_code) == (date(2026, 1, 1), date(2026, 5, 1), "4")
        assert (b.first_seen, b.last_seen, b.commune_code) == (date(2026, 4, 1), None, "3")
        # DO NOTHING keeps the stored row; a plain insert of new keys lands JSON and aware times intact
        upsert_rows(sess, Child, [_child("a", None, None, "9")], update=False)
        now = datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC)
        raw = {"id": "r1", "form_id": "f", "data": {"tên": "Ấp 3", "n": [1, 2]}, "received_at": now}
        insert_rows(sess, RawSubmission, [raw])
        sess.commit()
        a = sess.get(Child, "a")
        r = sess.get(RawSubmission, "r1")
        assert a is not None and a.commune_code == "4"
        assert r is not None and r.data == {"tên": "Ấp 3", "n": [1, 2]} and r.received_at == now


@pytest.mark.parametrize("which", ["pg_settings", "sqlite_settings"])
def test_skip_unchanged_writes_only_rows_that_change_and_one_of_selects(
    which: str, request: pytest.FixtureRequest
) -> None:
    s: Settings = request.getfixturevalue(which)
    merge = {"first_seen": "least", "last_seen": "greatest"}
    day = date(2026, 3, 1)
    with Session(get_engine(s)) as sess:
        upsert_rows(sess, Child, [_child("a", day, day, "1"), _child("b", day, day, "1")])
        sess.commit()
        pg = sess.get_bind().dialect.name == "postgresql"
        version = text("SELECT xmin::text FROM child WHERE id = :i" if pg else "SELECT 0")
        before = {i: sess.execute(version, {"i": i}).scalar() for i in "ab"}
        # "a" as stored (an earlier visit merges to the same dates); "b" seen later: only "b" is written
        upsert_rows(
            sess,
            Child,
            [_child("a", date(2026, 4, 1), date(2026, 2, 1), "1"), _child("b", day, date(2026, 5, 1), "2")],
            merge=merge,
            skip_unchanged=True,
        )
        sess.commit()
        a, b = sess.get(Child, "a"), sess.get(Child, "b")
        assert a is not None and b is not None
        assert (a.first_seen, a.last_seen, a.commune_code) == (day, day, "1")
        assert (b.first_seen, b.last_seen, b.commune_code) == (day, date(2026, 5, 1), "2")
        if pg:  # the unchanged row kept its version (no rewrite), the changed one has a new one
            assert sess.execute(version, {"i": "a"}).scalar() == before["a"]
            assert sess.execute(version, {"i": "b"}).scalar() != before["b"]
        upsert_rows(sess, Child, [_child("a", None, None, "1")], merge=merge, skip_unchanged=True)
        sess.commit()
        sess.expire_all()
        assert (sess.get(Child, "a").first_seen, sess.get(Child, "a").last_seen) == (day, day)  # type: ignore[union-attr]
        t = Child.__table__  # type: ignore[attr-defined]
        found = sess.execute(select(t.c.id).where(one_of(sess, t.c.id, ["b", "zz", "a"]))).scalars()
        assert sorted(found) == ["a", "b"]
        assert list(sess.execute(select(t.c.id).where(one_of(sess, t.c.id, [])))) == []


@pytest.mark.parametrize("which", ["pg_settings", "sqlite_settings"])
def test_one_of_finds_keys_with_any_characters(which: str, request: pytest.FixtureRequest) -> None:
    """one_of's keys reach the database intact (on PostgreSQL one array literal: quotes, backslashes,
    commas, braces, spaces, NULL spelled out and non-ASCII must not be read as array syntax)."""
    s: Settings = request.getfixturevalue(which)
    ids = ['a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "Ấp 3 ✓", 'x\\"y', "uuid:1"]
    with Session(get_engine(s)) as sess:
        upsert_rows(sess, Child, [_child(i, None, None, "1") for i in [*ids, "other", "NUL"]])
        sess.commit()
        t = Child.__table__  # type: ignore[attr-defined]
        found = sess.execute(select(t.c.id).where(one_of(sess, t.c.id, ids))).scalars()
        assert sorted(found) == sorted(ids)
        one = sess.execute(select(t.c.id).where(one_of(sess, t.c.id, ["NULL"]))).scalars()
        assert list(one) == ["NULL"]

"""Ingestion in-process on PostgreSQL: counts, replay, edits, deletions, poison, registry, flags, races."""

from __future__ import annotations

import random
import subprocess
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text, update
from sqlmodel import Session, select

from aggregator import follower
from aggregator.db import get_engine
from aggregator.models import Checkpoint, ChildObservation, Household, QualityFlag, Quarantine, RawSubmission
from aggregator.registry import pid_pseudonym
from core.couch import Couch
from core.secrets import pseudonym_key
from core.settings import Settings
from tests.aggregator.conftest import CARECHECK, TABLES, counts, settings_env
from tests.aggregator.factory import (
    bulk_insert,
    child_answers,
    household_xml,
    households,
    personal_id,
    submission_doc,
)

# timestamps, and the quarantine's retry bookkeeping (a replay is one more attempt at a poisoned document)
VOLATILE = {"ingested_at", "created_at", "updated_at", "attempts", "next_attempt_at", "last_failed_at"}


def couch_of(s: Settings) -> Couch:
    return Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)


def snapshot(s: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (minus timestamps), sorted: two equal snapshots mean nothing changed."""
    out = {}
    with Session(get_engine(s)) as sess:
        for name, model in TABLES.items():
            cols = [c for c in model.__table__.columns if c.name not in VOLATILE]  # type: ignore[attr-defined]
            rows = sess.execute(select(*cols)).all()
            out[name] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def one_household(
    iid: str,
    kids: list[dict[str, Any]],
    *,
    head: str = "Trần Văn Hai",
    hamlet: str = "Ấp 3",
    visit: str = "2026-11-10",
    deprecated_id: str | None = None,
    commune: str = "31078",
    district: str = "911",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "end": f"{visit}T10:00:00+07:00",
        "visit_date": visit,
        "district": district,
        "commune": commune,
        "hamlet": hamlet,
        "consent": "yes",
        "head_name": head,
        "poverty_status": "poor",
        "unfenced_water": "yes",
        "hotline_111_aware": "no",
        "births_12m": 1,
        "under5_deaths_12m": 0,
        "children_count": len(kids),
        **(extra or {}),
    }
    xml = household_xml(iid, answers, kids, deprecated_id=deprecated_id)
    return submission_doc(xml, iid, deprecated_id=deprecated_id, received_at=f"{visit}T08:00:00Z")


def test_counts_replay_and_privacy(pg_settings: Settings) -> None:
    s = pg_settings
    b = households(300, seed=7)
    bulk_insert(couch_of(s), s.submissions_db, b.docs)
    st = follower.follow(s)
    assert st.caught_up and st.ingested == 300 and st.quarantined == 0
    c = counts(s)
    assert (c["raw"], c["household"], c["obs"]) == (300, 300, b.children)
    assert c["child"] == b.children  # every synthetic child is distinct
    with Session(get_engine(s)) as sess:
        cp = sess.get(Checkpoint, follower.checkpoint_name(s))
        assert cp is not None and cp.seq == couch_of(s).update_seq(s.submissions_db)
    before = snapshot(s)

    # Replay from zero: the same pages again change nothing.
    with Session(get_engine(s)) as sess:
        sess.execute(update(Checkpoint).values(seq="0"))
        sess.commit()
    st = follower.follow(s)
    assert st.ingested == 300
    assert snapshot(s) == before

    # No names or personal IDs anywhere in SQL, the registry included (keyed pseudonyms only).
    dump = str(before)
    for doc in b.docs[:50]:
        for tag in ("head_name", "child_name"):
            for part in doc["xml"].split(f"<{tag}>")[1:]:
                assert part.split("<")[0] not in dump
    pids = [p.split("<")[0] for d in b.docs for p in d["xml"].split("<personal_id>")[1:]]
    assert pids
    assert not any(p in dump for p in pids)


def test_edit_moves_answers_and_edit_before_original(pg_settings: Settings) -> None:
    s = pg_settings
    couch = couch_of(s)
    rng = random.Random(3)
    kid = child_answers(
        rng, date(2026, 11, 10), name="Lê Thị Mai", sex="female", dob=date(2016, 5, 2), with_pid=False
    )
    kid2 = child_answers(
        rng, date(2026, 11, 10), name="Lê Văn Tâm", sex="male", dob=date(2019, 1, 9), with_pid=False
    )
    a = one_household("uuid:a-1", [{**kid, "can_swim": "no"}, kid2])
    couch.bulk_docs(s.submissions_db, [a])
    follower.follow(s)
    with Session(get_engine(s)) as sess:
        obs = sess.exec(select(ChildObservation).where(ChildObservation.submission_id == "uuid:a-1")).all()
        mai = next(o for o in obs if o.sex == "female")
        assert mai.can_swim is False
        child_id = mai.child_id

    # The edit: one child fewer? No — same two children, one answer changed; then a third version (edit of
    # edit).
    b = one_household("uuid:a-2", [{**kid, "can_swim": "yes"}, kid2], deprecated_id="uuid:a-1")
    couch.bulk_docs(s.submissions_db, [b])
    follower.follow(s)
    with Session(get_engine(s)) as sess:
        obs = sess.exec(select(ChildObservation).where(ChildObservation.child_id == child_id)).all()
        assert [(o.submission_id, o.can_swim) for o in obs] == [("uuid:a-2", True)]
        assert len(sess.exec(select(Household)).all()) == 1
        raw_a = sess.get(RawSubmission, "uuid:a-1")
        assert raw_a is not None and raw_a.superseded and not raw_a.deleted

    # An edit arriving before its original: the original lands superseded, only the edit counts.
    kid3 = child_answers(
        rng, date(2026, 11, 12), name="Danh Sóc", sex="male", dob=date(2022, 3, 1), with_pid=False
    )
    edit = one_household(
        "uuid:e-2",
        [{**kid3, "weight_kg": "13.0"}],
        head="Danh Phol",
        deprecated_id="uuid:e-1",
        visit="2026-11-12",
    )
    couch.bulk_docs(s.submissions_db, [edit])
    follower.follow(s)
    orig = one_household("uuid:e-1", [{**kid3, "weight_kg": "12.0"}], head="Danh Phol", visit="2026-11-12")
    couch.bulk_docs(s.submissions_db, [orig])
    follower.follow(s)
    with Session(get_engine(s)) as sess:
        rows = sess.exec(
            select(ChildObservation).where(
                ChildObservation.submission_id.in_(  # type: ignore
                    ["uuid:e-1", "uuid:e-2"]
                )
            )
        ).all()
        assert [(r.submission_id, r.weight_kg) for r in rows] == [("uuid:e-2", 13.0)]
        assert sess.get(RawSubmission, "uuid:e-1").superseded  # type: ignore[union-attr]
        assert sess.get(Household, "uuid:e-1") is None

    # Deleting the edit brings the original back; deleting the original removes its rows.
    doc = couch.get(s.submissions_db, "uuid:e-2")
    assert doc is not None
    couch.delete(s.submissions_db, "uuid:e-2", doc["_rev"])
    follower.follow(s)
    with Session(get_engine(s)) as sess:
        rows = sess.exec(
            select(ChildObservation).where(
                ChildObservation.submission_id.in_(  # type: ignore
                    ["uuid:e-1", "uuid:e-2"]
                )
            )
        ).all()
        assert [(r.submission_id, r.weight_kg) for r in rows] == [("uuid:e-1", 12.0)]
        assert sess.get(RawSubmission, "uuid:e-2").deleted  # type: ignore[union-attr]
    doc = couch.get(s.submissions_db, "uuid:e-1")
    couch.delete(s.submissions_db, "uuid:e-1", doc["_rev"])  # type: ignore[index]
    follower.follow(s)
    with Session(get_engine(s)) as sess:
        assert sess.get(Household, "uuid:e-1") is None
        assert not sess.exec(
            select(ChildObservation).where(ChildObservation.submission_id == "uuid:e-1")
        ).all()


def test_injury_answers_and_submissions_of_older_form_versions(pg_settings: Settings) -> None:
    """injury_12m / injury_type → bools and text, injury_drowning derived; older versions leave NULLs."""
    s = pg_settings
    couch = couch_of(s)
    rng = random.Random(8)
    visit = date(2026, 11, 10)
    base = [child_answers(rng, visit, dob=date(2016, 1, 1 + i), with_pid=False) for i in range(4)]
    for c in base:  # the factory's own injury answers are replaced below
        c.pop("injury_12m", None)
        c.pop("injury_type", None)
    new = one_household(
        "uuid:inj-1",
        [
            {**base[0], "injury_12m": "yes", "injury_type": "fall drowning"},
            {**base[1], "injury_12m": "no"},
            {**base[2], "injury_12m": "yes", "injury_type": "traffic"},
        ],
        extra={"child_drowning_deaths_12m": 1},
    )
    old = one_household("uuid:inj-old", [base[3]], head="Lê Văn Cũ", hamlet="Ấp 9")  # no injury questions
    bad = one_household("uuid:inj-bad", [], head="Võ Văn Sai", extra={"child_drowning_deaths_12m": "hai"})
    couch.bulk_docs(s.submissions_db, [new, old, bad])
    st = follower.follow(s)
    assert (st.ingested, st.quarantined) == (2, 1)
    with Session(get_engine(s)) as sess:
        obs = sess.exec(select(ChildObservation).order_by(ChildObservation.id)).all()  # type: ignore[arg-type]
        got = [(o.id, o.injury_12m, o.injury_type, o.injury_drowning) for o in obs]
        assert got == [
            ("uuid:inj-1/0", True, "fall drowning", True),
            ("uuid:inj-1/1", False, None, False),
            ("uuid:inj-1/2", True, "traffic", False),
            ("uuid:inj-old/0", None, None, None),
        ]
        assert sess.get(Household, "uuid:inj-1").child_drowning_deaths_12m == 1  # type: ignore[union-attr]
        assert sess.get(Household, "uuid:inj-old").child_drowning_deaths_12m is None  # type: ignore[union-attr]
        q = sess.get(Quarantine, "uuid:inj-bad")
        assert q is not None and "child_drowning_deaths_12m" in q.error and "hai" in q.error
        raw = sess.get(RawSubmission, "uuid:inj-1")
        assert raw is not None and raw.data["child"][0]["injury_type"] == "fall drowning"

    # An edit that takes the drowning back (a fall only) replaces the derived flag.
    edit = one_household(
        "uuid:inj-2",
        [
            {**base[0], "injury_12m": "yes", "injury_type": "fall"},
            {**base[1], "injury_12m": "no"},
            {**base[2], "injury_12m": "yes", "injury_type": "traffic"},
        ],
        deprecated_id="uuid:inj-1",
        extra={"child_drowning_deaths_12m": 0},
    )
    couch.bulk_docs(s.submissions_db, [edit])
    follower.follow(s)
    with Session(get_engine(s)) as sess:
        first = sess.get(ChildObservation, "uuid:inj-2/0")
        assert first is not None and (first.injury_type, first.injury_drowning) == ("fall", False)
        assert sess.get(ChildObservation, "uuid:inj-1/0") is None
        assert sess.get(Household, "uuid:inj-2").child_drowning_deaths_12m == 0  # type: ignore[union-attr]


def test_poison_is_quarantined_and_retried_while_the_rest_flows(pg_settings: Settings) -> None:
    s = pg_settings
    couch = couch_of(s)
    b = households(40, seed=11)
    bad_xml = one_household("uuid:poison-1", [])
    bad_xml["xml"] = bad_xml["xml"][:-30]  # truncated upload
    bad_num = one_household(
        "uuid:poison-2", [{**child_answers(random.Random(1), date(2026, 11, 1)), "work_hours_week": "nhiều"}]
    )
    bulk_insert(couch, s.submissions_db, b.docs[:20] + [bad_xml, bad_num] + b.docs[20:])
    st = follower.follow(s, limit=7)
    assert st.caught_up and st.quarantined == 2 and st.ingested == 40
    c = counts(s)
    assert (c["raw"], c["household"], c["quarantine"]) == (40, 40, 2)
    with Session(get_engine(s)) as sess:
        q = sess.get(Quarantine, "uuid:poison-2")
        assert q is not None and "work_hours_week" in q.error and "nhiều" in q.error and q.attempts == 1
        assert q.next_attempt_at is not None and q.next_attempt_at > datetime.now(UTC)
        # due now: the periodic retry tries again, it still fails, back-off grows
        sess.execute(update(Quarantine).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        sess.commit()
    r = follower.retry_quarantine(s)
    assert r == {"retried": 2, "ingested": 0, "still_failing": 2, "gone": 0}
    with Session(get_engine(s)) as sess:
        q = sess.get(Quarantine, "uuid:poison-2")
        assert q is not None and q.attempts == 2
        assert q.next_attempt_at - q.last_failed_at >= timedelta(seconds=59)  # type: ignore[operator]
        # the poisoned doc is deleted on the phone side: the retry clears it
        sess.execute(update(Quarantine).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        sess.commit()
    doc = couch.get(s.submissions_db, "uuid:poison-1")
    couch.delete(s.submissions_db, "uuid:poison-1", doc["_rev"])  # type: ignore[index]
    follower.follow(s)
    assert counts(s)["quarantine"] == 1


def test_follow_up_visit_and_registry_conflicts(pg_settings: Settings, tmp_path: Any) -> None:
    s = pg_settings
    couch = couch_of(s)
    rng = random.Random(5)
    dob = date(2018, 7, 15)
    kid = child_answers(rng, date(2026, 10, 1), name="Nguyễn Thị Ánh", sex="female", dob=dob, with_pid=False)
    v1 = one_household("uuid:f-1", [kid], head="Phạm Văn Đức", visit="2026-10-01")
    # Follow-up visit three weeks later: names typed without diacritics and extra spaces, no personal ID.
    v2 = one_household(
        "uuid:f-2", [{**kid, "child_name": "nguyen  thi anh"}], head="Pham Van Duc", visit="2026-10-22"
    )
    pid = personal_id("female", dob, rng)
    # Third visit brings the personal ID: attached to the same child.
    v3 = one_household("uuid:f-3", [{**kid, "personal_id": pid}], head="Phạm Văn Đức", visit="2026-11-05")
    # The same ID on a record with another dob: a conflict for a human, never merged.
    other = child_answers(
        rng, date(2026, 11, 6), name="Trần Văn Bé", sex="female", dob=date(2018, 2, 2), with_pid=False
    )
    v4 = one_household(
        "uuid:f-4",
        [{**other, "personal_id": pid}],
        head="Trần Văn Lớn",
        visit="2026-11-06",
        commune="30280",
        district="899",
    )
    # Same name + dob in the same household, but another (valid) personal ID: conflict too.
    pid2 = personal_id("female", dob, random.Random(99))
    v5 = one_household("uuid:f-5", [{**kid, "personal_id": pid2}], head="Phạm Văn Đức", visit="2026-11-20")
    for d in (v1, v2, v3, v4, v5):  # one page each, in this order
        couch.bulk_docs(s.submissions_db, [d])
        follower.follow(s)
    with Session(get_engine(s)) as sess:
        ids = {o.submission_id: o.child_id for o in sess.exec(select(ChildObservation))}
        assert ids["uuid:f-1"] == ids["uuid:f-2"] == ids["uuid:f-3"]
        assert ids["uuid:f-4"] != ids["uuid:f-1"] and ids["uuid:f-5"] != ids["uuid:f-1"]
        reasons = sorted(r[0] for r in sess.execute(text("SELECT reason FROM registryconflict")))
        assert reasons == [
            "same name+dob in one household, different personal IDs",
            "same personal ID, different dob/sex",
        ]
        from aggregator.models import Child

        child = sess.get(Child, ids["uuid:f-1"])
        assert child is not None and child.personal_id_hash == pid_pseudonym(pseudonym_key(s), pid)
        assert (child.first_seen, child.last_seen) == (date(2026, 10, 1), date(2026, 11, 5))
    # Operators see both conflicts, for a person to resolve (no names, no personal IDs printed).
    out = subprocess.run(
        [CARECHECK, "registry", "duplicates"], env=settings_env(s), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "2 mục / entries" in out.stdout and "same personal ID" in out.stdout
    assert ids["uuid:f-4"] in out.stdout.replace("\n", "") or ids["uuid:f-4"][:12] in out.stdout
    assert pid not in out.stdout and "Ánh" not in out.stdout
    # Replaying all five changes nothing (no new children, no new conflicts).
    before = snapshot(s)
    with Session(get_engine(s)) as sess:
        sess.execute(update(Checkpoint).values(seq="0"))
        sess.commit()
    follower.follow(s)
    assert snapshot(s) == before


def test_quality_flags_counted_not_dropped(pg_settings: Settings) -> None:
    s = pg_settings
    rng = random.Random(8)
    visit = date(2026, 11, 10)
    kids = [
        {
            **child_answers(rng, visit, dob=date(2025, 11, 10), sex="male", with_pid=False),
            "weight_kg": "30",
            "height_cm": "75",
        },  # WAZ/WHZ way off
        {
            **child_answers(rng, visit, dob=date(2022, 1, 1), with_pid=False),
            "attends_school": "yes",
            "school_level": "lower_secondary",
        },  # 4 years old in THCS
        {**child_answers(rng, visit, dob=date(2027, 1, 1), with_pid=False)},  # born after the visit
        {
            **child_answers(rng, visit, dob=date(2013, 1, 1), with_pid=False),
            "work_hours_week": "90",
            "chore_hours_week": "40",
            "personal_id": "091299123456",
        },  # 130 h; pid: wrong sex/year
    ]
    couch_of(s).bulk_docs(s.submissions_db, [one_household("uuid:q-1", kids)])
    st = follower.follow(s)
    assert st.ingested == 1 and st.quarantined == 0
    with Session(get_engine(s)) as sess:
        codes = sorted(f.code for f in sess.exec(select(QualityFlag)))
        assert len(sess.exec(select(ChildObservation)).all()) == 4  # flagged, never dropped
    assert "waz_implausible" in codes and "whz_implausible" in codes
    assert {"age_school_level", "dob_after_visit", "hours_implausible", "personal_id_invalid"} <= set(codes)


def test_racing_pages_apply_once(pg_settings: Settings) -> None:
    """Two followers racing on the same checkpoint (lock bypassed): compare-and-swap lets one page win."""
    s = pg_settings
    b = households(150, seed=21)
    bulk_insert(couch_of(s), s.submissions_db, b.docs)
    lost = []

    def run() -> None:
        couch = couch_of(s)
        while True:
            n, out, _ = follower.run_page(s, couch, limit=25)
            if n == 0:
                return
            if out is None:
                lost.append(1)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    c = counts(s)
    assert (c["raw"], c["household"], c["obs"], c["child"]) == (150, 150, b.children, b.children)
    assert lost, "the threads never raced (no lost compare-and-swap): the test proves nothing"


def test_edit_correcting_a_dob_leaves_no_orphan_child(pg_settings: Settings) -> None:
    s = pg_settings
    couch = couch_of(s)
    rng = random.Random(12)
    kid = child_answers(
        rng, date(2026, 11, 3), name="Thạch Thị Sa", sex="female", dob=date(2021, 3, 3), with_pid=False
    )
    couch.bulk_docs(s.submissions_db, [one_household("uuid:d-1", [kid], head="Thạch Văn Rết")])
    follower.follow(s)
    assert counts(s)["child"] == 1
    fixed = one_household(
        "uuid:d-2", [{**kid, "dob": "2020-03-03"}], head="Thạch Văn Rết", deprecated_id="uuid:d-1"
    )
    couch.bulk_docs(s.submissions_db, [fixed])
    follower.follow(s)
    c = counts(s)
    assert (c["obs"], c["child"], c["household"]) == (1, 1, 1)
    with Session(get_engine(s)) as sess:
        obs = sess.exec(select(ChildObservation)).one()
        assert obs.submission_id == "uuid:d-2" and obs.age_years == 6


def test_facility_check_and_unknown_forms(pg_settings: Settings) -> None:
    from lxml import etree

    s = pg_settings
    root = etree.Element("commune_facility_check", id="commune_facility_check", version="1")
    for k, v in (
        ("visit_date", "2026-10-15"),
        ("district", "911"),
        ("commune", "31078"),
        ("station_name", "Trạm y tế xã"),
        ("uses_national_immunisation_system", "yes"),
        ("digital_child_health_records", "no"),
        ("commune_play_space", "yes"),
        ("children_under_1_registered", "31"),
    ):
        etree.SubElement(root, k).text = v
    etree.SubElement(etree.SubElement(root, "meta"), "instanceID").text = "uuid:fac-1"
    fac = submission_doc(
        etree.tostring(root, encoding="unicode"), "uuid:fac-1", form_id="commune_facility_check"
    )
    other = submission_doc(
        "<other_form id='other_form'><q>1</q></other_form>", "uuid:o-1", form_id="other_form"
    )
    couch_of(s).bulk_docs(s.submissions_db, [fac, other, {"_id": "note-1", "type": "note"}])
    st = follower.follow(s)
    assert (st.ingested, st.quarantined) == (2, 0)
    with Session(get_engine(s)) as sess:
        from aggregator.models import FacilityCheck

        f = sess.get(FacilityCheck, "uuid:fac-1")
        assert f is not None
        assert (
            f.uses_national_immunisation_system,
            f.digital_child_health_records,
            f.commune_play_space,
        ) == (True, False, True)
        assert (f.year, f.quarter, f.month, f.area_type, f.commune_2025_code) == (
            2026,
            4,
            10,
            "island",
            "31078",
        )
        assert sess.get(RawSubmission, "uuid:o-1") is not None  # landed raw, nothing to flatten
    assert counts(s)["household"] == 0

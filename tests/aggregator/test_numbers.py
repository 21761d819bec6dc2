"""Issue 12's rules end to end, hand-worked: documents in a real store → the follower → live indicator cells.

Rule 1 (one current version per record), rule 2 (latest visit: same-day ties by the form end time), rule
3 (households once per period; a 12-month event once per household), rule 6 (WHO-implausible z-scores;
family-based care), at commune, district and province, in both hierarchies, on PostgreSQL and SQLite; then
an officer picks the other version (``carecheck conflicts choose``) and the live figures follow without a
rebuild.

The data (year 2026; P1 31078 and P2 31081 in Phú Quốc 911 → 2025 special zone 31078; H1 30766 in Hà Tiên
900 → 2025 ward 30766):
  HA  P1  visit 1 Mar: original A (unfenced yes, hotline yes), edited in two places — B finished 2 Mar 09:00
          (unfenced no, hotline yes), C finished 2 Mar 15:00 (unfenced yes, hotline no): C counts. Every
          version reports 1 birth, 1 under-5 death, 1 child drowning death.
  HB  P1  visits 10 Apr (unfenced yes, hotline no) and 10 Sep (unfenced no, hotline yes); both report the same
          under-5 drowning death and birth: the year counts the September visit only.
  HC  P2  two visits on 5 May: 09:20 (unfenced yes) and 15:20 (unfenced no); the 09:20 one has the greater
          instanceID, so a tie broken by the id would pick it. Hotline yes both; 1 birth, no death; their
          11-year-old was answered Khmer at 09:20 and Kinh at 15:20 (the registry keeps Kinh).
  HD  H1  visit 1 Jun (unfenced no, hotline yes, 0 births, 0 deaths): boy 24 m with height 62 cm (HAZ
          −8.45, WHZ 6.51: implausible, flagged, left out of stunting and wasting; WAZ −0.87 kept), girl 24 m
          at 79 cm (HAZ −2.29: stunted), a 10-year-old whose father died living with "both parents" (not
          family care: an inconsistent answer), a 12-year-old whose mother died living with relatives
          (family care).
  Station H1: checked twice on 1 Jun, 09:20 yes/yes and 15:20 no/no (instanceIDs again the wrong way round).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlmodel import Session, select

from aggregator import follower, rollup
from aggregator.choices import choose_version
from aggregator.db import dispose_engines, get_engine, init_db
from aggregator.models import Child, Household, QualityFlag, RawSubmission
from core.couch import Couch
from core.errors import BadRequest
from core.services import CouchProcess
from core.settings import Settings
from edge.conflicts import find_conflicts
from tests.aggregator.factory import household_xml, submission_doc
from tests.conftest import make_settings

P1, P2, H1 = "31078", "31081", "30766"
DISTRICT = {P1: "911", P2: "911", H1: "900"}


@pytest.fixture(params=["postgresql", "sqlite"])
def live(request: pytest.FixtureRequest, tmp_path: Path, couch_server: CouchProcess) -> Iterator[Settings]:
    """Settings with the follower's indicator refresh on (the live cells are what is tested)."""
    over: dict[str, Any] = {"ingest_hooks": True}
    if request.param == "postgresql":
        over["database_url"] = request.getfixturevalue("pg_url")
    s = make_settings(tmp_path, couch_server, **over)
    Couch(couch_server.url, couch_server.user, couch_server.password).ensure_db(s.submissions_db)
    init_db(s)
    yield s
    dispose_engines()


def household(
    iid: str,
    commune: str,
    visit: str,
    end: str,
    answers: dict[str, Any],
    children: list[dict[str, Any]] | None = None,
    *,
    head: str,
    deprecated_id: str | None = None,
    received: str | None = None,
) -> dict[str, Any]:
    kids = children or []
    a = {
        "start": end,
        "end": end,
        "visit_date": visit,
        "district": DISTRICT[commune],
        "commune": commune,
        "hamlet": "Ấp 1",
        "consent": "yes",
        "head_name": head,
        "poverty_status": "neither",
        "children_count": len(kids),
        **answers,
    }
    xml = household_xml(iid, a, kids, deprecated_id=deprecated_id)
    return submission_doc(xml, iid, deprecated_id=deprecated_id, received_at=received or f"{visit}T12:00:00Z")


def facility(iid: str, commune: str, visit: str, end: str, yes: bool) -> dict[str, Any]:
    root = etree.Element("commune_facility_check", id="commune_facility_check", version="2026112901")
    answer = "yes" if yes else "no"
    for name, value in (
        ("start", end),
        ("end", end),
        ("visit_date", visit),
        ("district", DISTRICT[commune]),
        ("commune", commune),
        ("station_name", "Trạm y tế"),
        ("uses_national_immunisation_system", answer),
        ("digital_child_health_records", answer),
        ("commune_play_space", answer),
    ):
        etree.SubElement(root, name).text = value
    meta = etree.SubElement(root, "meta")
    etree.SubElement(meta, "instanceID").text = iid
    xml = etree.tostring(root, encoding="unicode")
    return submission_doc(xml, iid, form_id="commune_facility_check", received_at=f"{visit}T12:00:00Z")


def child(name: str, sex: str, dob: str, **answers: Any) -> dict[str, Any]:
    return {
        "child_name": name,
        "sex": sex,
        "dob": dob,
        "ethnicity": "kinh",
        "birth_registered": "yes",
        **answers,
    }


EVENTS = {"births_12m": 1, "under5_deaths_12m": 1, "child_drowning_deaths_12m": 1}
A, B, C = "uuid:ha-original", "uuid:ha-edit-morning", "uuid:ha-edit-afternoon"


def documents() -> list[dict[str, Any]]:
    yes, no = "yes", "no"
    return [
        household(
            A,
            P1,
            "2026-03-01",
            "2026-03-01T10:00:00+07:00",
            {"unfenced_water": yes, "hotline_111_aware": yes, **EVENTS},
            head="Nguyễn Văn A",
        ),
        household(
            B,
            P1,
            "2026-03-01",
            "2026-03-02T09:00:00+07:00",
            {"unfenced_water": no, "hotline_111_aware": yes, **EVENTS},
            head="Nguyễn Văn A",
            deprecated_id=A,
            received="2026-03-03T01:00:00Z",
        ),
        household(
            C,
            P1,
            "2026-03-01",
            "2026-03-02T15:00:00+07:00",
            {"unfenced_water": yes, "hotline_111_aware": no, **EVENTS},
            head="Nguyễn Văn A",
            deprecated_id=A,
            received="2026-03-02T09:00:00Z",
        ),
        household(
            "uuid:hb-apr",
            P1,
            "2026-04-10",
            "2026-04-10T10:00:00+07:00",
            {"unfenced_water": yes, "hotline_111_aware": no, **EVENTS},
            head="Trần Thị B",
        ),
        household(
            "uuid:hb-sep",
            P1,
            "2026-09-10",
            "2026-09-10T10:00:00+07:00",
            {"unfenced_water": no, "hotline_111_aware": yes, **EVENTS},
            head="Trần Thị B",
        ),
        household(
            "uuid:zz-hc-morning",
            P2,
            "2026-05-05",
            "2026-05-05T09:20:00+07:00",
            {
                "unfenced_water": yes,
                "hotline_111_aware": yes,
                "births_12m": 1,
                "under5_deaths_12m": 0,
                "child_drowning_deaths_12m": 0,
            },
            [child("Lê Thị Năm", "female", "2015-05-05", ethnicity="khmer")],
            head="Lê Văn C",
        ),
        household(
            "uuid:aa-hc-afternoon",
            P2,
            "2026-05-05",
            "2026-05-05T15:20:00+07:00",
            {
                "unfenced_water": no,
                "hotline_111_aware": yes,
                "births_12m": 1,
                "under5_deaths_12m": 0,
                "child_drowning_deaths_12m": 0,
            },
            [child("Lê Thị Năm", "female", "2015-05-05", ethnicity="kinh")],
            head="Lê Văn C",
        ),
        household(
            "uuid:hd",
            H1,
            "2026-06-01",
            "2026-06-01T10:00:00+07:00",
            {
                "unfenced_water": no,
                "hotline_111_aware": yes,
                "births_12m": 0,
                "under5_deaths_12m": 0,
                "child_drowning_deaths_12m": 0,
            },
            [
                child("Phạm Văn Một", "male", "2024-06-01", weight_kg="11.0", height_cm="62.0"),
                child("Phạm Thị Hai", "female", "2024-06-01", weight_kg="10.5", height_cm="79.0"),
                child(
                    "Phạm Văn Ba",
                    "male",
                    "2016-01-15",
                    orphan_status="father_died",
                    care_arrangement="both_parents",
                ),
                child(
                    "Phạm Thị Bốn",
                    "female",
                    "2014-02-20",
                    orphan_status="mother_died",
                    care_arrangement="relatives",
                ),
            ],
            head="Phạm Văn D",
        ),
        facility("uuid:zz-station-morning", H1, "2026-06-01", "2026-06-01T09:20:00+07:00", True),
        facility("uuid:aa-station-afternoon", H1, "2026-06-01", "2026-06-01T15:20:00+07:00", False),
    ]


# Hand-worked year-2026 (numerator, denominator) per legacy commune; districts and provinces add them up.
EXPECTED: dict[str, dict[str, tuple[float, float]]] = {
    # HA counts once with C (yes); HB with September (no); HC with 15:20 (no); HD no
    "unfenced_water_households": {P1: (1, 2), P2: (0, 1), H1: (0, 1)},
    # C no; HB September yes; HC yes; HD yes
    "hotline_111_awareness": {P1: (1, 2), P2: (1, 1), H1: (1, 1)},
    # one drowning death per household and year: HA 1 (not 2 for its two edits), HB 1 (not 2 for two visits)
    "child_drowning_deaths": {P1: (2, 2), P2: (0, 1), H1: (0, 1)},
    "u5_deaths_per_1000_births": {P1: (2, 2), P2: (0, 1)},
    # the implausible HAZ/WHZ child is in neither numerator nor denominator; its WAZ stays
    "stunting_u5": {H1: (1, 1)},
    "wasting_u5": {H1: (0, 1)},
    "underweight_u5": {H1: (0, 2)},
    # father died + "both parents" is not family care; mother died + relatives is
    "orphans_family_care": {H1: (1, 2)},
    # the 15:20 check (no) is the latest of the day, whatever the instanceIDs
    "stations_national_immunisation": {H1: (0, 1)},
}


def expected_at(code: str, level: str, hierarchy: str) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for commune, (n, d) in EXPECTED[code].items():
        if level == "commune":
            unit = commune if hierarchy == "legacy" else {P1: "31078", P2: "31078", H1: "30766"}[commune]
        else:
            unit = DISTRICT[commune] if level == "district" else "91"
        n0, d0 = out.get(unit, (0.0, 0.0))
        out[unit] = (n0 + n, d0 + d)
    return out


def figures(s: Settings, level: str, hierarchy: str) -> dict[str, dict[str, tuple[float, float]]]:
    with Session(get_engine(s)) as session:
        rows = rollup.query_indicators(
            session,
            level=level,
            area=None,
            period="2026",
            hierarchy=hierarchy,
            indicators=list(EXPECTED),
            suppress=False,
        )
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        if r.denominator:
            out.setdefault(r.indicator, {})[r.org_unit] = (r.numerator or 0.0, r.denominator)
    return out


def check_all(s: Settings, expected: dict[str, dict[str, tuple[float, float]]] | None = None) -> None:
    for hierarchy, levels in (
        ("legacy", ("commune", "district", "province")),
        ("2025", ("commune", "province")),
    ):
        for level in levels:
            got = figures(s, level, hierarchy)
            for code in EXPECTED:
                assert got.get(code, {}) == expected_at(code, level, hierarchy), (code, level, hierarchy)


def test_the_rules_hand_worked_live_and_rebuilt(live: Settings) -> None:
    s = live
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    couch.bulk_docs(s.submissions_db, documents())
    stats = follower.follow(s, couch=couch)
    assert stats.caught_up and stats.quarantined == 0
    with Session(get_engine(s)) as session:
        raw = {r.id: r for r in session.exec(select(RawSubmission))}
        # rule 1: A replaced; B lost to C; only C has rows
        assert raw[A].superseded and raw[B].lost_to == C and raw[C].lost_to is None
        ha = [h for h in session.exec(select(Household)) if h.submission_id in (A, B, C)]
        assert [h.submission_id for h in ha] == [C]
        # rule 2 in the registry: the child of HC was last seen at 15:20 (answered Kinh), not at 09:20
        [nam] = [c for c in session.exec(select(Child)) if c.commune_code == P2]
        assert nam.ethnicity == "kinh" and str(nam.last_seen) == "2026-05-05"
        flags = {f.code for f in session.exec(select(QualityFlag))}
        assert {"haz_implausible", "whz_implausible"} <= flags
    check_all(s)  # the live cells, refreshed page by page
    rollup.rebuild(get_engine(s))
    check_all(s)  # a full rebuild agrees

    # carecheck conflicts names C, by the same rule
    groups = find_conflicts(couch, s)
    assert [(g.record, g.winner.id) for g in groups] == [(A, C)]
    # an officer picks B: stored, applied, the live cells follow without a rebuild
    with pytest.raises(BadRequest):
        choose_version(s, A, A, chosen_by="tinh_demo", couch=couch)  # not a current version
    out = choose_version(s, A, B, chosen_by="tinh_demo", couch=couch)
    assert out["counts"] == B and out["versions"] == [B, C]
    EXPECTED_B = {**EXPECTED}
    EXPECTED_B["unfenced_water_households"] = {P1: (0, 2), P2: (0, 1), H1: (0, 1)}
    EXPECTED_B["hotline_111_awareness"] = {P1: (2, 2), P2: (1, 1), H1: (1, 1)}
    saved = dict(EXPECTED)
    try:
        EXPECTED.update(EXPECTED_B)
        check_all(s)
        with Session(get_engine(s)) as session:
            assert session.get(RawSubmission, C).lost_to == B  # type: ignore[union-attr]
        assert [g.winner.id for g in find_conflicts(couch, s, {A: B})] == [B]
        # the CLI: the listing names the officer's pick; a version that is not a head is refused in one line
        import json
        import subprocess

        from tests.aggregator.conftest import CARECHECK, settings_env

        env = settings_env(s)
        listed = subprocess.run([CARECHECK, "conflicts", "--json"], env=env, capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        [group] = json.loads(listed.stdout)
        assert group["winner"]["id"] == B and group["chosen_by_officer"] and group["record"] == A
        bad = subprocess.run(
            [CARECHECK, "conflicts", "choose", A, A], env=env, capture_output=True, text=True
        )
        assert bad.returncode == 1 and "không phải phiên bản hiện hành" in bad.stderr + bad.stdout
        assert len((bad.stderr + bad.stdout).strip().splitlines()) == 1
        # replaying the feed keeps the officer's choice
        follower.reset_checkpoint(s)
        follower.follow(s, couch=couch)
        rollup.rebuild(get_engine(s))
        check_all(s)
    finally:
        EXPECTED.clear()
        EXPECTED.update(saved)


# The release before issue 12 (the layout commit on main): its code fills a store as today's release does.
RELEASE = "eff1e82"


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_replay_corrects_a_store_filled_by_the_previous_release(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, couch_server: CouchProcess
) -> None:
    """``carecheck ingest --replay`` over rows written by the previous release's code (run from its own git
    tree, on its own schema revision) yields the corrected numbers."""
    import subprocess
    import sys

    from core.settings import ROOT
    from tests.aggregator.conftest import CARECHECK, settings_env

    old_tree = tmp_path / "release"
    have = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{RELEASE}^{{commit}}"], check=False)
    if have.returncode != 0:
        pytest.skip(f"the previous release ({RELEASE}) is not in this clone's history")
    old_tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", RELEASE], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
    over: dict[str, Any] = {"ingest_hooks": True}
    if backend == "postgresql":
        over["database_url"] = request.getfixturevalue("pg_url")
    s = make_settings(tmp_path, couch_server, **over)  # no init_db: the old release creates its schema
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    couch.ensure_db(s.submissions_db)
    couch.bulk_docs(s.submissions_db, documents())
    env = {**settings_env(s), "PYTHONPATH": str(old_tree)}
    script = (
        "from core.settings import get_settings; from aggregator.follower import follow; "
        "from aggregator.rollup import rebuild; from aggregator.db import init_db; s = get_settings(); "
        "print(follow(s).as_dict()); rebuild(init_db(s))"
    )
    old = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=old_tree, capture_output=True, text=True, timeout=300
    )
    assert old.returncode == 0, old.stderr[-3000:]
    # today's release counted both edits of HA and both visits of HB
    assert figures(s, "commune", "legacy")["child_drowning_deaths"][P1] == (4.0, 4.0)
    env = settings_env(s)
    for args in (["ingest", "--replay", "--once"], ["indicators", "rebuild"]):
        out = subprocess.run([CARECHECK, *args], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
    check_all(s)
    dispose_engines()


def test_attribute_disclosure_on_demo_like_data(tmp_path: Path, couch_server: CouchProcess) -> None:
    """Rule 10 on realistic data (the simulator-like factory: 800 households ingested for real): for every
    indicator and period type, no published group of hidden cells is all-or-nothing; and the plain
    small-cell rule alone would have left some (the attack is real on this data)."""
    from aggregator import suppression
    from aggregator.indicators import DIMENSIONS, load
    from tests.aggregator.factory import bulk_insert, households
    from tests.indicators.test_suppression import homogeneous_remainders

    s = make_settings(tmp_path, couch_server, ingest_hooks=False, ingest_page_size=500)
    couch = Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password)
    couch.ensure_db(s.submissions_db)
    engine = init_db(s)
    bulk_insert(couch, s.submissions_db, households(800, seed=28).docs)
    assert follower.follow(s, couch=couch, budget_s=300).caught_up
    rollup.rebuild(engine)
    codes = list(load())
    leaks_without_rule = 0
    with Session(engine) as session:
        for period in ("2026", "2026Q4"):
            cells: dict[suppression.Key, float] = {}
            nums: dict[suppression.Key, float] = {}
            for level, hierarchies in (
                ("province", ["legacy"]),
                ("district", ["legacy"]),
                ("commune", ["legacy", "2025"]),
            ):
                for h in hierarchies:
                    for dim in (None, *DIMENSIONS):
                        for r in rollup.query_indicators(
                            session,
                            level=level,
                            area=None,
                            period=period,
                            hierarchy=h,
                            indicators=codes,
                            disaggregate_by=dim,
                            suppress=False,
                        ):
                            if r.denominator:
                                dv = (r.disaggregation or {}).get(dim or "", "")
                                x = (r.indicator, suppression.unit_kind(level, h), r.org_unit, dim or "", dv)
                                cells[x], nums[x] = float(r.denominator), float(r.numerator or 0)
            hidden = suppression.hidden_cells(session.connection(), period, codes, s.min_cell_size)
            assert hidden and homogeneous_remainders(cells, nums, hidden) == []
            p0, c0 = suppression.pattern(cells, s.min_cell_size)
            leaks_without_rule += len(homogeneous_remainders(cells, nums, p0 | c0))
    assert leaks_without_rule > 0
    dispose_engines()

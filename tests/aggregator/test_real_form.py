"""The real compiled form, filled by the device simulator and by the real form engine: answers reach SQL."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from aggregator import follower
from aggregator.db import get_engine
from aggregator.models import ChildObservation, FacilityCheck, Household, QualityFlag, RawSubmission
from core.ages import age
from core.couch import Couch
from core.settings import ROOT, Settings
from tests.aggregator.conftest import counts
from tests.aggregator.factory import submission_doc
from tests.support.form_engine import FormEngine, child_answers, facility_script, household_script

N = 150


@pytest.fixture(scope="module")
def built_form(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path, str]:
    build = pytest.importorskip("forms.build")
    out = tmp_path_factory.mktemp("forms")
    built = build.build_one(ROOT / "forms" / "xlsforms" / "household_child_check.xlsx", out)
    return bytes(built.xml_bytes()), out, built.version


def test_simulated_households_through_the_compiled_form(
    pg_settings: Settings, built_form: tuple[bytes, Path, str]
) -> None:
    from simulator.fill import fill, load_form
    from simulator.households import generate

    xml, build_dir, version = built_form
    s = pg_settings.model_copy(update={"forms_build_dir": build_dir})
    # The follower reads the repeats from the compiled form in the build directory.
    assert follower._repeats_of(s)("household_child_check", version) == {"child"}
    form = load_form(xml)
    hhs = generate(N, seed=404)
    docs = []
    for h in hhs:
        f = fill(form, h, photo_bytes=100)
        docs.append(submission_doc(f.xml.decode("utf-8"), f.instance_id, form_id=form.form_id))
    Couch(s.couchdb_url, s.couchdb_user, s.couchdb_password).bulk_docs(s.submissions_db, docs)
    st = follower.follow(s)
    assert st.quarantined == 0 and st.ingested == N
    n_children = sum(len(h.children) for h in hhs)
    c = counts(s)
    assert (c["raw"], c["household"], c["obs"]) == (N, N, n_children)

    with Session(get_engine(s)) as sess:
        # Every column the simulator answers for some child is filled for some child (no name mismatch).
        for col in (
            "sex",
            "ethnicity",
            "age_years",
            "age_months",
            "birth_registered",
            "has_valid_personal_id",
            "attends_school",
            "school_level",
            "imm_card_seen",
            "weight_kg",
            "height_cm",
            "waz",
            "haz",
            "whz",
            "can_swim",
            "functional_difficulty",
            "orphan_status",
            "care_arrangement",
            "work_hours_week",
            "chore_hours_week",
            "special_groups",
            "in_special_circumstance",
            "at_risk",
            "play_space_access",
            "violence_signs",
            "injury_12m",
            "injury_type",
            "injury_drowning",
            "area_type",
            "commune_2025_code",
        ):
            filled = sess.exec(select(func.count()).where(getattr(ChildObservation, col).is_not(None))).one()
            assert filled > 0, f"ChildObservation.{col} is never filled from the real form"
        for col in (
            "poverty_status",
            "unfenced_water",
            "hotline_111_aware",
            "births_12m",
            "child_drowning_deaths_12m",
            "consent",
            "school_year",
            "area_type",
        ):
            assert sess.exec(select(func.count()).where(getattr(Household, col).is_not(None))).one() > 0, col
        # Our age agrees with the form's own calculate (age_years) for every child.
        by_id = {h.instance_id: h for h in hhs}
        for o in sess.exec(select(ChildObservation)):
            sub, idx = o.id.rsplit("/", 1)
            answers = by_id[sub].children[int(idx)]
            assert str(o.age_years) == answers["age_years"]
            # injuries: every child answered; the kinds as given; drowning derived from them
            assert o.injury_12m is (answers["injury_12m"] == "yes")
            assert o.injury_type == answers.get("injury_type")
            assert o.injury_drowning is ("drowning" in answers.get("injury_type", "").split())
        for hh in sess.exec(select(Household).where(Household.consent.is_(True))):  # type: ignore[union-attr]
            want = by_id[hh.submission_id].answers["child_drowning_deaths_12m"]
            assert str(hh.child_drowning_deaths_12m) == want
        # The simulator's deliberately implausible weights are flagged, not dropped.
        odd = sum(h.odd.count("implausible_weight") for h in hhs)
        flagged = sess.exec(
            select(func.count(func.distinct(QualityFlag.child_obs_id))).where(
                QualityFlag.code.in_(["waz_implausible", "whz_implausible"])
            )
        ).one()  # type: ignore[attr-defined]
        assert flagged >= odd
        # No names in the landed instance.
        for raw in sess.exec(select(RawSubmission)):
            h = by_id[raw.id]
            text = str(raw.data)
            assert (
                h.answers.get("head_name", "\x00") not in text
                and "head_name" not in text
                and "child_name" not in text
            )


# ---------------------------------------------------------------- the real form engine → the server → SQL
@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> FormEngine:
    return FormEngine.build(tmp_path_factory.mktemp("javarosa"))


def test_engine_filled_forms_through_the_server_and_ingestion(
    pg_settings: Settings, couch: Couch, engine: FormEngine
) -> None:
    """Both forms filled by JavaRosa as ODK Collect fills them, posted to the sync server (OpenRosa, Digest)
    on a real pouchdb-server, ingested into PostgreSQL: 0 children gives a household with no child; every
    child's stored age equals the form's own calculate and core.ages around the 1st…18th birthdays."""
    from fastapi.testclient import TestClient

    from console.app import create_app
    from forms.build import build_all
    from tests.sync_server.conftest import PASSWORD, add_accounts
    from tests.sync_server.helpers import parts

    s = pg_settings
    built = {b.form_id: b for b in build_all(ROOT / "forms" / "xlsforms", s.effective_forms_build_dir)}
    visit = date(2025, 3, 1)
    dobs = sorted(
        {
            visit.replace(year=visit.year - n) + timedelta(days=d)
            for n in (1, 2, 3, 5, 6, 11, 15, 16)
            for d in (-1, 0, 1)
        }
        | {date(2007, 3, 2)}  # the last day before the 18th birthday
    )
    households = [
        household_script("2025-03-01", []),  # 0 children
        household_script("2025-03-01", [child_answers(d.isoformat()) for d in dobs[:15]]),
        household_script("2025-03-01", [child_answers(d.isoformat()) for d in dobs[15:]]),
        household_script("2025-03-01", [], consent="no"),
    ]
    fills = engine.fill(built["household_child_check"].xml_path, households)
    (facility,) = engine.fill(built["commune_facility_check"].xml_path, [facility_script("2025-03-03")])
    assert all(f.status == "complete" for f in [*fills, facility]), [(f.status, f.at) for f in fills]
    zero = fills[0]
    assert zero.xml is not None and b"<child>" not in zero.xml and b"<child " not in zero.xml

    add_accounts(s, couch)
    with TestClient(create_app(s), base_url="http://phone.test") as client:
        for f, user in [*((f, "ctv_pq") for f in fills), (facility, "ctv_pq")]:  # officers do not submit
            assert f.xml is not None
            r = client.post(
                "/submission?deviceID=collect:javarosa-test",
                files=parts(f.xml),
                auth=httpx.DigestAuth(user, PASSWORD),
            )
            assert r.status_code == 201, r.text
    st = follower.follow(s)
    assert st.ingested == 5 and st.quarantined == 0

    ids = [f.values("instanceID")[0] for f in fills]
    with Session(get_engine(s)) as sess:
        hh = {h.submission_id: h for h in sess.exec(select(Household))}
        assert hh[ids[0]].n_children == 0 and hh[ids[0]].consent is True
        assert hh[ids[3]].consent is False
        obs = sess.exec(select(ChildObservation)).all()
        assert {o.submission_id for o in obs} == {ids[1], ids[2]} and len(obs) == len(dobs)
        flags = {f.code for f in sess.exec(select(QualityFlag))}
        assert "child_with_zero_count" not in flags and "visit_after_received" not in flags
        assert "age_18_or_more" not in flags
        for f, sub in ((fills[1], ids[1]), (fills[2], ids[2])):
            form_ages = list(zip(f.values("dob"), f.values("age_years"), f.values("age_months"), strict=True))
            stored = sorted(
                (o for o in obs if o.submission_id == sub), key=lambda o: int(o.id.rsplit("/", 1)[1])
            )
            assert len(stored) == len(form_ages)
            for o, (dob, years, months) in zip(stored, form_ages, strict=True):
                assert (str(o.age_years), str(o.age_months)) == (years, months), dob
                assert (o.age_years, o.age_months) == age(date.fromisoformat(dob), visit), dob
        (check,) = sess.exec(select(FacilityCheck)).all()
        assert check.commune_code == "31078" and check.uses_national_immunisation_system is True

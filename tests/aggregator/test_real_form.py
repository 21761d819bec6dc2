"""The real compiled form filled by the device simulator: every answer reaches its SQL column."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from aggregator import follower
from aggregator.db import get_engine
from aggregator.models import ChildObservation, Household, QualityFlag, RawSubmission
from core.couch import Couch
from core.settings import ROOT, Settings
from tests.aggregator.conftest import counts
from tests.aggregator.factory import submission_doc

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

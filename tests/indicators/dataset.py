"""A small hand-built dataset (year 2026) whose indicator values are worked out by hand in EXPECTED_YEAR.

Communes: P1 31078 and P2 31081 (Phú Quốc 911, both → 2025 special zone 31078); H1 30766 and H2 30784 (Hà
Tiên 900,
both → 2025 ward 30766); H3 30769 (Hà Tiên 900 → 2025 ward 30769); one child with no commune (province only).

Children (obs = one visit; stock indicators use the latest visit of each child in the period):
  c1  P1 Feb: 10 y male kinh, CEDC, primary, cannot swim | P1 May: no longer CEDC, at risk, can swim  (stock!)
  c2  P1 Feb: 4 y (50 m) female khmer, preschool, birth registered, haz -2.5 waz -1.0 whz -2.1
  c3  P2 Nov: 18 m male kinh, card seen with all 10 antigens, birth not registered, haz -1 waz -2.2
  c4  P2 Nov: 15 m female hoa, card seen without measles1, registered, personal id, haz -3 waz -3 whz -1
  c5  H1 May: 5 y (65 m) male khmer, preschool, CEDC supported, works 2 h/week
  c6  H1 May and H1 Nov (same answers): 13 y female khmer, lower secondary, swims, chores 25 h, at risk,
      father died (one parent), functional difficulty, abuse signs referred within 24 h (flow: counted twice)
  c7  H2 May: 16 y male other, out of school, works 45 h, both parents died (institution), abuse signs not
  referred
  c8  H3 Nov: 7 y female kinh, primary, cannot swim, mother died (relatives), abuse referred but not within
  24 h
  c9  H2 Feb: 12 y male kinh, primary, not working | H3 Nov: CEDC supported, works 14 h  (moved commune)
  c10 no commune, Nov: 3 y (38 m) female kinh, not in school, birth registration "don't know"
Households (flows): h1 P1 Feb, h2 P1 May, h3 H1 May, h4 H3 Nov (no consent), h5 H1 Nov.
Injuries (plan II.2; asked from the form version after February, so P1's February visit has none of them):
  c1 May fall · c3 burn · c4 no · c5 traffic · c6 drowning + fall (both visits) · c7 drowning at 16 (not < 16)
  · c8 no · c9 H2 Feb animal, H3 Nov no · c10 drowning (no commune) · c1 Feb, c2 not asked.
  Households' child drowning deaths: h1 not asked, h2 1, h3 0, h4 (no consent), h5 1.
Health stations (stock per commune): P1 Feb uses the system, P1 Nov does not (latest); H1 May uses it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from aggregator.models import ChildObservation, FacilityCheck, Household, RawSubmission
from core.orgunits import communes

P1, P2, H1, H2, H3 = "31078", "31081", "30766", "30784", "30769"
FEB, MAY, NOV = date(2026, 2, 10), date(2026, 5, 12), date(2026, 11, 10)
ALL_ANTIGENS = "bcg hepb0 penta1 penta2 penta3 opv1 opv2 opv3 ipv measles1"

C1 = dict(
    child_id="c1",
    sex="male",
    ethnicity="kinh",
    age_years=10,
    age_months=125,
    has_valid_personal_id=True,
    attends_school=True,
    school_level="primary",
    functional_difficulty=False,
    play_space_access=True,
    orphan_status="none",
    care_arrangement="both_parents",
    work_hours_week=0,
    chore_hours_week=0,
    support_received=None,
    violence_signs=False,
)
C6 = dict(
    child_id="c6",
    sex="female",
    ethnicity="khmer",
    age_years=13,
    age_months=160,
    attends_school=True,
    school_level="lower_secondary",
    can_swim=True,
    work_hours_week=10,
    chore_hours_week=25,
    injury_12m=True,
    injury_type="drowning fall",
    injury_drowning=True,
    in_special_circumstance=False,
    at_risk=True,
    orphan_status="father_died",
    care_arrangement="one_parent",
    violence_signs=True,
    referred=True,
    referred_within_24h=True,
    has_valid_personal_id=True,
    functional_difficulty=True,
    play_space_access=True,
)
C9 = dict(
    child_id="c9",
    sex="male",
    ethnicity="kinh",
    age_years=12,
    age_months=150,
    attends_school=True,
    school_level="primary",
    can_swim=True,
    at_risk=False,
    orphan_status="none",
    has_valid_personal_id=True,
    functional_difficulty=False,
    play_space_access=False,
    chore_hours_week=0,
)

# submission id -> (commune, visit date, household answers or None, [child observations])
SUBMISSIONS: dict[str, tuple[str | None, date, dict[str, Any] | None, list[dict[str, Any]]]] = {
    "uuid:p1-feb": (
        P1,
        FEB,
        dict(consent=True, unfenced_water=True, hotline_111_aware=True, births_12m=2, under5_deaths_12m=1),
        [
            dict(C1, can_swim=False, in_special_circumstance=True, at_risk=False),
            dict(
                child_id="c2",
                sex="female",
                ethnicity="khmer",
                age_years=4,
                age_months=50,
                birth_registered="yes",
                has_valid_personal_id=False,
                attends_school=True,
                school_level="preschool",
                haz=-2.5,
                waz=-1.0,
                whz=-2.1,
                in_special_circumstance=False,
                at_risk=False,
                functional_difficulty=False,
                play_space_access=False,
            ),
        ],
    ),
    "uuid:p1-may": (
        P1,
        MAY,
        dict(
            consent=True,
            unfenced_water=False,
            hotline_111_aware=False,
            births_12m=1,
            under5_deaths_12m=0,
            child_drowning_deaths_12m=1,
        ),
        [
            dict(
                C1,
                can_swim=True,
                in_special_circumstance=False,
                at_risk=True,
                injury_12m=True,
                injury_type="fall",
                injury_drowning=False,
            ),
        ],
    ),
    "uuid:p2-nov": (
        P2,
        NOV,
        None,
        [
            dict(
                child_id="c3",
                sex="male",
                ethnicity="kinh",
                age_years=1,
                age_months=18,
                imm_card_seen=True,
                imm_antigens=ALL_ANTIGENS,
                birth_registered="no",
                has_valid_personal_id=False,
                haz=-1.0,
                waz=-2.2,
                injury_12m=True,
                injury_type="burn",
                injury_drowning=False,
                in_special_circumstance=False,
                at_risk=False,
                play_space_access=True,
            ),
            dict(
                child_id="c4",
                sex="female",
                ethnicity="hoa",
                age_years=1,
                age_months=15,
                imm_card_seen=True,
                imm_antigens=ALL_ANTIGENS.replace(" measles1", ""),
                birth_registered="yes",
                has_valid_personal_id=True,
                haz=-3.0,
                waz=-3.0,
                whz=-1.0,
                injury_12m=False,
                injury_drowning=False,
                in_special_circumstance=False,
                at_risk=False,
                play_space_access=True,
            ),
        ],
    ),
    "uuid:h1-may": (
        H1,
        MAY,
        dict(
            consent=True,
            unfenced_water=True,
            hotline_111_aware=True,
            births_12m=3,
            under5_deaths_12m=0,
            child_drowning_deaths_12m=0,
        ),
        [
            dict(
                child_id="c5",
                sex="male",
                ethnicity="khmer",
                age_years=5,
                age_months=65,
                attends_school=True,
                school_level="preschool",
                birth_registered="yes",
                has_valid_personal_id=True,
                in_special_circumstance=True,
                support_received=True,
                at_risk=False,
                work_hours_week=2,
                chore_hours_week=0,
                injury_12m=True,
                injury_type="traffic",
                injury_drowning=False,
                orphan_status="none",
                play_space_access=False,
                functional_difficulty=False,
            ),
            dict(C6),
        ],
    ),
    "uuid:h1-nov": (
        H1,
        NOV,
        dict(
            consent=True,
            unfenced_water=None,
            hotline_111_aware=True,
            births_12m=0,
            under5_deaths_12m=1,
            child_drowning_deaths_12m=1,
        ),
        [dict(C6)],
    ),
    "uuid:h2-feb": (
        H2,
        FEB,
        None,
        [
            dict(
                C9,
                in_special_circumstance=False,
                work_hours_week=0,
                injury_12m=True,
                injury_type="animal",
                injury_drowning=False,
            )
        ],
    ),
    "uuid:h2-may": (
        H2,
        MAY,
        None,
        [
            dict(
                child_id="c7",
                sex="male",
                ethnicity="other",
                age_years=16,
                age_months=200,
                attends_school=False,
                work_hours_week=45,
                chore_hours_week=0,
                orphan_status="both_died",
                care_arrangement="institution",
                violence_signs=True,
                referred=False,
                injury_12m=True,
                injury_type="drowning",
                injury_drowning=True,
                has_valid_personal_id=False,
                functional_difficulty=False,
            ),
        ],
    ),
    "uuid:h3-nov": (
        H3,
        NOV,
        dict(consent=False),
        [
            dict(
                child_id="c8",
                sex="female",
                ethnicity="kinh",
                age_years=7,
                age_months=90,
                attends_school=True,
                school_level="primary",
                can_swim=False,
                in_special_circumstance=False,
                at_risk=False,
                work_hours_week=0,
                chore_hours_week=5,
                orphan_status="mother_died",
                care_arrangement="relatives",
                violence_signs=True,
                referred=True,
                referred_within_24h=False,
                injury_12m=False,
                injury_drowning=False,
                has_valid_personal_id=True,
                functional_difficulty=False,
                play_space_access=True,
            ),
            dict(
                C9,
                in_special_circumstance=True,
                support_received=True,
                work_hours_week=14,
                injury_12m=False,
                injury_drowning=False,
            ),
        ],
    ),
    "uuid:nowhere-nov": (
        None,
        NOV,
        None,
        [
            dict(
                child_id="c10",
                sex="female",
                ethnicity="kinh",
                age_years=3,
                age_months=38,
                attends_school=False,
                birth_registered="dont_know",
                has_valid_personal_id=False,
                injury_12m=True,
                injury_type="drowning",
                injury_drowning=True,
                in_special_circumstance=False,
                at_risk=False,
                functional_difficulty=False,
                play_space_access=True,
            ),
        ],
    ),
}
FACILITIES = {
    "uuid:f-p1-feb": (
        P1,
        FEB,
        dict(uses_national_immunisation_system=True, digital_child_health_records=False),
    ),
    "uuid:f-p1-nov": (
        P1,
        NOV,
        dict(uses_national_immunisation_system=False, digital_child_health_records=True),
    ),
    "uuid:f-h1-may": (
        H1,
        MAY,
        dict(uses_national_immunisation_system=True, digital_child_health_records=True),
    ),
}

# Hand-worked year-2026 (numerator, denominator) per legacy commune ("" = no commune). Missing = no data.
EXPECTED_YEAR: dict[str, dict[str, tuple[float, float]]] = {
    # children < 16 (latest visit): P1 c1,c2 · P2 c3,c4 · H1 c5,c6 · H3 c8,c9 · '' c10; c7 is 16. CEDC: c5,
    # c9.
    "cedc_rate": {P1: (0, 2), P2: (0, 2), H1: (1, 2), H3: (1, 2), "": (0, 1)},
    "cedc_count": {
        P1: (0, 2),
        P2: (0, 2),
        H1: (1, 2),
        H2: (0, 1),
        H3: (1, 2),
        "": (0, 1),
    },  # d = all children
    "cedc_supported": {H1: (1, 1), H3: (1, 1)},
    "at_risk_share": {P1: (1, 2), P2: (0, 2), H1: (1, 2), H3: (0, 2), "": (0, 1)},
    "orphans_family_care": {H1: (1, 1), H2: (0, 1), H3: (1, 1)},
    "abuse_referred_24h": {H1: (2, 2), H2: (0, 1), H3: (0, 1)},  # flow: c6's two visits both count
    "child_labour": {
        P1: (0, 1),
        H1: (2, 2),
        H2: (1, 1),
        H3: (1, 2),
    },  # c5 2h@5y, c6 chores, c7 45h, c9 14h@12y
    "functional_difficulty": {P1: (0, 2), H1: (1, 2), H2: (0, 1), H3: (0, 2), "": (0, 1)},
    "play_space_access": {P1: (1, 2), P2: (2, 2), H1: (1, 2), H3: (1, 2), "": (1, 1)},
    "preschool_age5": {H1: (1, 1)},
    "ece_36_59m": {P1: (1, 1), "": (0, 1)},
    "primary_right_age": {P1: (1, 1), H3: (1, 1)},
    "lower_secondary_right_age": {H1: (1, 1), H3: (0, 1)},  # c9 at 12 is still in primary
    "can_swim_6_15": {P1: (1, 1), H1: (1, 1), H3: (1, 2)},
    "birth_registration_u5": {P1: (1, 1), P2: (1, 2), "": (0, 1)},
    "personal_id_coverage": {P1: (1, 2), P2: (1, 2), H1: (2, 2), H2: (0, 1), H3: (2, 2), "": (0, 1)},
    "full_immunisation_12_23m": {P2: (1, 2)},
    "stunting_u5": {P1: (1, 1), P2: (1, 2)},
    "underweight_u5": {P1: (0, 1), P2: (2, 2)},
    "wasting_u5": {P1: (1, 1), P2: (0, 1)},
    "unfenced_water_households": {P1: (1, 2), H1: (1, 1)},
    "u5_deaths_per_1000_births": {P1: (1, 3), H1: (1, 3)},
    "hotline_111_awareness": {P1: (1, 2), H1: (2, 2)},
    "stations_national_immunisation": {P1: (0, 1), H1: (1, 1)},  # P1's latest check (Nov) says no
    "stations_digital_records": {P1: (1, 1), H1: (1, 1)},
    # children < 16 asked about injuries (latest visit): P1 c1 (c2 never asked) · P2 c3,c4 · H1 c5,c6 · H3
    # c8,c9 · '' c10. Injured: c1 (fall), c3, c5, c6, c10; drowning: c6, c10 (c7 is 16).
    "injury_12m_u16": {P1: (1, 1), P2: (1, 2), H1: (2, 2), H3: (0, 2), "": (1, 1)},
    "drowning_events_u16": {P1: (0, 1), P2: (0, 2), H1: (1, 2), H3: (0, 2), "": (1, 1)},
    # households with consent that were asked: P1 h2 (1; h1 not asked) · H1 h3 (0), h5 (1) · h4 no consent
    "child_drowning_deaths": {P1: (1, 1), H1: (1, 2)},
}
# Province totals, added up by hand (not by code) as a cross-check of the table above.
PROVINCE_YEAR: dict[str, tuple[float, float]] = {
    "cedc_rate": (2, 9),
    "cedc_count": (2, 10),
    "cedc_supported": (2, 2),
    "at_risk_share": (2, 9),
    "orphans_family_care": (2, 3),
    "abuse_referred_24h": (2, 4),
    "child_labour": (4, 6),
    "functional_difficulty": (1, 8),
    "play_space_access": (6, 9),
    "preschool_age5": (1, 1),
    "ece_36_59m": (1, 2),
    "primary_right_age": (2, 2),
    "lower_secondary_right_age": (1, 2),
    "can_swim_6_15": (3, 4),
    "birth_registration_u5": (2, 4),
    "personal_id_coverage": (6, 10),
    "full_immunisation_12_23m": (1, 2),
    "stunting_u5": (2, 3),
    "underweight_u5": (2, 3),
    "wasting_u5": (1, 2),
    "unfenced_water_households": (2, 3),
    "u5_deaths_per_1000_births": (2, 6),
    "hotline_111_awareness": (3, 4),
    "stations_national_immunisation": (1, 2),
    "stations_digital_records": (2, 2),
    "injury_12m_u16": (5, 8),
    "drowning_events_u16": (2, 8),
    "child_drowning_deaths": (2, 3),
}


def _periods(d: date) -> dict[str, Any]:
    return {"visit_date": d, "year": d.year, "quarter": (d.month - 1) // 3 + 1, "month": d.month}


def _place(commune: str | None) -> dict[str, Any]:
    if commune is None:
        return {"district_code": None, "commune_code": None, "commune_2025_code": None, "area_type": None}
    c = communes()[commune]
    return {
        "district_code": c.district_code,
        "commune_code": c.code,
        "commune_2025_code": c.code_2025,
        "area_type": c.area_type,
    }


def rows(only: set[str] | None = None) -> list[Any]:
    """Model rows for the dataset (or only the named submissions)."""
    out: list[Any] = []
    for sid, (commune, d, hh, children) in SUBMISSIONS.items():
        if only is not None and sid not in only:
            continue
        out.append(
            RawSubmission(
                id=sid,
                form_id="household_child_check",
                commune_code=commune,
                data={"visit_date": d.isoformat()},
                **{k: v for k, v in _place(commune).items() if k != "commune_code"},
            )
        )
        if hh is not None:
            out.append(Household(submission_id=sid, **_periods(d), **_place(commune), **hh))
        for i, child in enumerate(children):
            out.append(
                ChildObservation(
                    id=f"{sid}/{i}", submission_id=sid, **_periods(d), **_place(commune), **child
                )
            )
    for sid, (commune, d, answers) in FACILITIES.items():
        if only is not None and sid not in only:
            continue
        out.append(
            RawSubmission(
                id=sid,
                form_id="commune_facility_check",
                commune_code=commune,
                data={"visit_date": d.isoformat()},
            )
        )
        out.append(FacilityCheck(submission_id=sid, **_periods(d), **_place(commune), **answers))
    return out


def seed(session: Session, only: set[str] | None = None) -> None:
    for r in rows(only):
        session.add(r)
    session.commit()

"""A small hand-built dataset for the report tests, with the figures worked out by hand (see EXPECTED).

Hà Tiên (district 900), 2026Q4 (visits on 10 November 2026), right-age primary attendance (6–10):
  Tô Châu 30766 (border): 10 children aged 8 — 5 Kinh all attending, 5 Khmer of whom 4 attend → 9/10 = 90 %
      (target > 91 %: not met, within 5 % of the target → "close")
  Bình San 30772 (border): 12 children aged 7 — 10 Kinh, 2 Hoa, all attending → 12/12 = 100 % (met)
  Tiên Hải 30781 (island): 3 children aged 9, 2 attending → denominator 3 < 5 → suppressed
  district: 23/25 = 92 % (met); border 21/22; island 3 → suppressed;
  Kinh 17/18; Khmer 4/5 = 80 %; Hoa 2 → suppressed
Tô Châu also has 6 children aged 12 (4 attend lower secondary → 66.7 %), one in an Article 10 group.
2026Q2 (12 May 2026): Tô Châu 6 children aged 8, 5 attending → 83.3 % (the trend's earlier point).
Phú Quốc (911), 2026Q4: Dương Đông 31078 8 children aged 9, all attending → province 31/33.
Facility checks 2026Q4: all 7 Hà Tiên communes; 6 use the national immunisation system → 6/7 (not met).
Injuries (asked in Tô Châu's first household and in Bình San only; the other visits predate the question):
  Tô Châu 1 near-drowning of 3 asked (suppressed); Bình San 0 of 12; district 1/15 → 66,7 ‰ (no target).

Names and personal ids are planted in the raw landing rows and the registry (where an upstream slip
could leave them); the tests check none of them reaches a report.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from aggregator.models import (
    Child,
    ChildObservation,
    FacilityCheck,
    Household,
    QualityFlag,
    Quarantine,
    RawSubmission,
)
from aggregator.registry import pid_pseudonym
from core.orgunits import communes

NAMES = ["Nguyễn Thị Hồng Nhung", "Trần Văn Khánh", "Lê Thị Mỹ Duyên", "Thạch Sô Phia", "Lâm Quốc Hùng"]
PERSONAL_IDS = ["091310001234", "091215006789"]

EXPECTED = {
    "district_primary": (23, 25, 92.0, "met"),
    "tochau_primary": (9, 10, 90.0, "close"),
    "binhsan_primary": (12, 12, 100.0, "met"),
    "province_primary": (31, 33),
    "district_facility": (6, 7),
    "q2_primary": (5, 6),
    "district_drowning": (1, 15, 1000 / 15),
}
ASKED = {"injury_12m": False, "injury_drowning": False}  # injury questions answered "no"


def _periods(d: date) -> dict[str, Any]:
    sy = d.year if d.month >= 9 else d.year - 1
    return {
        "visit_date": d,
        "year": d.year,
        "quarter": (d.month - 1) // 3 + 1,
        "month": d.month,
        "school_year": f"SY{sy}-{sy + 1}",
    }


def _org(commune: str) -> dict[str, Any]:
    c = communes()[commune]
    return {
        "district_code": c.district_code,
        "commune_code": c.code,
        "commune_2025_code": c.code_2025,
        "area_type": c.area_type,
    }


class Builder:
    """Adds households (one raw submission each) with their children, flags and lags."""

    def __init__(self, session: Session):
        self.session = session
        self.n_sub = 0
        self.n_child = 0

    def household(
        self,
        commune: str,
        visit: date,
        children: list[dict[str, Any]],
        *,
        lag_hours: float = 2.0,
        superseded: bool = False,
        flags: tuple[str, ...] = (),
    ) -> str:
        self.n_sub += 1
        sid = f"uuid:test-{self.n_sub:04d}"
        end = datetime.combine(visit, datetime.min.time(), tzinfo=UTC) + timedelta(hours=3)
        name = NAMES[self.n_sub % len(NAMES)]
        self.session.add(
            RawSubmission(
                id=sid,
                form_id="household_child_check",
                form_version="2026110101",
                received_at=end + timedelta(hours=lag_hours),
                end_time=end,
                lag_seconds=lag_hours * 3600,
                org_unit_province="91",
                **_org(commune),
                superseded=superseded,
                submitted_by="ctv_test",
                # planted: an upstream slip that left names in the landing row must still not reach a report
                data={"head_name": name, "child": [{"child_name": NAMES[(self.n_sub + 1) % len(NAMES)]}]},
                ingested_at=end + timedelta(hours=lag_hours, minutes=1),
            )
        )
        if superseded:
            return sid
        p = _periods(visit)
        self.session.add(
            Household(
                submission_id=sid,
                **p,
                **_org(commune),
                consent=True,
                n_children=len(children),
                births_12m=0,
                under5_deaths_12m=0,
                unfenced_water=False,
                hotline_111_aware=True,
                poverty_status="neither",
            )
        )
        for i, answers in enumerate(children):
            self.n_child += 1
            cid = f"child-{self.n_child:05d}"
            age = answers.pop("age")
            dob = visit - timedelta(days=int(age * 365.25) + 40)
            pid = PERSONAL_IDS[self.n_child % len(PERSONAL_IDS)]
            self.session.add(
                Child(
                    id=cid,
                    personal_id_hash=pid_pseudonym(b"reports-dataset-key!", pid),
                    dob=dob,
                    sex=answers.get("sex", "female"),
                    ethnicity=answers.get("ethnicity"),
                    first_seen=visit,
                    last_seen=visit,
                    district_code=_org(commune)["district_code"],
                    commune_code=commune,
                    name_hash="0" * 64,
                )
            )
            obs = {
                "birth_registered": "yes",
                "special_groups": "none",
                "in_special_circumstance": False,
                "at_risk": False,
                "has_valid_personal_id": True,
                "sex": "female",
                **answers,
            }
            self.session.add(
                ChildObservation(
                    id=f"{sid}/{i}",
                    submission_id=sid,
                    child_id=cid,
                    **p,
                    **_org(commune),
                    age_years=age,
                    age_months=age * 12 + 1,
                    **obs,
                )
            )
        for code in flags:
            self.session.add(
                QualityFlag(
                    id=f"{sid}/{code}",
                    submission_id=sid,
                    code=code,
                    message=f"test flag {code}",
                    created_at=end,
                )
            )
        return sid

    def facility(self, commune: str, visit: date, uses_system: bool) -> None:
        self.n_sub += 1
        sid = f"uuid:fac-{self.n_sub:04d}"
        end = datetime.combine(visit, datetime.min.time(), tzinfo=UTC)
        self.session.add(
            RawSubmission(
                id=sid,
                form_id="commune_facility_check",
                received_at=end,
                end_time=end,
                lag_seconds=0.0,
                org_unit_province="91",
                **_org(commune),
                data={},
            )
        )
        p = _periods(visit)
        p.pop("school_year")
        self.session.add(
            FacilityCheck(
                submission_id=sid,
                **p,
                **_org(commune),
                uses_national_immunisation_system=uses_system,
                digital_child_health_records=True,
                commune_play_space=False,
            )
        )


def kids(
    n: int, age: int, *, attending: int, level: str, ethnicity: str = "kinh", **extra: Any
) -> list[dict]:
    out = []
    for i in range(n):
        goes = i < attending
        out.append(
            {
                "age": age,
                "ethnicity": ethnicity,
                "attends_school": goes,
                "school_level": level if goes else None,
                "sex": "male" if i % 2 else "female",
                **extra,
            }
        )
    return out


def seed(session: Session) -> None:
    """Insert the dataset described in the module docstring (and commit)."""
    b = Builder(session)
    q4, q2 = date(2026, 11, 10), date(2026, 5, 12)
    # Tô Châu: 5 Kinh (all attend), 5 Khmer (4 attend), in three households
    first = kids(3, 8, attending=3, level="primary", **ASKED)
    first[0].update(injury_12m=True, injury_type="drowning", injury_drowning=True)
    b.household("30766", q4, first, lag_hours=1, flags=("pid_invalid",))
    b.household(
        "30766",
        q4,
        kids(2, 8, attending=2, level="primary")
        + kids(2, 8, attending=2, level="primary", ethnicity="khmer"),
        lag_hours=2,
    )
    b.household(
        "30766",
        q4,
        kids(3, 8, attending=2, level="primary", ethnicity="khmer"),
        lag_hours=3,
        flags=("pid_invalid", "age_school_mismatch"),
    )
    older = kids(6, 12, attending=4, level="lower_secondary")
    older[5].update(special_groups="g01", in_special_circumstance=True)
    b.household("30766", q4, older, lag_hours=5)
    b.household("30766", q4, kids(1, 8, attending=1, level="primary"), lag_hours=4, superseded=True)
    # Bình San: 10 Kinh, 2 Hoa, all attending
    b.household("30772", q4, kids(4, 7, attending=4, level="primary", **ASKED), lag_hours=6)
    b.household("30772", q4, kids(4, 7, attending=4, level="primary", **ASKED), lag_hours=7)
    b.household(
        "30772",
        q4,
        kids(2, 7, attending=2, level="primary", **ASKED)
        + kids(2, 7, attending=2, level="primary", ethnicity="hoa", **ASKED),
        lag_hours=8,
    )
    # Tiên Hải (island): 3 children, 2 attending — a small cell; sent days later (no signal at sea)
    b.household("30781", q4, kids(3, 9, attending=2, level="primary"), lag_hours=72)
    # earlier quarter, for the trend
    b.household("30766", q2, kids(6, 8, attending=5, level="primary"), lag_hours=2)
    # another district (Phú Quốc)
    b.household("31078", q4, kids(8, 9, attending=8, level="primary"), lag_hours=30)
    for code in ("30766", "30769", "30772", "30775", "30778", "30781"):
        b.facility(code, q4, True)
    b.facility("30784", q4, False)
    # quarantine: one record that landed in Tô Châu then failed, one that never landed (province only)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    session.add(
        Quarantine(
            submission_id="uuid:test-0002",
            error="test: retry later",
            attempts=1,
            first_failed_at=now,
            last_failed_at=now,
        )
    )
    session.add(
        Quarantine(
            submission_id="uuid:never-landed",
            error="instance XML does not parse",
            attempts=3,
            first_failed_at=now,
            last_failed_at=now,
        )
    )
    session.commit()

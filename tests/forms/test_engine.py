"""Both forms under the real form engine (JavaRosa, as in ODK Collect): repeats, ages, constraints, defaults.

tests/support/javarosa/CollectFill.java opens a new instance the way Collect does, answers only what the
engine shows and serialises the finished instance; these tests check what a collaborator meets on the phone.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.ages import ADULT_YEARS, age
from core.localtime import VIETNAM_TIME
from forms.catalog import BuiltForm
from tests.support.form_engine import (
    PHONE_TZ,
    Fill,
    FormEngine,
    child_answers,
    facility_script,
    household_script,
)

HH = "household_child_check"
# The birthdays the plan's indicators turn on: 1 (immunisation 12–23 m), 2 (functional difficulty), 3 (school
# question), 5 (preschool at 5, child labour from 5, under-5 measures), 6 (primary, swimming), 11 (lower
# secondary), 15/16 (special circumstances under 16), 18 (the form's own limit).
BIRTHDAYS = (1, 2, 3, 5, 6, 11, 15, 16, 18)
VISITS = (
    "2024-02-29",  # a leap day: most anniversaries do not exist
    "2024-03-01",
    "2025-02-28",
    "2025-03-01",
    "2025-06-30",
    "2025-07-31",  # month ends: a child born on the 31st
    "2025-12-31",
    "2026-01-01",
)
LEAP_BORN = ("2008-02-29", "2012-02-29", "2016-02-29", "2020-02-29", "2023-02-28", "2023-03-01")


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> FormEngine:
    return FormEngine.build(tmp_path_factory.mktemp("javarosa"))


def _d(s: str) -> date:
    return date.fromisoformat(s)


def _anniversaries(visit: date, years: int) -> list[date]:
    """The dates ``years`` before ``visit`` on the same day of the year (29 February: both neighbours)."""
    try:
        return [visit.replace(year=visit.year - years)]
    except ValueError:  # 29 February in a common year
        return [date(visit.year - years, 2, 28), date(visit.year - years, 3, 1)]


def _birthday_dobs(visit: date) -> list[date]:
    """Dates of birth whose Nth birthday is the day before, the day of or the day after ``visit``."""
    dobs = {a + timedelta(days=d) for n in BIRTHDAYS for a in _anniversaries(visit, n) for d in (-1, 0, 1)}
    dobs |= {_d(s) for s in LEAP_BORN if _d(s) <= visit}
    dobs |= {_d(s) for s in ("2021-01-31", "2019-08-31", "2014-10-31") if _d(s) <= visit}
    return sorted(dobs)


def _age_scripts() -> tuple[list[dict[str, Any]], list[list[tuple[date, date]]]]:
    """Households (≤ 15 children each) for every visit × dob; per household each child's (tried, kept) dob.

    A child 18 or older by our rule is tried first with that dob (the engine must refuse it), then with a
    younger one — as a collaborator corrects the date.
    """
    scripts, expected = [], []
    for v in VISITS:
        visit = _d(v)
        dobs = _birthday_dobs(visit)
        for start in range(0, len(dobs), 15):
            children, kids = [], []
            for dob in dobs[start : start + 15]:
                years, _ = age(dob, visit)
                if years is not None and years >= ADULT_YEARS:
                    younger = dob + timedelta(days=400)
                    children.append(child_answers([dob.isoformat(), younger.isoformat()]))
                    kids.append((dob, younger))
                else:
                    children.append(child_answers(dob.isoformat()))
                    kids.append((dob, dob))
            scripts.append(household_script(v, children))
            expected.append(kids)
    return scripts, expected


def _complete(f: Fill) -> Fill:
    assert f.status == "complete", (f.status, f.at, f.reason, f.message)
    return f


@pytest.mark.parametrize("tz", [PHONE_TZ, "UTC", "America/New_York", "Pacific/Kiritimati"])
def test_form_ages_equal_the_one_age_rule_around_birthdays(
    engine: FormEngine, built: dict[str, BuiltForm], tz: str
) -> None:
    """age_years / age_months computed by the engine equal core.ages.age for every dob around the 1st…18th
    birthdays, leap days and month ends — on a phone in Vietnam and, because the form reads calendar pieces
    of the dates, in any other time zone too."""
    scripts, expected = _age_scripts()
    fills = engine.fill(built[HH].xml_path, scripts, tz=tz)
    checked = refused = 0
    for script, f, kids in zip(scripts, fills, expected, strict=True):
        _complete(f)
        visit = _d(script["answers"]["visit_date"])
        years_seen, months_seen = f.values("age_years"), f.values("age_months")
        assert len(years_seen) == len(kids) == len(f.values("child"))
        dob_events = f.shown("dob")
        for i, (tried, kept) in enumerate(kids):
            if tried != kept:  # 18 or more by our rule: refused by the engine, then the younger date taken
                first = next(e for e in dob_events if e["value"] == tried.isoformat())
                assert first["result"] == "constraint", (visit, tried)
                refused += 1
            years, months = age(kept, visit)
            assert (years_seen[i], months_seen[i]) == (str(years), str(months)), (visit, kept, tz)
            checked += 1
    assert checked > 200 and refused >= len(VISITS) * 2


def test_dob_constraint_under_18_until_the_day_before_the_18th_birthday_every_year(
    engine: FormEngine, built: dict[str, BuiltForm]
) -> None:
    """For visits on 28/29 February, 1 March and at the turn of each year from 2008 on, the engine accepts a
    date of birth exactly when the child is under 18 by core.ages: dates from five days before to five days
    after the 18th anniversary are tried oldest first, so the first accepted is the boundary."""
    today = datetime.now(VIETNAM_TIME).date()
    visits = []
    for y in range(2008, today.year + 1):
        for m, d in ((1, 1), (2, 28), (2, 29), (3, 1), (12, 31)):
            try:
                v = date(y, m, d)
            except ValueError:
                continue
            if v <= today:
                visits.append(v)
    scripts, wanted = [], []
    for v in visits:
        base = _anniversaries(v, ADULT_YEARS)[0]
        tries = [base + timedelta(days=k) for k in range(-5, 6)]
        n_refused = sum(1 for t in tries if (age(t, v)[0] or 0) >= ADULT_YEARS)
        assert 0 < n_refused < len(tries)
        wanted.append([t.isoformat() for t in tries[: n_refused + 1]])
        scripts.append(household_script(v.isoformat(), [child_answers([t.isoformat() for t in tries])]))
    for v, f, want in zip(visits, engine.fill(built[HH].xml_path, scripts), wanted, strict=True):
        _complete(f)
        results = [(e["value"], e["result"]) for e in f.shown("dob")]
        assert results == [(t, "constraint") for t in want[:-1]] + [(want[-1], "ok")], v
        assert f.values("age_years") == ["17"], v


def test_zero_children_means_no_child_repeat(engine: FormEngine, built: dict[str, BuiltForm]) -> None:
    """0 children: the engine never shows a child and the instance has no child element; 2 children: exactly
    two instances, created by the count (no "add another?" prompt)."""
    zero, two = engine.fill(
        built[HH].xml_path,
        [
            household_script("2025-05-02", []),
            household_script("2025-05-02", [child_answers("2019-05-02"), child_answers("2024-11-30")]),
        ],
    )
    _complete(zero)
    assert not [e for e in zero.events if "/child[" in e["path"]]
    assert zero.values("child") == [] and zero.values("children_count") == ["0"]
    assert zero.unused == []
    _complete(two)
    assert len(two.values("child")) == 2 and two.values("age_years") == ["6", "0"]
    assert not [e for e in two.events if e["event"] == "new_repeat_prompt"]


def test_refusal_ends_the_visit(engine: FormEngine, built: dict[str, BuiltForm]) -> None:
    (f,) = engine.fill(built[HH].xml_path, [household_script("2025-05-02", [], consent="no")])
    _complete(f)
    assert f.values("household") == [] and f.values("consent") == ["no"]
    assert [e["name"] for e in f.events if e["event"] == "note"] == ["consent_refused_note"]


@pytest.mark.parametrize("form_id", [HH, "commune_facility_check"])
def test_visit_date_defaults_to_the_phones_local_date(
    engine: FormEngine, built: dict[str, BuiltForm], form_id: str
) -> None:
    """Left alone, visit_date is today on the phone's calendar (Asia/Ho_Chi_Minh), and the start/end
    timestamps carry the phone's +07:00 offset."""
    script = household_script(None, []) if form_id == HH else facility_script(None)
    before = datetime.now(VIETNAM_TIME).date()
    (f,) = engine.fill(built[form_id].xml_path, [script])
    after = datetime.now(VIETNAM_TIME).date()
    _complete(f)
    (visit,) = f.values("visit_date")
    assert _d(visit) in (before, after) and f.values("today") == [visit]
    for stamp in f.values("start") + f.values("end"):
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(hours=7), stamp


def test_facility_form_under_the_engine(engine: FormEngine, built: dict[str, BuiltForm]) -> None:
    """The checklist completes; the commune list is filtered by district (a Rạch Giá ward is not offered
    under Phú Quốc); a future visit date is refused."""
    path = built["commune_facility_check"].xml_path
    ok, other, future = engine.fill(
        path,
        [
            facility_script("2025-09-15"),
            facility_script("2025-09-15", commune="30742"),
            facility_script((datetime.now(VIETNAM_TIME).date() + timedelta(days=1)).isoformat()),
        ],
    )
    _complete(ok)
    assert ok.values("commune") == ["31078"] and ok.values("children_under_1_registered") == ["42"]
    assert (other.status, other.reason) == ("stuck", "not_offered") and other.at and "commune" in other.at
    assert (future.status, future.reason) == ("stuck", "constraint")
    assert future.at and "visit_date" in future.at


FREE_REPEAT_MD = """
| survey |
| | type | name | label | required | constraint |
| | integer | n | N | yes | . >= 0 |
| | begin_repeat | member | Member | | |
| | text | who | Who | yes | |
| | integer | years | Years | | . < 100 |
| | end_repeat | | | | |
| settings |
| | form_id | version | | | |
| | harness_check | 1 | | | |
"""


def test_the_driver_answers_repeat_prompts_required_and_constraints_like_a_person(
    engine: FormEngine, tmp_path: Path
) -> None:
    """The driver itself, on a repeat without a count: "add another?" is answered from the script, a
    required question left empty stops the walk, a refused answer can be corrected."""
    from pyxform.xls2xform import convert

    form = tmp_path / "form.xml"
    form.write_text(convert(xlsform=FREE_REPEAT_MD, file_type=".md").xform, encoding="utf-8")
    two, none, missing, corrected = engine.fill(
        form,
        [
            {"answers": {"n": "2"}, "repeats": {"member": [{"who": "A"}, {"who": "B", "years": "7"}]}},
            {"answers": {"n": "0"}, "repeats": {"member": []}},
            {"answers": {"n": "1"}, "repeats": {"member": [{"years": "3"}]}},
            {"answers": {"n": ["-1", "1"]}, "repeats": {"member": [{"who": "C", "years": ["140", "14"]}]}},
        ],
    )
    _complete(two)
    assert two.values("who") == ["A", "B"] and two.values("years") == ["", "7"]
    prompts = [e["result"] for e in two.events if e["event"] == "new_repeat_prompt"]
    assert prompts == ["add", "skip"]  # the first instance is in the model already, as pyxform writes it
    _complete(none)
    assert none.values("member") == []
    assert [e.get("result") for e in none.events if e["event"] != "question"] == ["delete", "skip"]
    assert (missing.status, missing.reason) == ("stuck", "required") and missing.at
    assert "/member[1]/who" in missing.at
    _complete(corrected)
    assert [e["result"] for e in corrected.shown("n")] == ["constraint", "ok"]
    assert [e["result"] for e in corrected.shown("years")] == ["constraint", "ok"]
    assert corrected.values("years") == ["14"] and corrected.unused == []

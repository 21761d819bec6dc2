"""Small-cell suppression: primary and complementary (a hidden cell cannot be worked out by subtraction)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from aggregator import rollup
from aggregator.indicators import DIMENSIONS, load
from aggregator.suppression import Key, groups_of, pattern
from core.orgunits import communes
from tests.indicators.dataset import H1, H2, H3, P1, P2
from tests.indicators.test_rollup import built  # noqa: F401 - the shared, rolled-up dataset (fixture)

# Hà Tiên (900): Tô Châu, Đông Hồ, Tiên Hải, Thuận Yên, Bình San, Mỹ Đức. 2025 communes: Tô Châu = Tô Châu +
# Thuận Yên; Hà Tiên = Đông Hồ + Bình San + Pháo Đài + Mỹ Đức; Tiên Hải = Tiên Hải.
TC, DH, TH, TY, BS, MD = "30766", "30769", "30781", "30784", "30772", "30778"


def k(kind: str, unit: str, dis: str = "", ind: str = "x") -> Key:
    dk, _, dv = dis.partition("=")
    return (ind, kind, unit, dk, dv)


def cube(commune_cells: dict[tuple[str, str], float], ind: str = "x") -> dict[Key, float]:
    """Commune cells ((code, "" or "sex=male"): denominator) and every cell they add up to."""
    out: dict[Key, float] = {}
    for (code, dis), d in commune_cells.items():
        c = communes()[code]
        for kind, unit in (
            ("commune", code),
            ("district", c.district_code),
            ("commune2025", c.code_2025),
            ("province", "91"),
        ):
            key = k(kind, unit, dis, ind)
            out[key] = out.get(key, 0) + d
    return out


def single_hidden_groups(cells: dict[Key, float], hidden: set[Key]) -> list[list[Key]]:
    return [g for g in groups_of(cells) if sum(x in hidden for x in g if x in cells) == 1]


def test_one_small_commune_takes_the_next_smallest_with_it() -> None:
    cells = cube({(TH, ""): 3, (TC, ""): 10, (TY, ""): 12, (BS, ""): 20})
    primary, complementary = pattern(cells, 5)
    assert primary == {k("commune", TH), k("commune2025", TH)}  # Tiên Hải is a 2025 commune of its own
    # among Hà Tiên's communes the next smallest, Tô Châu (10), not Thuận Yên (12) nor Bình San (20) first;
    # then Thuận Yên, else the 2025 Tô Châu (Tô Châu + Thuận Yên) would give Tô Châu away
    assert {k("commune", TC), k("commune", TY)} <= complementary
    assert k("district", "900") not in complementary and k("province", "91") not in complementary
    assert single_hidden_groups(cells, primary | complementary) == []


def test_a_small_value_takes_another_value_of_its_unit_with_it() -> None:
    # Tô Châu: 2 boys (small) and 7 girls; Tiên Hải: 6 girls. The boys' cell is small at every level (Tô Châu
    # has the only boys), so each unit's girls' cell goes too, else total − girls = boys
    cells = cube(
        {(TC, "sex=male"): 2, (TC, "sex=female"): 7, (TH, "sex=female"): 6, (TC, ""): 9, (TH, ""): 6}
    )
    primary, complementary = pattern(cells, 5)
    assert {x for x in primary if x[1] == "commune"} == {k("commune", TC, "sex=male")}
    assert {k("commune", TC, "sex=female"), k("district", "900", "sex=female")} <= complementary
    assert single_hidden_groups(cells, primary | complementary) == []


def test_two_small_cells_protect_each_other() -> None:
    cells = cube({(TH, ""): 3, (MD, ""): 4, (TY, ""): 12})
    primary, complementary = pattern(cells, 5)
    assert k("commune", TH) in primary and k("commune", MD) in primary
    assert complementary == set()


def test_cells_without_data_are_never_hidden_and_indicators_are_separate() -> None:
    cells = {**cube({(TH, ""): 3, (TC, ""): 22}), **cube({(TC, ""): 30}, ind="y")}
    primary, complementary = pattern(cells, 5)
    hidden = primary | complementary
    assert k("commune", TC) in hidden and not any(x[0] == "y" for x in hidden)
    assert hidden <= set(cells)


def test_no_group_is_left_with_one_hidden_cell_on_random_cubes() -> None:
    import random

    rng = random.Random(7)
    codes = [c.code for c in communes().values() if c.district_code in ("900", "911", "902")]
    for _ in range(40):
        raw: dict[tuple[str, str], float] = {}
        for code in codes:
            if rng.random() < 0.7:
                m, f = rng.choice([0, 1, 2, 3, 8, 20]), rng.choice([0, 1, 2, 6, 30])
                for dis, d in (("", m + f), ("sex=male", m), ("sex=female", f)):
                    if d:
                        raw[(code, dis)] = d
        cells = cube(raw)
        primary, complementary = pattern(cells, rng.choice([3, 5, 10]))
        assert single_hidden_groups(cells, primary | complementary) == []


# ---------------------------------------------------------------- the property, on the rolled-up dataset

DISTRICT_OF = {P1: "911", P2: "911", H1: "900", H2: "900", H3: "900"}
Row = tuple[str, str, str]  # indicator, org unit, disaggregation ("" for the total)


def key(r: rollup.IndicatorRow) -> Row:
    return (r.indicator, r.org_unit, ",".join(f"{k}={v}" for k, v in (r.disaggregation or {}).items()))


def recovered(
    shown: list[rollup.IndicatorRow],
    truth: dict[Row, rollup.IndicatorRow],
    totals: dict[Row, rollup.IndicatorRow],
    parent_of: dict[str, str],
) -> list[Row]:
    """The attack: for cells that add up to a published total (siblings under a parent; the values of one
    disaggregation of a unit), total − the cells shown; when that is exactly one hidden cell's true numerator
    and denominator, the cell is given away."""
    groups: dict[Row, list[rollup.IndicatorRow]] = defaultdict(list)
    for r in shown:
        ind, unit, dv = key(r)
        if unit in parent_of:
            groups[(ind, parent_of[unit], dv)].append(r)
        if dv:
            groups[(ind, unit, "")].append(r)
    out = []
    for total_key, members in groups.items():
        total = totals.get(total_key)
        shut = [r for r in members if r.status == "suppressed"]
        if total is None or total.status == "suppressed" or len(shut) != 1:
            continue
        n = (total.numerator or 0) - sum(r.numerator or 0 for r in members if r.status != "suppressed")
        d = (total.denominator or 0) - sum(r.denominator or 0 for r in members if r.status != "suppressed")
        hidden_truth = truth[key(shut[0])]
        if (n, d) == (hidden_truth.numerator or 0, hidden_truth.denominator or 0):
            out.append(key(shut[0]))
    return out


@pytest.mark.parametrize("min_cell", [2, 3, 5])
def test_no_published_answer_gives_a_hidden_cell_away(built: Engine, min_cell: int) -> None:  # noqa: F811
    codes = list(load())
    q: dict[str, Any] = dict(period="2026", indicators=codes, min_cell=min_cell)
    asks: list[tuple[dict[str, Any], dict[str, str]]] = [
        (dict(level="commune", area=None), DISTRICT_OF),
        (dict(level="district", area="900", children=True), {c: "900" for c in (H1, H2, H3)}),
        (dict(level="district", area=None), {"900": "91", "911": "91"}),
    ]
    for dim in DIMENSIONS:
        for level, area in (("province", "91"), ("district", "900"), ("commune", H1)):
            asks.append((dict(level=level, area=area, disaggregate_by=dim), {}))
        asks.append((dict(level="commune", area=None, disaggregate_by=dim), DISTRICT_OF))
    with Session(built) as s:
        totals = {
            key(r): r
            for level in ("province", "district", "commune")
            for r in rollup.query_indicators(s, level=level, area=None, **q)
        }
        hidden_somewhere = 0
        for ask, parents in asks:
            shown = rollup.query_indicators(s, **ask, **q)
            truth = {key(r): r for r in rollup.query_indicators(s, **ask, **{**q, "suppress": False})}
            assert recovered(shown, truth, totals, parents) == [], ask
            hidden_somewhere += sum(r.status == "suppressed" for r in shown)
    assert hidden_somewhere > 0  # the dataset is small: there is something to protect at every threshold


def test_without_complementary_suppression_the_attack_works(built: Engine) -> None:  # noqa: F811
    """The attack above is real: primary suppression alone gives cells away on this dataset."""
    given_away = []
    with Session(built) as s:
        for min_cell in (2, 3, 5):
            q: dict[str, Any] = dict(period="2026", indicators=list(load()), min_cell=min_cell)
            totals = {
                key(r): r
                for level in ("district", "commune")
                for r in rollup.query_indicators(s, level=level, area=None, suppress=False, **q)
            }
            totals = {
                x: (
                    dataclasses.replace(r, numerator=None, status="suppressed")
                    if 0 < (r.denominator or 0) < min_cell
                    else r
                )
                for x, r in totals.items()
            }
            truth_rows = rollup.query_indicators(
                s, level="district", area="900", children=True, suppress=False, **q
            )
            primary_only = [
                dataclasses.replace(r, numerator=None, value=None, status="suppressed")
                if r.denominator is not None and 0 < r.denominator < min_cell
                else r
                for r in truth_rows
            ]
            truth = {key(r): r for r in truth_rows}
            given_away += recovered(primary_only, truth, totals, {c: "900" for c in (H1, H2, H3)})
    assert given_away


def test_patterns_are_cached_until_the_cells_change(
    built: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aggregator import suppression

    calls: list[int] = []
    real = suppression.pattern

    def counting(
        denominators: dict[Key, float], min_cell: int, numerators: dict[Key, float] | None = None
    ) -> tuple[set[Key], set[Key]]:
        calls.append(len(denominators))
        return real(denominators, min_cell, numerators)

    monkeypatch.setattr(suppression, "pattern", counting)
    with Session(built) as s:
        conn = s.connection()
        first = suppression.hidden_cells(conn, "2026", ["cedc_rate", "can_swim_6_15"], 4)
        again = suppression.hidden_cells(conn, "2026", ["can_swim_6_15", "cedc_rate"], 4)
        assert first == again and len(calls) == 1 and first
        one = suppression.hidden_cells(conn, "2026", ["cedc_rate"], 4)  # a subset: from the cache
        assert one == {x for x in first if x[0] == "cedc_rate"} and len(calls) == 1
        rollup.bump_generation(conn)  # what every rebuild and refresh does
        assert suppression.hidden_cells(conn, "2026", ["cedc_rate"], 4) == one and len(calls) == 2
        s.rollback()


# ---------------------------------------------------------------- rule 10: attribute disclosure


def homogeneous_remainders(
    cells: dict[Key, float], numerators: dict[Key, float], hidden: set[Key]
) -> list[tuple[Key, float, float]]:
    """The attack: for every group whose parent is shown and some children hidden, parent − the children
    shown; an all-or-nothing remainder (0 or equal to its denominator) tells every hidden child's share —
    unless the shown parent is all-or-nothing itself (then it says so of every cell under it anyway)."""
    out = []
    for g in groups_of(cells):
        g = [x for x in g if x in cells]
        parent, kids = g[0], g[1:]
        if parent in hidden or not any(x in hidden for x in kids):
            continue
        n = numerators[parent] - sum(numerators[x] for x in kids if x not in hidden)
        d = cells[parent] - sum(cells[x] for x in kids if x not in hidden)
        whole = numerators[parent] in (0, cells[parent])
        if d > 0 and (n == 0 or n == d) and not whole:
            out.append((parent, n, d))
    return out


def test_the_province_workbook_leak_is_closed() -> None:
    """Issue 12's workbook: stations 142/143 in the province, the 12 districts shown add to 123/124, so the
    three hidden districts were 19/19 — each 100 %. The remainder must not be homogeneous any more."""
    from core.orgunits import districts

    codes = sorted(districts())
    assert len(codes) == 15
    # 12 shown: eleven at 10/10 plus one at 13/14 (123/124); 3 hidden small ones: 6/6, 6/6 and 7/7 (19/19)
    shown = {c: (10.0, 10.0) for c in codes[:11]} | {codes[11]: (13.0, 14.0)}
    small = {codes[12]: (6.0, 6.0), codes[13]: (6.0, 6.0), codes[14]: (7.0, 7.0)}
    cells = {k("district", c): d for c, (_, d) in {**shown, **small}.items()}
    nums = {k("district", c): n for c, (n, _) in {**shown, **small}.items()}
    cells[k("province", "91")], nums[k("province", "91")] = 143.0, 142.0
    # the small-cell rule alone (threshold 8) hides the three small districts, which protect each other
    # against subtraction one by one — but not their 19/19 together
    p0, c0 = pattern(cells, 8)
    assert p0 == {k("district", c) for c in small} and not c0
    assert homogeneous_remainders(cells, nums, p0 | c0) == [(k("province", "91"), 19.0, 19.0)]
    # with the attribute-disclosure rule the remainder is mixed: the 13/14 district is hidden too
    p1, c1 = pattern(cells, 8, nums)
    assert homogeneous_remainders(cells, nums, p1 | c1) == []
    assert k("district", codes[11]) in c1 and single_hidden_groups(cells, p1 | c1) == []


def test_no_hidden_group_is_all_or_nothing_on_random_cubes() -> None:
    import random

    rng = random.Random(12)
    codes = [c.code for c in communes().values() if c.district_code in ("900", "911", "902", "914")]
    leaks_without_rule = 0
    for _ in range(60):
        raw: dict[tuple[str, str], float] = {}
        raw_n: dict[tuple[str, str], float] = {}
        for code in codes:
            if rng.random() < 0.7:
                m, f = rng.choice([0, 1, 2, 3, 8, 20]), rng.choice([0, 1, 2, 6, 30])
                share = rng.choice([0.0, 1.0, 1.0, 0.5, rng.random()])  # many all-or-nothing communes
                mn, fn = round(m * share), round(f * share)
                for dis, d, n in (("", m + f, mn + fn), ("sex=male", m, mn), ("sex=female", f, fn)):
                    if d:
                        raw[(code, dis)], raw_n[(code, dis)] = d, n
        cells, nums = cube(raw), cube(raw_n)
        nums = {x: nums.get(x, 0.0) for x in cells}
        min_cell = rng.choice([3, 5, 10])
        primary, complementary = pattern(cells, min_cell, nums)
        hidden = primary | complementary
        assert homogeneous_remainders(cells, nums, hidden) == []
        assert single_hidden_groups(cells, hidden) == []
        p0, c0 = pattern(cells, min_cell)
        leaks_without_rule += bool(homogeneous_remainders(cells, nums, p0 | c0))
    assert leaks_without_rule > 0, "the cubes never had the leak: the test proves nothing"


@pytest.mark.parametrize("min_cell", [2, 3, 5])
def test_no_published_group_is_all_or_nothing(built: Engine, min_cell: int) -> None:  # noqa: F811
    """On the rolled-up dataset, every answer anyone can get: no hidden group's remainder is homogeneous."""
    from aggregator.suppression import hidden_cells, unit_kind

    codes = list(load())
    with Session(built) as s:
        cells: dict[Key, float] = {}
        nums: dict[Key, float] = {}
        for level, hierarchies in (
            ("province", ["legacy"]),
            ("district", ["legacy"]),
            ("commune", ["legacy", "2025"]),
        ):
            for h in hierarchies:
                for dim in (None, *DIMENSIONS):
                    for r in rollup.query_indicators(
                        s,
                        level=level,
                        area=None,
                        period="2026",
                        hierarchy=h,
                        indicators=codes,
                        disaggregate_by=dim,
                        suppress=False,
                    ):
                        if r.denominator:
                            dk = dim or ""
                            dv = (r.disaggregation or {}).get(dk, "")
                            x = (r.indicator, unit_kind(level, h), r.org_unit, dk, dv)
                            cells[x], nums[x] = float(r.denominator), float(r.numerator or 0)
        hidden = hidden_cells(s.connection(), "2026", codes, min_cell)
        assert hidden
        assert homogeneous_remainders(cells, nums, hidden) == []


# ---------------------------------------------------------------- one pattern for every answer and process


def random_cubes(seed: int, n: int, indicators: tuple[str, ...] = ("x",)) -> list[tuple[Any, Any, int]]:
    """(denominators, numerators, min_cell) of random cubes, several indicators each."""
    import random

    rng = random.Random(seed)
    codes = [c.code for c in communes().values() if c.district_code in ("900", "911", "902", "914")]
    out = []
    for _ in range(n):
        cells: dict[Key, float] = {}
        nums: dict[Key, float] = {}
        for ind in indicators:
            raw: dict[tuple[str, str], float] = {}
            raw_n: dict[tuple[str, str], float] = {}
            for code in codes:
                if rng.random() < 0.7:
                    m, f = rng.choice([0, 1, 2, 3, 8, 20]), rng.choice([0, 1, 2, 6, 30])
                    share = rng.choice([0.0, 1.0, 0.5, rng.random()])
                    mn, fn = round(m * share), round(f * share)
                    for dis, d, n_ in (("", m + f, mn + fn), ("sex=male", m, mn), ("sex=female", f, fn)):
                        if d:
                            raw[(code, dis)], raw_n[(code, dis)] = d, n_
            cells |= cube(raw, ind)
            nums |= cube(raw_n, ind)
        out.append((cells, {x: nums.get(x, 0.0) for x in cells}, rng.choice([3, 5, 10])))
    return out


def test_an_indicator_s_pattern_is_the_same_alone_and_with_others() -> None:
    """hidden_cells caches the pattern per indicator, computed with whichever indicators were asked together:
    the cells hidden for one indicator must not depend on the others (no set's order may steer the greedy
    choices: it varies with the sets' contents, and with the process's string hashing)."""
    for cells, nums, mc in random_cubes(22, 25, ("x", "y", "z")):
        p, c = pattern(cells, mc, nums)
        together = p | c
        for ind in ("x", "y", "z"):
            alone_cells = {k: v for k, v in cells.items() if k[0] == ind}
            pa, ca = pattern(alone_cells, mc, {k: nums[k] for k in alone_cells})
            assert pa | ca == {k for k in together if k[0] == ind}


def test_a_refresh_of_other_periods_keeps_the_pattern(
    built: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aggregator import suppression

    calls: list[int] = []
    real = suppression.pattern

    def counting(
        denominators: dict[Key, float], min_cell: int, numerators: dict[Key, float] | None = None
    ) -> tuple[set[Key], set[Key]]:
        calls.append(len(denominators))
        return real(denominators, min_cell, numerators)

    monkeypatch.setattr(suppression, "pattern", counting)
    monkeypatch.setattr(suppression, "_CACHE", {})  # earlier tests cached generations they rolled back
    with Session(built) as s:
        conn = s.connection()
        first = suppression.hidden_cells(conn, "2026", ["cedc_rate"], 4)
        rollup.bump_generation(conn, {"2025", "2025-05"})  # a refresh of last year's cells
        assert suppression.hidden_cells(conn, "2026", ["cedc_rate"], 4) == first and len(calls) == 1
        rollup.bump_generation(conn, {"2026-05", "2026Q2", "2026"})  # a refresh that moves 2026's cells
        assert suppression.hidden_cells(conn, "2026", ["cedc_rate"], 4) == first and len(calls) == 2
        s.rollback()

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

    def counting(denominators: dict[Key, float], min_cell: int) -> tuple[set[Key], set[Key]]:
        calls.append(len(denominators))
        return real(denominators, min_cell)

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

"""Each indicator on the hand-built dataset, at every level, both hierarchies, on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, delete, select, text
from sqlmodel import Session

from aggregator import rollup
from aggregator.db import dispose_engines, init_db
from aggregator.indicators import load
from aggregator.models import ChildObservation, Household
from core.settings import Settings
from tests.indicators import dataset as ds
from tests.indicators.dataset import EXPECTED_YEAR, H1, H2, H3, P1, P2, PROVINCE_YEAR

DISTRICTS = {"911": [P1, P2], "900": [H1, H2, H3]}
COMMUNES_2025 = {"31078": [P1, P2], "30766": [H1, H2], "30769": [H3]}


@contextmanager
def database(kind: str, tmp: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A fresh PostgreSQL database (dropped afterwards) or SQLite file, with the tables created."""
    if kind == "sqlite":
        yield init_db(Settings(var_dir=tmp, database_url=f"sqlite:///{tmp}/t.db"))
        dispose_engines()
        return
    admin_url: str = request.getfixturevalue("pg_admin_url")
    name = f"carecheck_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield init_db(Settings(var_dir=tmp, database_url=admin_url.rsplit("/", 1)[0] + f"/{name}"))
    finally:
        dispose_engines()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the test's own (for tests that change data)."""
    with database(request.param, tmp_path, request) as eng:
        yield eng


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The whole dataset, rolled up once per backend (read-only tests share it)."""
    with database(request.param, tmp_path_factory.mktemp("built"), request) as eng:
        yield seeded(eng)


def seeded(engine: Engine, only: set[str] | None = None) -> Engine:
    with Session(engine) as s:
        ds.seed(s, only)
    rollup.rebuild(engine)
    return engine


def cells(engine: Engine) -> dict[tuple[str, ...], tuple[float, float]]:
    t = rollup.IndicatorValue.__table__  # type: ignore[attr-defined]
    with engine.connect() as c:
        return {tuple(r[:7]): (r[7], r[8]) for r in c.execute(select(*[t.c[k] for k in rollup.COLS]))}


def nd(rows: list[rollup.IndicatorRow]) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    return {(r.indicator, r.org_unit): (r.numerator, r.denominator) for r in rows}


def add(parts: list[tuple[float, float]]) -> tuple[float, float] | None:
    parts = [p for p in parts if p]
    return (sum(p[0] for p in parts), sum(p[1] for p in parts)) if parts else None


def test_every_indicator_has_a_hand_worked_answer() -> None:
    assert set(EXPECTED_YEAR) == set(load()) == set(PROVINCE_YEAR)
    for code, per_commune in EXPECTED_YEAR.items():  # the hand table adds up to the hand province totals
        assert add(list(per_commune.values())) == PROVINCE_YEAR[code], code


def test_each_indicator_at_every_level_and_both_hierarchies(built: Engine) -> None:
    engine = built
    with Session(engine) as s:
        q = dict(period="2026", suppress=False)
        communes = nd(rollup.query_indicators(s, level="commune", area=None, **q))
        districts = nd(rollup.query_indicators(s, level="district", area=None, **q))
        province = nd(rollup.query_indicators(s, level="province", area="91", **q))
        c2025 = nd(rollup.query_indicators(s, level="commune", area=None, hierarchy="2025", **q))
        d2025 = nd(rollup.query_indicators(s, level="district", area=None, hierarchy="2025", **q))
        p2025 = nd(rollup.query_indicators(s, level="province", area=None, hierarchy="2025", **q))
    for code, per_commune in EXPECTED_YEAR.items():
        for commune in (P1, P2, H1, H2, H3, "30733"):
            assert communes[(code, commune)] == per_commune.get(commune, (None, None)), (code, commune)
        for district, members in DISTRICTS.items():
            want = add([per_commune.get(c) for c in members]) or (None, None)
            assert districts[(code, district)] == want, (code, district)
            assert d2025[(code, district)] == want, (code, district, "2025")
        assert districts[(code, "899")] == (None, None)
        for c, members in COMMUNES_2025.items():
            assert c2025[(code, c)] == (add([per_commune.get(m) for m in members]) or (None, None)), (code, c)
        assert province[(code, "91")] == p2025[(code, "91")] == PROVINCE_YEAR[code], code
    # a few by hand, written out: CEDC rate per district and 2025 unit
    assert districts[("cedc_rate", "911")] == (0, 4) and districts[("cedc_rate", "900")] == (2, 4)
    assert c2025[("cedc_rate", "30766")] == (1, 2) and c2025[("cedc_rate", "30769")] == (1, 2)
    assert c2025[("abuse_referred_24h", "30766")] == (2, 3)


def test_values_targets_and_status(built: Engine) -> None:
    engine = built
    with Session(engine) as s:
        rows = {
            r.indicator: r
            for r in rollup.query_indicators(s, level="province", area="91", period="2026", min_cell=0)
        }
        q1 = rollup.query_indicators(
            s,
            level="province",
            area="91",
            period="2026Q1",
            min_cell=0,
            indicators=["stations_national_immunisation"],
        )[0]
    assert rows["cedc_rate"].value == pytest.approx(100 * 2 / 9) and rows["cedc_rate"].status == "not_met"
    t = rows["cedc_rate"].target or {}
    assert t == {"op": "<", "value": 0.8, "clause": t["clause"], "clause_vi": t["clause_vi"]}
    assert rows["primary_right_age"].value == 100 and rows["primary_right_age"].status == "met"
    assert (
        rows["lower_secondary_right_age"].value == 50
        and rows["lower_secondary_right_age"].status == "not_met"
    )
    assert rows["u5_deaths_per_1000_births"].value == pytest.approx(1000 * 2 / 6)
    assert rows["cedc_count"].value == 2 and rows["cedc_count"].unit == "count"
    assert rows["stunting_u5"].status == "no_target" and rows["stunting_u5"].name_vi.startswith("Tỷ lệ")
    assert rows["stations_national_immunisation"].status == "not_met"  # 1 of 2 stations (latest checks)
    assert (q1.numerator, q1.denominator, q1.status) == (1, 1, "met")  # Q1: P1's February check only


def test_stock_counts_a_child_once_flow_counts_every_visit(built: Engine) -> None:
    engine = built
    with Session(engine) as s:

        def prov(ind: str, period: str) -> tuple[float | None, float | None]:
            r = rollup.query_indicators(
                s, level="province", area="91", period=period, indicators=[ind], suppress=False
            )[0]
            return r.numerator, r.denominator

        # c1 is CEDC in Q1 (Feb) and not in Q2 (May): each quarter sees its own latest state ...
        assert prov("cedc_rate", "2026Q1") == (1, 3)  # c1, c2 (P1) and c9 (H2, 12 y)
        assert prov("cedc_rate", "2026Q2") == (1, 3)  # c1 (no longer), c5 (CEDC), c6
        assert prov("cedc_rate", "2026Q4") == (1, 6)
        # ... and the year counts each child once, in its latest state: 9, not 3 + 3 + 6
        assert prov("cedc_rate", "2026") == (2, 9)
        assert prov("cedc_rate", "2026-02") == (1, 3)
        assert prov("cedc_rate", "SY2025-2026") == (1, 5)  # Feb + May visits
        assert prov("cedc_rate", "SY2026-2027") == (1, 6)  # Nov visits
        # flow: c6's two visits (May, Nov) both count
        assert prov("abuse_referred_24h", "2026Q2") == (1, 2)
        assert prov("abuse_referred_24h", "2026Q4") == (1, 2)
        assert prov("abuse_referred_24h", "2026") == (2, 4)
        # c9 moved from H2 (Feb) to H3 (Nov): counted in H2 for Q1, in H3 for the year, never twice
        h2 = rollup.query_indicators(
            s, level="commune", area=H2, period="2026Q1", indicators=["cedc_rate"], suppress=False
        )[0]
        assert (h2.numerator, h2.denominator) == (0, 1)


def test_injury_indicators_by_hand(built: Engine) -> None:
    """Plan II.2 injury events: per 1,000, stock per child, questions not asked left out; deaths a flow."""
    engine = built
    with Session(engine) as s:

        def prov(ind: str, period: str, **kw: str) -> dict[str, tuple[float | None, float | None]]:
            rows = rollup.query_indicators(
                s, level="province", area="91", period=period, indicators=[ind], suppress=False, **kw
            )
            dim = kw.get("disaggregate_by")
            return {
                (r.disaggregation or {}).get(dim, "") if dim else "": (r.numerator, r.denominator)
                for r in rows
                if not dim or r.disaggregation
            }

        year = {
            r.indicator: r
            for r in rollup.query_indicators(s, level="province", area="91", period="2026", min_cell=0)
        }
        # Q1: c1 and c2 (P1, February) were not asked; c9 (H2) was bitten: 1 of 1
        assert prov("injury_12m_u16", "2026Q1") == {"": (1, 1)}
        # Q2: c1 fall, c5 traffic, c6 drowning + fall; c7 is 16 (his drowning does not count)
        assert prov("injury_12m_u16", "2026Q2") == {"": (3, 3)}
        assert prov("drowning_events_u16", "2026Q2") == {"": (1, 3)}
        # Q4: c3 burn, c6 again, c10 drowning; c4, c8 and c9 (now in H3) not injured
        assert prov("injury_12m_u16", "2026Q4") == {"": (3, 6)}
        assert prov("drowning_events_u16", "2026Q4") == {"": (2, 6)}
        # the year counts each child once, latest visit: (5, 8), not 1 + 3 + 3 of 10
        assert prov("injury_12m_u16", "2026") == {"": (5, 8)}
        by_sex = prov("injury_12m_u16", "2026", disaggregate_by="sex")
        assert by_sex["male"] == (3, 4) and by_sex["female"] == (2, 4)  # c1,c3,c5 of c1,c3,c5,c9 / c6,c10
        by_age = prov("drowning_events_u16", "2026", disaggregate_by="age_group")
        # 0-4: c10 of c3, c4, c10 (c2 not asked) · 5-10: none of c1, c5, c8 · 11-15: c6 of c6, c9
        assert (by_age["0-4"], by_age["5-10"], by_age["11-15"]) == ((1, 3), (0, 3), (1, 2))
        # child drowning deaths: a flow over consenting households asked the question
        assert prov("child_drowning_deaths", "2026Q1") == {"": (None, None)}  # h1 was not asked
        assert prov("child_drowning_deaths", "2026Q2") == {"": (1, 2)}  # h2 1, h3 0
        assert prov("child_drowning_deaths", "2026Q4") == {"": (1, 1)}  # h5 1; h4 refused
        deaths = prov("child_drowning_deaths", "2026", disaggregate_by="area_type")
        assert deaths["island"] == (1, 1) and deaths["border"] == (1, 2)  # P1 Phú Quốc / H1 Hà Tiên
    assert year["injury_12m_u16"].value == pytest.approx(625.0) and year["injury_12m_u16"].unit == "per_1000"
    assert year["drowning_events_u16"].value == pytest.approx(250.0)
    assert year["child_drowning_deaths"].value == 2 and year["child_drowning_deaths"].unit == "count"
    assert {year[c].status for c in ("injury_12m_u16", "drowning_events_u16", "child_drowning_deaths")} == {
        "no_target"
    }
    assert year["drowning_events_u16"].target["clause"].startswith("Plan II.2")  # type: ignore[index]


def test_districts_add_up_to_the_province_for_every_cell(built: Engine) -> None:
    engine = built
    got = cells(engine)
    communes: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    districts: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (h, lvl, period, _ou, dk, dv, ind), (n, d) in got.items():
        if h == "legacy" and lvl in ("commune", "district"):
            acc = (communes if lvl == "commune" else districts)[(period, dk, dv, ind)]
            acc[0] += n
            acc[1] += d
    province = {k: v for k, v in got.items() if k[1] == "province"}
    assert len(province) > 100
    for (_h, _lvl, period, _ou, dk, dv, ind), (n, d) in province.items():
        assert communes[(period, dk, dv, ind)] == [n, d]
        unknown = got.get(("legacy", "commune", period, "", dk, dv, ind), (0, 0))
        dsum = districts[(period, dk, dv, ind)]
        assert (dsum[0] + unknown[0], dsum[1] + unknown[1]) == (n, d)


def test_disaggregation_rows(built: Engine) -> None:
    engine = built
    with Session(engine) as s:
        rows = rollup.query_indicators(
            s,
            level="province",
            area="91",
            period="2026",
            indicators=["cedc_rate"],
            disaggregate_by="sex",
            suppress=False,
        )
        by_area = rollup.query_indicators(
            s,
            level="province",
            area="91",
            period="2026",
            disaggregate_by="area_type",
            suppress=False,
            indicators=["cedc_rate", "hotline_111_awareness"],
        )
        monthly = rollup.query_indicators(
            s,
            level="province",
            area="91",
            period="2026-05",
            indicators=["cedc_rate"],
            disaggregate_by="sex",
            suppress=False,
        )
    got = {r.disaggregation["sex"]: (r.numerator, r.denominator) for r in rows if r.disaggregation}
    assert got == {"male": (2, 4), "female": (0, 5)}  # c1,c3,c5,c9 / c2,c4,c6,c8,c10
    area = {
        (r.indicator, r.disaggregation["area_type"]): (r.numerator, r.denominator)
        for r in by_area
        if r.disaggregation
    }
    assert area[("cedc_rate", "island")] == (0, 4) and area[("cedc_rate", "border")] == (2, 4)
    assert area[("hotline_111_awareness", "border")] == (2, 2)
    assert {r.status for r in monthly} == {"no_data"}  # months are totals only


def test_small_cells_are_suppressed(built: Engine) -> None:
    engine = built
    with Session(engine) as s:
        rows = rollup.query_indicators(
            s, level="commune", area=P1, period="2026", indicators=["cedc_rate"], min_cell=5
        )
        prov = rollup.query_indicators(
            s, level="province", area="91", period="2026", indicators=["cedc_rate"], min_cell=5
        )
        kids = rollup.query_indicators(
            s,
            level="district",
            area="900",
            period="2026",
            indicators=["cedc_rate"],
            min_cell=3,
            children=True,
        )
    assert (rows[0].numerator, rows[0].value, rows[0].status) == (None, None, "suppressed")
    assert prov[0].status == "not_met" and prov[0].numerator == 2
    assert {r.org_unit: r.status for r in kids} == {
        "30766": "suppressed",
        "30769": "suppressed",
        "30772": "no_data",
        "30775": "no_data",
        "30778": "no_data",
        "30781": "no_data",
        "30784": "no_data",
    }
    assert all(r.numerator is None for r in kids)


def test_rebuild_and_replay_change_no_number(engine: Engine) -> None:
    seeded(engine)
    first = cells(engine)
    rollup.rebuild(engine)
    assert cells(engine) == first
    with Session(engine) as s:  # replaying every page through the incremental path
        rollup.refresh(s, list(ds.SUBMISSIONS) + list(ds.FACILITIES))
        rollup.refresh(s, list(ds.SUBMISSIONS))
    assert cells(engine) == first


def test_incremental_refresh_equals_full_rebuild(engine: Engine) -> None:
    early = {"uuid:p1-feb", "uuid:h2-feb", "uuid:h1-may", "uuid:f-p1-feb"}
    seeded(engine, early)
    with Session(engine) as s:  # the rest arrives page by page (c9 moves from H2 to H3 on the way)
        for page in (
            ["uuid:p1-may", "uuid:h2-may"],
            ["uuid:h3-nov", "uuid:nowhere-nov", "uuid:p2-nov"],
            ["uuid:h1-nov", "uuid:f-p1-nov", "uuid:f-h1-may"],
        ):
            for r in ds.rows(set(page)):
                s.add(r)
            s.commit()
            rollup.refresh(s, page)
    incremental = cells(engine)
    rollup.rebuild(engine)
    assert incremental == cells(engine)
    # a deleted submission (its rows removed by ingestion, the landing row kept) disappears from its cells
    with Session(engine) as s:
        for model in (ChildObservation, Household):
            s.exec(delete(model).where(model.submission_id == "uuid:h2-may"))  # type: ignore[call-overload]
        s.commit()
        rollup.refresh(s, ["uuid:h2-may"])
        h2 = rollup.query_indicators(
            s, level="commune", area=H2, period="2026", suppress=False, indicators=["orphans_family_care"]
        )[0]
        prov = rollup.query_indicators(
            s, level="province", area="91", period="2026", suppress=False, indicators=["orphans_family_care"]
        )[0]
    assert (h2.numerator, h2.denominator, h2.status) == (None, None, "no_data")
    assert (prov.numerator, prov.denominator) == (2, 2)
    after = cells(engine)
    rollup.rebuild(engine)
    assert after == cells(engine)


def test_bad_requests_are_clear(engine: Engine) -> None:
    from core.errors import BadRequest, NotFound

    with Session(engine) as s:
        with pytest.raises(BadRequest, match="2026Q4"):
            rollup.query_indicators(s, level="province", area=None, period="2026Q5")
        with pytest.raises(NotFound, match="99999"):
            rollup.query_indicators(s, level="commune", area="99999", period="2026")
        with pytest.raises(BadRequest, match="legacy or 2025"):
            rollup.query_indicators(s, level="commune", area=None, period="2026", hierarchy="1975")
        with pytest.raises(NotFound, match="No indicator"):
            rollup.query_indicators(s, level="province", area=None, period="2026", indicators=["nope"])
        # before any rebuild: every indicator is there, with no data
        rows = rollup.query_indicators(s, level="province", area="91", period="2026")
    assert len(rows) == len(load()) and {r.status for r in rows} == {"no_data"}


def test_trend(built: Engine) -> None:
    engine = built
    with Session(engine) as s:
        rows = rollup.trend(
            s,
            indicator="cedc_rate",
            org_unit="911",
            level="district",
            hierarchy="legacy",
            periods=["2026Q1", "2026Q2", "2026Q3", "2026Q4"],
        )
    assert [(r.period, r.numerator, r.denominator) for r in rows] == [
        ("2026Q1", None, 2.0),
        ("2026Q2", None, 1.0),
        ("2026Q3", None, None),
        ("2026Q4", None, 2.0),
    ]
    assert [r.status for r in rows] == ["suppressed", "suppressed", "no_data", "suppressed"]


def _drop_rows(engine: Engine, submission: str) -> None:
    """What ingestion does with a deleted submission: its rows go, its landing record stays."""
    with Session(engine) as s:
        for model in (ChildObservation, Household):
            s.exec(delete(model).where(model.submission_id == submission))  # type: ignore[call-overload]
        s.commit()


def test_refresh_touches_only_the_periods_of_the_page(engine: Engine) -> None:
    """A page changes its periods' cells (as a rebuild would) and stamps exactly them; a cell of another
    period is left alone (refresh applies differences: it does not recompute, let alone repair, it)."""
    seeded(engine)
    t = rollup.IndicatorValue.__table__  # type: ignore[attr-defined]

    def cedc_p1(period: str) -> float:
        with engine.connect() as c:
            return c.execute(
                select(t.c.numerator).where(
                    t.c.indicator == "cedc_rate",
                    t.c.level == "commune",
                    t.c.hierarchy == "legacy",
                    t.c.org_unit == P1,
                    t.c.period == period,
                    t.c.dis_key == "",
                )
            ).scalar_one()

    assert cedc_p1("2026") == 0  # c1 was CEDC in February, no longer in May
    with engine.begin() as c:  # tamper with a cell the page does not cover
        c.execute(
            t.update()
            .where(t.c.indicator == "cedc_rate", t.c.org_unit == P1, t.c.period == "2026Q1")
            .where(t.c.hierarchy == "legacy", t.c.level == "commune", t.c.dis_key == "")
            .values(numerator=99)
        )
    moved = ("2026-05", "2026Q2", "2026", "SY2025-2026")

    def stamps() -> dict[str, int]:
        with engine.connect() as c:
            return {p: rollup.period_generation(c, p) for p in (*moved, "2026Q1", "2025")}

    before = stamps()
    _drop_rows(engine, "uuid:p1-may")  # the May visit is deleted: c1's latest visit of 2026 is February's
    with Session(engine) as s:
        stats = rollup.refresh(s, ["uuid:p1-may"])  # a May visit: 2026-05, 2026Q2, 2026, SY2025-2026
    assert stats["periods"] == 4
    assert cedc_p1("2026") == 1  # changed
    assert cedc_p1("2026Q1") == 99  # not the page's period: left alone
    # what readers cached from a period (the suppression pattern) stays valid exactly for the others
    after = stamps()
    assert [p for p in after if after[p] != before[p]] == list(moved)
    got = cells(engine)
    rollup.rebuild(engine)
    want = cells(engine)
    tampered = ("legacy", "commune", "2026Q1", P1, "", "", "cedc_rate")
    assert got.pop(tampered) == (99, want.pop(tampered)[1]) and got == want


def test_refresh_touches_only_the_org_units_of_the_page(engine: Engine) -> None:
    """A page of one commune changes that commune and the units above it, and leaves every other commune,
    district and 2025 commune as it was (each refresh statement is restricted to the touched keys)."""
    seeded(engine)
    t = rollup.IndicatorValue.__table__  # type: ignore[attr-defined]
    # (not the province: it sums every district)
    touched = {("commune", "legacy", P1), ("district", "legacy", "911"), ("commune", "2025", "31078")}
    others = {("commune", "legacy", H1), ("district", "legacy", "900"), ("commune", "2025", "30766")}
    with engine.begin() as c:  # tamper with the 2026 cells of the other units
        for level, hierarchy, unit in others:
            unit_2026 = [t.c.level == level, t.c.hierarchy == hierarchy, t.c.org_unit == unit]
            unit_2026.append(t.c.period == "2026")
            c.execute(t.update().where(*unit_2026).values(numerator=999))

    def tampered(level: str, hierarchy: str, unit: str) -> bool:
        with engine.connect() as c:
            got = c.execute(
                select(t.c.numerator).where(
                    t.c.level == level, t.c.hierarchy == hierarchy, t.c.org_unit == unit, t.c.period == "2026"
                )
            ).scalars()
            return any(v == 999 for v in got)

    assert all(tampered(*k) for k in others)
    _drop_rows(engine, "uuid:p1-may")
    with Session(engine) as s:
        stats = rollup.refresh(s, ["uuid:p1-may"])
    assert stats["communes"] == 1
    assert all(tampered(*k) for k in others)  # not the page's: left alone
    got = cells(engine)
    rollup.rebuild(engine)
    want = cells(engine)
    mine = {(k[1], k[0], k[3]) for k in want} & touched
    assert mine == touched  # the page's units' cells (2026 and every other period): as a rebuild's
    assert {k: v for k, v in got.items() if (k[1], k[0], k[3]) in touched} == {
        k: v for k, v in want.items() if (k[1], k[0], k[3]) in touched
    }

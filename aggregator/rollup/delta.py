"""Cells kept by difference: the rows the cells count (``indicator_counted``) and a refresh that adds what a
page's units count now and takes away what they counted before.

A stock cell (commune × period × disaggregation) is the sum of one row per unit: the unit's latest row of
the period (rule 2). ``indicator_counted`` keeps those rows for every group with exact (integer) sums — for
stock groups one row per unit and month in which the row is the unit's latest, flagged when it is also its
latest of the quarter, year, school year; for flow groups (every visit counts) every row that adds something
to a cell, as a unit of its own — with the commune and disaggregation values the cells use and the group's
measures. A full rebuild fills it (:func:`fill`: the window marks of the rebuild's own pass). A refresh
(:func:`deltas`) takes the units U the page touches (the units of the page's current rows, and of the
counted rows its submissions had: rows deleted or replaced), deletes U's counted rows (old), recomputes them
from U's source rows only (new, through the unit key's index) and returns Σ new − Σ old per cell;
:func:`apply` adds that to the commune cells and to every level above them (district, 2025 commune,
province, the 2025 copies) and removes the cells left 0/0, which a rebuild leaves out.

State, not events: the counted table always holds what the cells count, so a page refreshed twice, or pages
refreshed in any order, give the cells a rebuild gives. Groups with non-integer sums (none today) cannot be
added to exactly: while one exists (:func:`exact`) refresh recomputes the touched communes as before. When
the table was not filled with the current definitions (:func:`ready`: after the upgrade that added it, or a
change of definitions), refresh runs one full rebuild instead, which fills it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    Connection,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aggregator import indicators as defs
from aggregator.indicators import SOURCES, Indicator
from aggregator.rollup.cells import ALL_PERIODS, CellQuery, groups, latest_of, latest_window
from aggregator.rollup.tables import (
    COLS,
    COUNTED,
    COUNTED_DIMS,
    PK_ORDER,
    UNKNOWN_COMMUNE,
    IndicatorCountedGroup,
    IndicatorValue,
)
from core import orgunits

Key = tuple[str, str, str, str, str]  # period, commune, dis_key, dis_value, indicator
QUARTER, YEAR, SCHOOL_YEAR = 1, 2, 4  # flags: also the unit's latest row of its quarter / year / school year
CELL_KEYS = [c for c in COLS if c not in ("numerator", "denominator")]


def counted_groups(indicators: Iterable[Indicator] | None = None) -> list[CellQuery]:
    """The groups whose cells are kept by difference (exact sums), as full-rebuild queries."""
    out = []
    for (source, kind), group in groups(indicators or defs.load().values()).items():
        q = CellQuery(SOURCES[source], kind, ALL_PERIODS, group)
        if q.exact_rollup:
            out.append(q)
    return out


def group_name(q: CellQuery) -> str:
    """A group's name in the counted table: its source for stock groups (child, household, facility),
    ``<source>/flow`` for flow groups."""
    return q.source.name if q.kind == "stock" else f"{q.source.name}/{q.kind}"


def _unit(q: CellQuery) -> Any:
    """What one counted row stands for: a unit (stock), or the row itself (flow: every visit counts)."""
    return q.source.unit() if q.kind == "stock" else list(q.source.table.primary_key.columns)[0]


_MEASURES: dict[Any, tuple[dict[str, tuple[str, Any]], dict[str, str]]] = {}


def _measures(q: CellQuery) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
    """``q.measures()``, remembered per definitions (compiling every measure's SQL takes ~0.06 s for the
    three groups, several times a page)."""
    key = (
        q.source.name,
        q.kind,
        tuple((i.code, i.numerator, i.denominator, i.disaggregate) for i in q.indicators),
    )
    if key not in _MEASURES:
        _MEASURES[key] = q.measures()
    return _MEASURES[key]


def signature(q: CellQuery) -> str:
    """What a group's counted rows depend on: its indicators, their measures and disaggregations."""
    aggs, measure_of = _measures(q)
    parts = [group_name(q), *aggs, *sorted(measure_of.items())]
    parts += [f"{i.code}:{','.join(i.disaggregate)}" for i in q.indicators]
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:16]


def exact() -> bool:
    """Whether every group's cells are exact (integer) sums, which can be kept by difference."""
    every = groups(defs.load().values())
    return all(CellQuery(SOURCES[s], k, ALL_PERIODS, g).exact_rollup for (s, k), g in every.items())


def ready(conn: Connection) -> bool:
    """Whether a refresh can keep cells by difference: every group has exact sums, and the counted table was
    filled with the current definitions."""
    if not exact():
        return False
    t = IndicatorCountedGroup.__table__  # type: ignore[attr-defined]
    have = {r[0]: r[1] for r in conn.execute(select(t.c.grp, t.c.sig))}
    want = {group_name(q): signature(q) for q in counted_groups()}
    return have == want


# ---------------------------------------------------------------- the counted rows


def _units_filter(q: CellQuery, dialect: str) -> Any:
    """The source rows of the units ``:units`` (their keys; with ``:null_unit``, also the unit of the rows
    without a key), through the key's index (and, for sources where such a row is a unit of its own, the
    primary key's)."""
    src, t = q.source, q.source.table
    key, pk = t.c[src.stock_key or ""], list(t.primary_key.columns)[0]
    if q.kind != "stock":  # the rows themselves
        return (
            pk == any_(bindparam("units", type_=ARRAY(String)))
            if dialect == "postgresql"
            else pk.in_(bindparam("units", expanding=True))
        )
    if dialect == "postgresql":
        units = bindparam("units", type_=ARRAY(String))
        conds = [key == any_(units)]
        if src.own_unit_when_null:
            conds.append(and_(key.is_(None), pk == any_(units)))
    else:
        conds = [key.in_(bindparam("units", expanding=True))]
        if src.own_unit_when_null:
            conds.append(and_(key.is_(None), pk.in_(bindparam("units2", expanding=True))))
    if not src.own_unit_when_null:  # rows without a key are one unit together (the window's NULL partition)
        conds.append(and_(bindparam("null_unit", type_=Boolean), key.is_(None)))
    return or_(*conds)


_SELECTS: dict[tuple[str, str, bool], Any] = {}


def counted_select(q: CellQuery, dialect: str, *, of_units: bool) -> Any:
    """The counted rows (COUNTED's columns) of ``q``'s source: every unit's, or (``of_units``) those of the
    units bound as parameters (:func:`_units_filter`). The window pass of the full rebuild
    (``CellQuery._build_all``): the month index of the unit's next row in rule 2's order marks its latest row
    of each month, quarter, year and school year."""
    cache = (signature(q), dialect, of_units)
    if cache in _SELECTS:
        return _SELECTS[cache]
    src, t = q.source, q.source.table
    known = sorted(orgunits.communes())
    commune = case((t.c.commune_code.in_(known), t.c.commune_code), else_=literal(UNKNOWN_COMMUNE))
    aggs, _ = _measures(q)
    values: list[Any] = []
    raw: list[Any] = []
    for sig, (_name, expr) in aggs.items():
        if sig.startswith("count:"):
            expr = literal(1) if expr is None else case((expr, 1), else_=0)
        raw.append(expr)
        values.append(cast(expr, String))
    measures: Any = values[0]
    for v in values[1:]:
        measures = measures + literal(",") + v
    pk = list(t.primary_key.columns)[0]
    where: list[Any] = [t.c.year.is_not(None), t.c.month.is_not(None)]
    if of_units:
        where.append(_units_filter(q, dialect))
    dims = [defs.dimension_sql(d, src).label(f"dim_{d}") for d in q.dims]
    if q.kind != "stock":
        # every row counts in its month, quarter, year and school year; rows adding nothing to any cell are
        # left out (a row is its own unit: dropping or replacing one of them changes nothing else)
        adds = or_(*[v != 0 for v in raw])
        stmt = select(
            literal(group_name(q)).label("grp"),
            pk.label("unit"),
            (t.c.year * 12 + t.c.month - 1).label("ym"),
            literal(QUARTER + YEAR + SCHOOL_YEAR).label("flags"),
            commune.label("commune"),
            *[
                (defs.dimension_sql(d, src) if d in q.dims else literal(None, String)).label(f"dim_{d}")
                for d in COUNTED_DIMS
            ],
            measures.label("measures"),
            t.c.submission_id.label("submission_id"),
        ).where(*where, adds)
        _SELECTS[cache] = stmt
        return stmt
    cols = [
        (t.c.year * 12 + t.c.month - 1).label("ym"),
        commune.label("commune"),
        *dims,
        measures.label("measures"),
        t.c.submission_id.label("submission_id"),
    ]
    rows = latest_window(t, cols, src.unit(), where, keep_unit=True)
    ym = rows.c.ym
    latest = latest_of(ym, rows.c.next_ym)
    flags = (
        case((latest["quarter"], QUARTER), else_=0)
        + case((latest["year"], YEAR), else_=0)
        + case((latest["school_year"], SCHOOL_YEAR), else_=0)
    )
    stmt = select(
        literal(group_name(q)).label("grp"),
        rows.c.unit,
        ym,
        cast(flags, Integer).label("flags"),
        rows.c.commune,
        *[
            (rows.c[f"dim_{d}"] if d in q.dims else literal(None, String)).label(f"dim_{d}")
            for d in COUNTED_DIMS
        ],
        rows.c.measures,
        rows.c.submission_id,
    ).where(latest["month"])
    _SELECTS[cache] = stmt
    return stmt


def fill(conn: Connection) -> int:
    """(Re)fill the counted table from every row (a full rebuild or first build, in its transaction) and
    record the groups' signatures; returns the number of counted rows."""
    dialect = conn.dialect.name
    marks = IndicatorCountedGroup.__table__  # type: ignore[attr-defined]
    if dialect == "postgresql":  # bulk load without the indexes, then build them once
        conn.execute(text(f'TRUNCATE "{COUNTED.name}"'))
        for ix in COUNTED.indexes:
            ix.drop(conn)
    else:
        conn.execute(delete(COUNTED))
    conn.execute(delete(marks))
    names = [c.name for c in COUNTED.columns]
    for q in counted_groups():
        conn.execute(insert(COUNTED).from_select(names, counted_select(q, dialect, of_units=False)))
        conn.execute(insert(marks).values(grp=group_name(q), sig=signature(q)))
    if dialect == "postgresql":
        for ix in COUNTED.indexes:
            ix.create(conn)
        conn.execute(text(f'ANALYZE "{COUNTED.name}"'))
    return int(conn.execute(select(func.count()).select_from(COUNTED)).scalar_one())


def _period_codes(ym: int, flags: int) -> tuple[str, list[str]]:
    """The month of a counted row, and the other periods it is the unit's latest row of."""
    y, m0 = divmod(ym, 12)
    m = m0 + 1
    others = []
    if flags & QUARTER:
        others.append(f"{y}Q{m0 // 3 + 1}")
    if flags & YEAR:
        others.append(str(y))
    if flags & SCHOOL_YEAR:
        s = y - (1 if m < 9 else 0)
        others.append(f"SY{s}-{s + 1}")
    return f"{y}-{m:02d}", others


def _add_rows(q: CellQuery, rows: Iterable[Any], sign: int, out: dict[Key, list[int]]) -> None:
    """Add (sign 1) or take away (-1) what counted rows contribute to their cells (as ``CellQuery.cells``
    makes them: months are totals; other periods a total and one cell per disaggregation value of each
    indicator's dimensions)."""
    aggs, measure_of = _measures(q)
    index = {name: i for i, (name, _) in enumerate(aggs.values())}
    pairs = [
        (ind.code, index[measure_of[f"n{i}"]], index[measure_of[f"d{i}"]], set(ind.disaggregate))
        for i, ind in enumerate(q.indicators)
    ]
    for r in rows:
        vals = [int(v) for v in r.measures.split(",")]
        month, others = _period_codes(r.ym, r.flags)
        for code, ni, di, _ in pairs:
            acc = out.setdefault((month, r.commune, "", "", code), [0, 0])
            acc[0] += sign * vals[ni]
            acc[1] += sign * vals[di]
        dimvals = [(d, getattr(r, f"dim_{d}")) for d in q.dims]
        for period in others:
            for code, ni, di, dis in pairs:
                n, d = sign * vals[ni], sign * vals[di]
                for dk, dv in [("", ""), *[(x, v) for x, v in dimvals if x in dis and v is not None]]:
                    acc = out.setdefault((period, r.commune, dk, dv, code), [0, 0])
                    acc[0] += n
                    acc[1] += d


def _unit_params(q: CellQuery, units: set[str | None], dialect: str) -> dict[str, Any]:
    keys = sorted(u for u in units if u is not None)
    params: dict[str, Any] = {"units": keys}
    if q.kind == "stock" and not q.source.own_unit_when_null:
        params["null_unit"] = None in units
    if q.kind == "stock" and dialect != "postgresql" and q.source.own_unit_when_null:
        params["units2"] = keys
    return params


def deltas(conn: Connection, ids: set[str], out: dict[Key, list[int]]) -> dict[str, int]:
    """Replace the counted rows of the units the submissions ``ids`` touch and add Σ new − Σ old per cell to
    ``out``; returns the number of touched units per group."""
    dialect = conn.dialect.name
    id_list = sorted(ids)
    stats: dict[str, int] = {}
    for q in counted_groups():
        t, name = q.source.table, group_name(q)
        units: set[str | None] = set(
            conn.execute(select(_unit(q)).distinct().where(t.c.submission_id.in_(id_list))).scalars()
        )
        units |= set(
            conn.execute(
                select(COUNTED.c.unit)
                .distinct()
                .where(COUNTED.c.grp == name, COUNTED.c.submission_id.in_(id_list))
            ).scalars()
        )
        stats[name] = len(units)
        if not units:
            continue
        keys = sorted(u for u in units if u is not None)
        mine = [COUNTED.c.grp == name]
        if dialect == "postgresql":
            of = COUNTED.c.unit == any_(bindparam("ukeys", keys, type_=ARRAY(String)))
        else:
            of = COUNTED.c.unit.in_(keys) if keys else false()
        if None in units:
            of = or_(of, COUNTED.c.unit.is_(None))
        old = conn.execute(select(COUNTED).where(*mine, of)).all()
        conn.execute(delete(COUNTED).where(*mine, of))
        new = conn.execute(counted_select(q, dialect, of_units=True), _unit_params(q, units, dialect)).all()
        if new:
            conn.execute(insert(COUNTED), [r._asdict() for r in new])
        _add_rows(q, old, -1, out)
        _add_rows(q, new, 1, out)
    return stats


def apply(conn: Connection, deltas: dict[Key, list[int]]) -> tuple[set[str], set[str]]:
    """Add the commune cells' deltas to them and to every level above; remove cells left 0/0. Returns the
    periods and legacy communes whose cells changed."""
    v = IndicatorValue.__table__  # type: ignore[attr-defined]
    cm = orgunits.communes()
    prov = orgunits.PROVINCE_CODE
    rows: dict[tuple[str, ...], list[int]] = {}
    for (period, commune, dk, dv, ind), (dn, dd) in deltas.items():
        if not dn and not dd:
            continue
        units = [("legacy", "commune", commune), ("legacy", "province", prov), ("2025", "province", prov)]
        if commune in cm:
            c = cm[commune]
            units += [("legacy", "district", c.district_code), ("2025", "district", c.district_code)]
            units.append(("2025", "commune", c.code_2025))
        for h, lvl, ou in units:
            acc = rows.setdefault((h, lvl, period, ou, dk, dv, ind), [0, 0])
            acc[0] += dn
            acc[1] += dd
    changed = [(k, n, d) for k, (n, d) in rows.items() if n or d]
    if not changed:
        return set(), set()
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = pg_insert(v)
    else:
        stmt = sqlite_insert(v)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(PK_ORDER),
        set_={
            "numerator": v.c.numerator + stmt.excluded.numerator,
            "denominator": v.c.denominator + stmt.excluded.denominator,
        },
    )
    conn.execute(
        stmt,
        [
            {**dict(zip(CELL_KEYS, k, strict=True)), "numerator": float(n), "denominator": float(d)}
            for k, n, d in changed
        ],
    )
    # cells the deltas emptied: a rebuild leaves them out
    touched = sorted({(k[3], k[2]) for k, _, _ in changed})
    for i in range(0, len(touched), 500):
        conn.execute(
            delete(v).where(
                tuple_(v.c.org_unit, v.c.period).in_(touched[i : i + 500]),
                v.c.numerator == 0,
                v.c.denominator == 0,
            )
        )
    periods = {k[2] for k, _, _ in changed}
    communes = {k[3] for k, _, _ in changed if k[0] == "legacy" and k[1] == "commune"}
    return periods, communes

"""Roll indicator numerators and denominators up by org unit and period (SQL GROUP BYs), and read them back.

Only legacy-commune cells are computed from the ingested rows; every other level is a sum of commune cells:
legacy district and province, the 2025 communes (through the static legacy → 2025 commune map of
``core.orgunits``), and, for the 2025 hierarchy, the province and the legacy districts kept as a grouping.
Stock
indicators take the latest observation of each unit (child, station) within the period *before* grouping,
so each
unit lands in exactly one commune and the sums stay exact at every level. Ratios are computed last, on read.

Monthly cells are totals only; disaggregations are kept for quarters, years and school years.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Date,
    Engine,
    Float,
    FromClause,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    collate,
    delete,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlmodel import Field, Session, SQLModel

from aggregator import indicators as defs
from aggregator import suppression
from aggregator.indicators import SOURCES, Indicator, Source
from aggregator.periods import PERIOD_TYPES, parse_period, periods_of
from core import orgunits
from core.errors import BadRequest, NotFound
from core.settings import get_settings

HIERARCHIES = ("legacy", "2025")
LEVELS = ("province", "district", "commune")
UNKNOWN_COMMUNE = ""  # rows without a (valid) commune count at province level only
BATCH = 5000
REBUILD_WORK_MEM = "256MB"
PK_ORDER = ("org_unit", "period", "indicator", "level", "hierarchy", "dis_key", "dis_value")
LOCK_KEY = 0x1D1C  # pg_advisory_xact_lock key shared by rebuild and refresh
# a full PostgreSQL rebuild computes its large stock groups in this many parts by unit, at once, on as many
# connections (the rebuild's own and helpers), plus one more helper for the other large groups meanwhile
REBUILD_CONNECTIONS = 2
SPLIT_ROWS = 200_000  # (large: at least this many rows in the source table)


class IndicatorValue(SQLModel, table=True):
    """One indicator × hierarchy × level × org unit × period × disaggregation: numerator and denominator
    sums."""

    __tablename__ = "indicator_value"
    # key order: the org unit first (the most distinct leading values make the key's index build sort about
    # a third faster than hierarchy-first, whose leading columns tie on almost every comparison); the
    # reads' equality and IN conditions still cover a leading prefix of the key (all but dis_value)
    __table_args__ = (PrimaryKeyConstraint(*PK_ORDER),)

    hierarchy: str = Field(primary_key=True)  # legacy | 2025
    level: str = Field(primary_key=True)  # province | district | commune
    period: str = Field(primary_key=True)  # 2026, 2026Q4, 2026-11, SY2026-2027
    org_unit: str = Field(primary_key=True)
    dis_key: str = Field(primary_key=True, default="")  # '' for the total
    dis_value: str = Field(primary_key=True, default="")  # '' for the total
    indicator: str = Field(primary_key=True)
    numerator: float = 0.0
    denominator: float = 0.0


class IndicatorOrgUnit(SQLModel, table=True):
    """The legacy commune → legacy district / 2025 commune map, as a table for the SQL roll-ups."""

    __tablename__ = "indicator_orgunit"

    commune_code: str = Field(primary_key=True)
    district_code: str
    commune_2025_code: str


class IndicatorGeneration(SQLModel, table=True):
    """One row: bumped by every rebuild and refresh, so readers can cache what they derive from the cells
    (the suppression pattern) until the cells change."""

    __tablename__ = "indicator_generation"

    id: int = Field(default=1, primary_key=True)
    generation: int = 0


def bump_generation(conn: Connection) -> None:
    t = IndicatorGeneration.__table__  # type: ignore[attr-defined]
    conn.execute(t.update().where(t.c.id == 1).values(generation=t.c.generation + 1))


def generation(conn: Connection) -> int:
    t = IndicatorGeneration.__table__  # type: ignore[attr-defined]
    return int(conn.execute(select(t.c.generation).where(t.c.id == 1)).scalar_one_or_none() or 0)


COLS = [
    "hierarchy",
    "level",
    "period",
    "org_unit",
    "dis_key",
    "dis_value",
    "indicator",
    "numerator",
    "denominator",
]
_READY: set[str] = set()


def ensure_tables(engine: Engine) -> None:
    """Create the value and org-unit map tables once per process (additive; the map is filled from the
    register)."""
    key = str(engine.url)
    if key in _READY:
        return
    om: Table = IndicatorOrgUnit.__table__  # type: ignore[attr-defined]
    om.create(engine, checkfirst=True)
    IndicatorValue.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    gen: Table = IndicatorGeneration.__table__  # type: ignore[attr-defined]
    gen.create(engine, checkfirst=True)
    with engine.begin() as conn:
        if conn.execute(select(gen.c.id)).first() is None:
            conn.execute(insert(gen).values(id=1, generation=0))
        have = conn.execute(select(func.count()).select_from(om)).scalar_one()
        if have != len(orgunits.communes()):
            conn.execute(delete(om))
            conn.execute(
                insert(om),
                [
                    {
                        "commune_code": c.code,
                        "district_code": c.district_code,
                        "commune_2025_code": c.code_2025,
                    }
                    for c in orgunits.communes().values()
                ],
            )
    _READY.add(key)


# ---------------------------------------------------------------- SQL building blocks


def period_sql(ptype: str, t: FromClause) -> ColumnElement[str]:
    """The period code of a row, built from its integer year and month columns (portable SQL)."""
    y, m = t.c.year, t.c.month
    ytxt = cast(y, String)
    if ptype == "year":
        return ytxt
    if ptype == "quarter":
        q = case((m <= 3, "1"), (m <= 6, "2"), (m <= 9, "3"), else_="4")
        return ytxt + literal("Q") + q
    if ptype == "month":
        return ytxt + literal("-") + case((m < 10, "0"), else_="") + cast(m, String)
    start = y - case((m < 9, 1), else_=0)
    return literal("SY") + cast(start, String) + literal("-") + cast(start + 1, String)


def periods_by_type(dates: Iterable[date], years: Iterable[int] = ()) -> dict[str, set[str]]:
    """The period codes, by type, that visits on ``dates`` belong to (plus every period of ``years``: records
    whose visit date is unknown, e.g. deleted ones)."""
    out: dict[str, set[str]] = {p: set() for p in PERIOD_TYPES}
    days = set(dates) | {date(y, mo, 1) for y in years for mo in range(1, 13)}
    for d in days:
        for ptype, p in periods_of(d).items():
            out[ptype].add(p.code)
    return out


@dataclass
class CellQuery:
    """One GROUP BY over a source table for one group of indicators (same table and kind) and one period
    type."""

    source: Source
    kind: str
    ptype: str
    indicators: list[Indicator]
    communes: set[str] | None = None  # incremental: only these legacy communes
    periods: set[str] | None = None  # incremental: only these periods (codes of this period type)
    # full rebuild split over connections: (k, n) = only the units (stock key) whose hash falls in the k-th
    # of n equal ranges; every unit lands in exactly one part, so the cells are the sums of the parts' cells
    part: tuple[int, int] | None = None

    @property
    def dims(self) -> list[str]:
        if self.ptype == "month":  # ALL_PERIODS: the month rows carry NULL dimensions
            return []
        seen: list[str] = []
        for ind in self.indicators:
            for d in ind.disaggregate:
                if d not in seen:
                    seen.append(d)
        return seen

    @property
    def incremental(self) -> bool:
        return self.communes is not None

    @property
    def exact_rollup(self) -> bool:
        """Whether partial sums can be summed again without changing a digit: counts and integer columns
        only (float sums would depend on the order of additions)."""
        for ind in self.indicators:
            for m in (ind.numerator, ind.denominator):
                if m.column is not None and not isinstance(SOURCES[m.source].column(m.column).type, Integer):
                    return False
        return True

    def _row_filter(self, t: Table) -> ColumnElement[bool]:
        conds: list[ColumnElement[bool]] = [t.c.year.is_not(None), t.c.month.is_not(None)]
        if self.incremental:
            conds.append(t.c.visit_date.between(bindparam("lo", type_=Date), bindparam("hi", type_=Date)))
        return and_(*conds)

    def select(self, dialect: str) -> Any:
        """The statement (cached: building these large expressions costs more than running them on small
        data)."""
        key = (
            self.source.name,
            self.kind,
            self.ptype,
            tuple(i.code for i in self.indicators),
            dialect,
            self.incremental,
            self.part,
        )
        if key not in _STATEMENTS:
            _STATEMENTS[key] = self._build_all(dialect) if self.ptype == ALL_PERIODS else self._build(dialect)
        return _STATEMENTS[key]

    def _build(self, dialect: str) -> Any:
        src, t = self.source, self.source.table
        known = sorted(orgunits.communes())
        # a commune outside the register (or none) counts at province level only
        commune = case((t.c.commune_code.in_(known), t.c.commune_code), else_=literal(UNKNOWN_COMMUNE))
        # index-friendly filter on the raw column for incremental runs
        in_wanted = or_(
            t.c.commune_code.in_(bindparam("communes", expanding=True)),
            and_(
                bindparam("unknown", type_=Boolean),
                or_(t.c.commune_code.is_(None), t.c.commune_code.not_in(known)),
            ),
        )

        def c(expr: Any) -> Any:
            # byte-order sorting and grouping on PostgreSQL: locale-aware text comparison dominates the sorts
            return collate(expr, "C") if dialect == "postgresql" else expr

        per_row: list[Any] = [c(period_sql(self.ptype, t)).label("period"), c(commune).label("commune")]
        per_row += [c(defs.dimension_sql(d, src)).label(f"dim_{d}") for d in self.dims]
        for i, ind in enumerate(self.indicators):
            per_row += [ind.numerator.sql().label(f"n{i}"), ind.denominator.sql().label(f"d{i}")]
        where = self._row_filter(t)
        if self.kind == "stock":
            key = t.c[src.stock_key or ""]
            pk = list(t.primary_key.columns)
            per_row.append(
                func.row_number()
                .over(
                    partition_by=[c(key), c(period_sql(self.ptype, t))],
                    order_by=[t.c.visit_date.desc(), *[c.desc() for c in pk]],
                )
                .label("rn")
            )
            if self.incremental:
                # only units with an observation in the affected communes can change those communes' cells
                movers = select(key).where(in_wanted, where)
                where = and_(where, key.in_(movers))
        elif self.incremental:
            where = and_(where, in_wanted)
        inner = select(*per_row).where(where).subquery("rows")
        outer_where: list[ColumnElement[bool]] = []
        if self.kind == "stock":
            outer_where.append(inner.c.rn == 1)
            if self.incremental:
                outer_where.append(inner.c.commune.in_(bindparam("communes2", expanding=True)))
        sums = []
        for i in range(len(self.indicators)):
            sums += [func.sum(inner.c[f"n{i}"]).label(f"n{i}"), func.sum(inner.c[f"d{i}"]).label(f"d{i}")]
        dim_cols = [inner.c[f"dim_{d}"] for d in self.dims]
        if dialect in ("postgresql", "duckdb") and dim_cols:
            sets = [text("()")] + [tuple_(c) for c in dim_cols]
            return (
                select(inner.c.period, inner.c.commune, *dim_cols, *sums)
                .where(*outer_where)
                .group_by(inner.c.period, inner.c.commune, func.grouping_sets(*sets))
            )
        parts = []
        for chosen in [None, *self.dims]:
            cols = [
                (inner.c[f"dim_{d}"] if d == chosen else literal(None, String)).label(f"dim_{d}")
                for d in self.dims
            ]
            grp = [inner.c.period, inner.c.commune] + ([inner.c[f"dim_{chosen}"]] if chosen else [])
            parts.append(
                select(inner.c.period, inner.c.commune, *cols, *sums).where(*outer_where).group_by(*grp)
            )
        return parts[0] if len(parts) == 1 else union_all(*parts)

    def _build_all(self, dialect: str) -> Any:
        """Full rebuild, every period type in one statement and one pass over the rows: (1) one window pass
        (stock: the month index of the next observation of the same unit, ordered as the per-period
        ``row_number`` orders them, marks the latest row of each month, quarter, year and school year),
        (2) one hash aggregate of the rows by month × commune × every dimension (× those marks), one
        aggregate per distinct measure, (3) small group-bys of that per period type. Counts and integer sums
        only (``exact_rollup``): the sums are exactly those of ``_build``."""
        src, t = self.source, self.source.table
        known = sorted(orgunits.communes())
        commune = case((t.c.commune_code.in_(known), t.c.commune_code), else_=literal(UNKNOWN_COMMUNE))

        def c(expr: Any) -> Any:
            return collate(expr, "C") if dialect == "postgresql" else expr

        dims = self.dims
        n_ind = len(self.indicators)
        per_row: list[Any] = [t.c.year.label("year"), t.c.month.label("month"), c(commune).label("commune")]
        per_row += [c(defs.dimension_sql(d, src)).label(f"dim_{d}") for d in dims]
        # one per-row column and one aggregate per *distinct* measure (indicators share numerators and
        # denominators); counts as count(*) FILTER (WHERE condition): no 0/1 to compute and add per row
        measure_of: dict[str, str] = {}  # "n3" / "d3" -> the part column holding its sums
        aggs: dict[str, tuple[str, Any]] = {}  # SQL text of the measure -> (part column, per-row expression)
        for i, ind in enumerate(self.indicators):
            for x, m in (("n", ind.numerator), ("d", ind.denominator)):
                expr: Any
                if m.column is None:
                    expr = m.condition()  # None: every row
                    sig = "count:" + ("*" if expr is None else _sql_text(expr))
                else:
                    expr = m.sql()
                    sig = "sum:" + _sql_text(expr)
                if sig not in aggs:
                    aggs[sig] = (f"m{len(aggs)}", expr)
                measure_of[f"{x}{i}"] = aggs[sig][0]
        per_row += [expr.label(name) for name, expr in aggs.values() if expr is not None]
        stock = self.kind == "stock"
        has_period = [t.c.year.is_not(None), t.c.month.is_not(None)]
        if self.part is not None:
            # the k-th of n equal ranges of the unit's hash: a range (not hash % n = k, which PostgreSQL
            # estimates at 0.5 % of the rows and then plans sort-based aggregates for)
            k, n = self.part
            h, top = _unit_hash(t.c[src.stock_key or ""], dialect)
            if k > 0:
                has_period.append(h >= literal(top * k // n))
            if k < n - 1:
                has_period.append(h < literal(top * (k + 1) // n))
        if stock:
            key = t.c[src.stock_key or ""]
            pk = list(t.primary_key.columns)
            # months since year 0, 0-based month: one integer, so one window function marks every period
            per_row.append((t.c.year * 12 + t.c.month - 1).label("ym"))
            # the per-row values are computed below the window's sort (which then carries them instead of
            # the raw columns); OFFSET 0 keeps PostgreSQL from pulling them up above the window
            pk_cols = [k.label(f"pk_{k.name}") for k in pk]
            w = (
                select(*per_row, c(key).label("unit"), t.c.visit_date.label("vd"), *pk_cols)
                .where(*has_period)
                .offset(0)
                .subquery("per_row")
            ).c
            # ascending (visit_date, pk): the last row of a period is row_number() = 1 of _build
            order = [w.vd, *[w[f"pk_{k.name}"] for k in pk]]
            rows = select(
                *[w[e.name] for e in per_row],
                func.lead(w.ym).over(partition_by=[w.unit], order_by=order).label("next_ym"),
            ).subquery("rows")
        else:
            rows = select(*per_row).where(*has_period).subquery("rows")
        keys1: list[Any] = [rows.c.year, rows.c.month, rows.c.commune] + [rows.c[f"dim_{d}"] for d in dims]
        where1: list[Any] = []
        if stock:
            ym, nym = rows.c.ym, rows.c.next_ym
            last = nym.is_(None)

            def start(v: Any, n: int, shift: int = 0) -> Any:
                # the first month of v's n-month span (portable integer arithmetic: % and -, no division)
                return (v - shift) - (v - shift) % n

            # latest in its month; latest in its quarter / year / school year implies latest in its month
            where1.append(or_(last, nym != ym))
            flags = {
                "quarter": or_(last, start(nym, 3) != start(ym, 3)),
                "year": or_(last, start(nym, 12) != start(ym, 12)),
                # school years start in September (0-based month 8)
                "school_year": or_(last, start(nym, 12, 8) != start(ym, 12, 8)),
            }
            keys1 += [case((cond, 1), else_=0).label(f"last_{p}") for p, cond in flags.items()]
        # INTEGER partial sums (one month, commune and combination of dimensions: far below 2^31; an
        # overflow would raise, not wrap): PostgreSQL sums INTEGER with a 64-bit accumulator, BIGINT with a
        # slower 128-bit one
        sums1 = []
        for sig, (name, expr) in aggs.items():
            agg: Any
            if sig.startswith("count:"):
                agg = func.count() if expr is None else func.count().filter(rows.c[name])
            else:
                agg = func.sum(rows.c[name])
            sums1.append(cast(agg, Integer).label(name))
        part = select(*keys1, *sums1).where(*where1).group_by(*keys1).cte("part")
        out = []
        for ptype in PERIOD_TYPES:
            pdims = [] if ptype == "month" else dims
            cols: list[Any] = [c(period_sql(ptype, part)).label("period"), part.c.commune]
            cols += [part.c[f"dim_{d}"] for d in pdims]
            used = sorted({measure_of[k] for k in measure_of}, key=lambda v: int(v[1:]))
            cols += [part.c[v] for v in used]
            where2 = [part.c[f"last_{ptype}"] == 1] if stock and ptype != "month" else []
            inner = select(*cols).where(*where2).subquery(f"rows_{ptype}")
            sums = []
            for i in range(n_ind):
                # sums of integer sums: NUMERIC on PostgreSQL, read as Decimal; BIGINT holds them exactly
                sums += [
                    cast(func.sum(inner.c[measure_of[f"{x}{i}"]]), BigInteger).label(f"{x}{i}")
                    for x in ("n", "d")
                ]
            if not pdims:
                nulls = [literal(None, String).label(f"dim_{d}") for d in dims]
                out.append(
                    select(inner.c.period, inner.c.commune, *nulls, *sums).group_by(
                        inner.c.period, inner.c.commune
                    )
                )
                continue
            dim_cols = [inner.c[f"dim_{d}"] for d in pdims]
            if dialect in ("postgresql", "duckdb"):
                sets = [text("()")] + [tuple_(x) for x in dim_cols]
                out.append(
                    select(inner.c.period, inner.c.commune, *dim_cols, *sums).group_by(
                        inner.c.period, inner.c.commune, func.grouping_sets(*sets)
                    )
                )
                continue
            for chosen in [None, *pdims]:
                dcols = [
                    (inner.c[f"dim_{d}"] if d == chosen else literal(None, String)).label(f"dim_{d}")
                    for d in pdims
                ]
                grp = [inner.c.period, inner.c.commune] + ([inner.c[f"dim_{chosen}"]] if chosen else [])
                out.append(select(inner.c.period, inner.c.commune, *dcols, *sums).group_by(*grp))
        return union_all(*out)

    def _runs(self) -> Iterator[tuple[dict[str, Any], set[str] | None]]:
        """(parameters, period codes to keep) per execution: one for a rebuild, one per year when
        incremental."""
        if not self.incremental:
            yield {}, None
            return
        communes = sorted(self.communes or ())
        for code in sorted(self.periods or ()):
            p = parse_period(code)
            params = {
                "lo": p.start,
                "hi": p.end,
                "communes": communes,
                "communes2": communes,
                "unknown": UNKNOWN_COMMUNE in communes,
            }
            yield params, {code}

    def insert_cells(self, table: Table, dialect: str, wide_rows: Any = None) -> Any:
        """Full rebuild only: ``INSERT INTO table … SELECT`` the long rows of :meth:`cells`, unpivoted in SQL
        (the wide rows, materialised once as a CTE, are read once per indicator): the same cells, without
        fetching the wide rows into Python and copying the long ones back. ``wide_rows``: a selectable with
        the columns of :meth:`select` to unpivot instead (the merged parts of a split rebuild)."""
        if self.incremental:
            raise ValueError("insert_cells is for full rebuilds; incremental runs use cells()")
        wide = (self.select(dialect) if wide_rows is None else wide_rows).cte("wide")
        dims = self.dims
        dim_key: Any = literal("")
        if dims:
            dim_key = case(*[(wide.c[f"dim_{d}"].is_not(None), literal(d)) for d in dims], else_=literal(""))
        dim_val = func.coalesce(*[wide.c[f"dim_{d}"] for d in dims], literal("")) if dims else literal("")
        parts = []
        for i, ind in enumerate(self.indicators):
            n = func.coalesce(wide.c[f"n{i}"], 0)
            d = func.coalesce(wide.c[f"d{i}"], 0)
            # rows of a disaggregation this indicator is not defined with are left out, as are empty cells
            other = [wide.c[f"dim_{x}"].is_(None) for x in dims if x not in ind.disaggregate]
            parts.append(
                select(
                    literal("legacy"),
                    literal("commune"),
                    wide.c.period,
                    wide.c.commune,
                    dim_key,
                    dim_val,
                    literal(ind.code),
                    cast(n, Float),
                    cast(d, Float),
                ).where(or_(n != 0, d != 0), *other)
            )
        return insert(table).from_select(COLS, union_all(*parts))

    def merged(self, parts: list[FromClause]) -> Any:
        """The wide rows of a split rebuild: the parts' wide rows (tables with the columns of
        :meth:`select`) summed per period × commune × disaggregation."""
        dims = [f"dim_{d}" for d in self.dims]
        sums = [f"{x}{i}" for i in range(len(self.indicators)) for x in ("n", "d")]
        names = ["period", "commune", *dims, *sums]
        every = union_all(*[select(*[p.c[x] for x in names]) for p in parts]).subquery("parts")
        keys = [every.c[x] for x in ("period", "commune", *dims)]
        return select(*keys, *[cast(func.sum(every.c[x]), BigInteger).label(x) for x in sums]).group_by(*keys)

    def cells(self, conn: Connection) -> Iterator[tuple[Any, ...]]:
        """Long rows (COLS order) for the legacy commune level; empty cells (0/0) are left out."""
        stmt = self.select(conn.dialect.name)
        dis_of = [set(ind.disaggregate) for ind in self.indicators]
        codes = [ind.code for ind in self.indicators]
        dims = self.dims
        base = 2 + len(dims)
        for params, wanted in self._runs():
            for row in conn.execute(stmt, params):
                period, commune = row[0], row[1]
                if wanted is not None and period not in wanted:
                    continue
                dim_key, dim_val = "", ""
                for j, d in enumerate(dims):
                    if row[2 + j] is not None:
                        dim_key, dim_val = d, row[2 + j]
                        break
                for i, code in enumerate(codes):
                    if dim_key and dim_key not in dis_of[i]:
                        continue
                    n, d = row[base + 2 * i], row[base + 2 * i + 1]
                    if not n and not d:
                        continue
                    yield (
                        "legacy",
                        "commune",
                        period,
                        commune,
                        dim_key,
                        dim_val,
                        code,
                        float(n or 0),
                        float(d or 0),
                    )


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _unit_hash(key: Any, dialect: str) -> tuple[Any, int]:
    """A non-negative integer hash of a unit's key, to split a rebuild's units into parts, and its bound."""
    if dialect == "postgresql":
        return func.hashtext(key).op("&")(0x7FFFFFFF), 1 << 31
    return func.hash(key), 1 << 64  # DuckDB (the benchmark's baseline runs the same split statements)


def _sql_text(expr: Any) -> str:
    """An expression's SQL text with its literals inlined: equal texts compute equal values."""
    return str(expr.compile(compile_kwargs={"literal_binds": True}))


ALL_PERIODS = "all"  # CellQuery.ptype of a full rebuild: every period type in one statement
SQL_UNPIVOT = ("postgresql",)  # dialects whose full rebuild unpivots the wide rows in SQL (insert_cells)


def groups(indicators: Iterable[Indicator]) -> dict[tuple[str, str], list[Indicator]]:
    out: dict[tuple[str, str], list[Indicator]] = {}
    for ind in indicators:
        out.setdefault((ind.source, ind.kind), []).append(ind)
    return out


def _bulk_insert(conn: Connection, table: Table, rows: Iterable[tuple[Any, ...]]) -> int:
    n = 0
    if conn.dialect.name == "postgresql":
        # COPY is an order of magnitude faster than INSERT batches for the ~10^5–10^6 cells of a rebuild
        rows = list(rows)  # the cells come from a query on this same connection: finish it before COPY
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            with cur.copy(f'COPY "{table.name}" ({", ".join(COLS)}) FROM STDIN') as cp:
                for r in rows:
                    cp.write_row(r)
                    n += 1
        return n
    batch: list[dict[str, Any]] = []
    for r in rows:
        batch.append(dict(zip(COLS, r, strict=True)))
        n += 1
        if len(batch) >= BATCH:
            conn.execute(insert(table), batch)
            batch = []
    if batch:
        conn.execute(insert(table), batch)
    return n


def _derive(
    conn: Connection, table: Table, *, periods: set[str] | None = None, communes: set[str] | None = None
) -> None:
    """(Re)compute every level above the legacy commune from the commune cells, for these periods /
    communes."""
    m = IndicatorOrgUnit.__table__  # type: ignore[attr-defined]
    v = table
    base = [v.c.hierarchy == "legacy", v.c.level == "commune"]
    if periods is not None:
        base.append(v.c.period.in_(periods))
    keys = [v.c.period, v.c.dis_key, v.c.dis_value, v.c.indicator]
    sums = [func.sum(v.c.numerator), func.sum(v.c.denominator)]
    target_cols = [
        "hierarchy",
        "level",
        "org_unit",
        "period",
        "dis_key",
        "dis_value",
        "indicator",
        "numerator",
        "denominator",
    ]
    districts = c2025 = None
    if communes is not None:
        sel = select(m.c.district_code, m.c.commune_2025_code).where(m.c.commune_code.in_(communes))
        got = conn.execute(sel).all()
        districts, c2025 = {r[0] for r in got}, {r[1] for r in got}
    # delete what is about to be recomputed
    dele = [v.c.level != "commune"] + ([v.c.period.in_(periods)] if periods is not None else [])
    if communes is not None:
        dele.append(
            or_(
                v.c.level == "province",
                and_(v.c.level == "district", v.c.org_unit.in_(districts or set())),
            )
        )
        conn.execute(delete(v).where(*dele))
        conn.execute(
            delete(v).where(
                v.c.hierarchy == "2025",
                v.c.level == "commune",
                v.c.org_unit.in_(c2025 or set()),
                *([v.c.period.in_(periods)] if periods is not None else []),
            )
        )
    else:
        conn.execute(
            delete(v).where(
                or_(v.c.level != "commune", v.c.hierarchy != "legacy"),
                *([v.c.period.in_(periods)] if periods is not None else []),
            )
        )
    joined = v.join(m, m.c.commune_code == v.c.org_unit)
    only_periods = [v.c.period.in_(periods)] if periods is not None else []
    # legacy districts from their communes' cells
    where_d = base + ([m.c.district_code.in_(districts or set())] if communes is not None else [])
    conn.execute(
        insert(v).from_select(
            target_cols,
            select(literal("legacy"), literal("district"), m.c.district_code, *keys, *sums)
            .select_from(joined)
            .where(*where_d)
            .group_by(m.c.district_code, *keys),
        )
    )
    # the 2025 communes from the legacy communes they took in
    where_c = base + ([m.c.commune_2025_code.in_(c2025 or set())] if communes is not None else [])
    conn.execute(
        insert(v).from_select(
            target_cols,
            select(literal("2025"), literal("commune"), m.c.commune_2025_code, *keys, *sums)
            .select_from(joined)
            .where(*where_c)
            .group_by(m.c.commune_2025_code, *keys),
        )
    )
    # the province from its 15 districts plus the rows without a commune: cheap even when refreshing
    from_districts = and_(v.c.hierarchy == "legacy", v.c.level == "district")
    no_commune = and_(v.c.hierarchy == "legacy", v.c.level == "commune", v.c.org_unit == UNKNOWN_COMMUNE)
    conn.execute(
        insert(v).from_select(
            target_cols,
            select(literal("legacy"), literal("province"), literal(orgunits.PROVINCE_CODE), *keys, *sums)
            .where(or_(from_districts, no_commune), *only_periods)
            .group_by(*keys),
        )
    )
    # the 2025 hierarchy keeps the province and the legacy districts (as a grouping): the same numbers
    copied = [c for c in target_cols if c != "hierarchy"]
    for level, extra in (("province", []), ("district", [v.c.org_unit.in_(districts or set())])):
        conn.execute(
            insert(v).from_select(
                target_cols,
                select(literal("2025"), *[v.c[c] for c in copied]).where(
                    v.c.hierarchy == "legacy",
                    v.c.level == level,
                    *only_periods,
                    *(extra if communes is not None else []),
                ),
            )
        )


# ---------------------------------------------------------------- full rebuild and incremental refresh


def _side_table(name: str, dialect: str) -> Table:
    """The build table: like IndicatorValue but without its primary key (added once, after the bulk load,
    which
    is several times faster than maintaining it row by row); byte-order ("C") text on PostgreSQL, whose
    locale-aware comparisons would dominate the sorts."""
    meta = MetaData()
    cols = []
    for c in IndicatorValue.__table__.columns:  # type: ignore[attr-defined]
        typ = (
            String(collation="C")
            if dialect == "postgresql" and c.name not in ("numerator", "denominator")
            else c.type
        )
        cols.append(Column(c.name, typ, nullable=c.nullable))
    return Table(name, meta, *cols)


def _add_primary_key(conn: Connection, table: Table) -> None:
    keys = ", ".join(PK_ORDER)
    if conn.dialect.name == "sqlite":  # SQLite cannot add a primary key: a unique index serves the same reads
        conn.execute(text(f'CREATE UNIQUE INDEX "{table.name}_pk" ON "{table.name}" ({keys})'))
    else:
        conn.execute(text(f'ALTER TABLE "{table.name}" ADD PRIMARY KEY ({keys})'))


def rebuild_plan(q: CellQuery, rows: int, connections: int) -> tuple[str, int]:
    """How a full PostgreSQL rebuild with ``connections`` connections computes a group over ``rows`` rows:
    ("split", n): a large stock group, whose window pass PostgreSQL cannot run in parallel itself, in n parts
    by unit, one per connection, at once; ("aside", 1): another large group, whole, on a connection of its
    own while the split groups run; ("here", 1): the rest, on the rebuild's connection."""
    large = connections > 1 and q.exact_rollup and rows >= SPLIT_ROWS
    if large and q.kind == "stock":
        return "split", connections
    return ("aside", 1) if large else ("here", 1)


def wide_table(q: CellQuery, name: str, dialect: str) -> Table:
    """A temporary table for one part's wide rows (the columns of ``q.select``), dropped at commit.
    INTEGER sums (one cell of one part: far below 2^31; an overflow would raise), summed with a 64-bit
    accumulator when the parts are merged."""
    txt = String(collation="C") if dialect == "postgresql" else String()
    cols: list[Column[Any]] = [Column("period", txt), Column("commune", txt)]
    cols += [Column(f"dim_{d}", txt) for d in q.dims]
    cols += [Column(f"{x}{i}", Integer()) for i in range(len(q.indicators)) for x in ("n", "d")]
    return Table(name, MetaData(), *cols, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")


def _fetch_wide(engine: Engine, stmts: list[Any]) -> list[list[tuple[Any, ...]]]:
    """The wide rows of ``stmts``, computed one after the other on a connection of their own (read-only,
    settings scoped to its transaction)."""
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET TRANSACTION READ ONLY"))
        _rebuild_settings(conn)
        return [[tuple(r) for r in conn.execute(stmt)] for stmt in stmts]


def _copy_rows(conn: Connection, t: Table, rows: list[tuple[Any, ...]]) -> None:
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        with cur.copy(f'COPY "{t.name}" ({", ".join(c.name for c in t.columns)}) FROM STDIN') as cp:
            for r in rows:
                cp.write_row(r)


def _compute_concurrently(conn: Connection, engine: Engine, table: Table, wholes: list[CellQuery]) -> None:
    """Full PostgreSQL rebuild over up to ``REBUILD_CONNECTIONS`` + 1 connections (:func:`rebuild_plan`): the
    split groups' part 0 and the small groups on ``conn``, the other parts and the large unsplit groups at
    the same time on connections of their own, which only read (their wide rows are fetched and copied into
    temporary tables); then the parts are summed and everything unpivoted into ``table``. A failure anywhere
    raises here and the rebuild's transaction rolls back, temporary tables included (else they go at its
    commit)."""
    dialect = conn.dialect.name
    split: list[tuple[CellQuery, list[Table]]] = []
    aside: list[tuple[CellQuery, Table]] = []
    here: list[CellQuery] = []
    for q in wholes:
        how, n = rebuild_plan(q, _table_rows(conn, q.source), REBUILD_CONNECTIONS)
        tag = f"rebuild_wide_{q.source.name}_{q.kind}"
        if how == "split":
            split.append((q, [wide_table(q, f"{tag}_{k}", dialect) for k in range(n)]))
        elif how == "aside":
            aside.append((q, wide_table(q, tag, dialect)))
        else:
            here.append(q)

    def part(q: CellQuery, k: int, n: int) -> Any:
        return CellQuery(q.source, q.kind, q.ptype, q.indicators, part=(k, n)).select(dialect)

    with ThreadPoolExecutor(max_workers=REBUILD_CONNECTIONS) as pool:
        # connection k runs part k of every split group; the unsplit large groups go on another one
        others = [
            pool.submit(_fetch_wide, engine, [part(q, k, len(ts)) for q, ts in split])
            for k in range(1, max((len(ts) for _, ts in split), default=1))
        ]
        if aside:
            others.append(pool.submit(_fetch_wide, engine, [q.select(dialect) for q, _ in aside]))
        for q, ts in split:
            for t in ts:
                t.create(conn)
            names = [c.name for c in ts[0].columns]
            conn.execute(insert(ts[0]).from_select(names, part(q, 0, len(ts))))
        for q in here:
            conn.execute(q.insert_cells(table, dialect))
        fetched = [f.result() for f in others]
    for k, rows_k in enumerate(fetched[: len(fetched) - bool(aside)], start=1):
        for (_, ts), rows in zip(split, rows_k, strict=True):
            _copy_rows(conn, ts[k], rows)
    for q, ts in split:
        conn.execute(q.insert_cells(table, dialect, wide_rows=q.merged(list(ts))))
        for t in ts:
            t.drop(conn)
    for (q, t), rows in zip(aside, fetched[-1] if aside else [], strict=True):
        t.create(conn)
        _copy_rows(conn, t, rows)
        conn.execute(q.insert_cells(table, dialect, wide_rows=select(t)))
        t.drop(conn)


def compute_into(
    conn: Connection,
    table: Table,
    indicators: Iterable[Indicator] | None = None,
    engine: Engine | None = None,
) -> int:
    """Compute every cell of ``indicators`` (default all) into ``table``; returns the number of commune
    cells. With ``engine`` (PostgreSQL full rebuild), the large groups are computed over several
    connections at once (:func:`_compute_concurrently`)."""
    in_sql = conn.dialect.name in SQL_UNPIVOT
    count = select(func.count()).select_from(table)
    n = -conn.execute(count).scalar_one() if in_sql else 0
    wholes = [
        CellQuery(SOURCES[source], kind, ALL_PERIODS, group)
        for (source, kind), group in groups(indicators or defs.load().values()).items()
    ]
    if in_sql and engine is not None:
        exact = [q for q in wholes if q.exact_rollup]
        _compute_concurrently(conn, engine, table, exact)
        wholes = [q for q in wholes if not q.exact_rollup]
    for whole in wholes:
        for q in (
            [whole]
            if whole.exact_rollup
            else [CellQuery(whole.source, whole.kind, p, whole.indicators) for p in PERIOD_TYPES]
        ):
            if in_sql:  # unpivoted by the server, straight into the table
                conn.execute(q.insert_cells(table, conn.dialect.name))
            else:
                n += _bulk_insert(conn, table, q.cells(conn))
    if in_sql:  # (the driver reports no row count for INSERT … SELECT with a CTE)
        n += conn.execute(count).scalar_one()
    if conn.dialect.name == "postgresql":  # fresh statistics, else the roll-up joins are planned blind
        conn.execute(text(f'ANALYZE "{table.name}"'))
    _derive(conn, table)
    return n


def _table_rows(conn: Connection, source: Source) -> int:
    """The planner's row estimate of a source table (PostgreSQL; -1 when never analysed)."""
    est = conn.execute(
        text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": source.table.name}
    ).scalar()
    return int(est) if est is not None else -1


def _rebuild_settings(conn: Connection) -> None:
    """Transaction-scoped settings of a PostgreSQL rebuild."""
    # in-memory hash aggregates instead of external merge sorts
    conn.execute(text(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'"))
    # and the compile time of JIT (seconds on these wide expressions) exceeds what it saves
    conn.execute(text("SET LOCAL jit = off"))
    # the primary key's index build sorts every cell: in memory
    conn.execute(text(f"SET LOCAL maintenance_work_mem = '{REBUILD_WORK_MEM}'"))


def _lock(conn: Connection) -> None:
    """Serialise rebuilds and refreshes on PostgreSQL (SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})


def rebuild(engine: Engine) -> dict[str, Any]:
    """Full rebuild into a side table, then swap it in by renaming, in one transaction: readers keep seeing
    the
    old values until the commit and never an empty table; refreshes wait for the swap (advisory lock)."""
    ensure_tables(engine)
    t0 = time.perf_counter()
    tag = uuid.uuid4().hex[:8]
    side = _side_table(f"indicator_value_build_{tag}", engine.dialect.name)
    live = IndicatorValue.__tablename__
    with engine.begin() as conn:
        _lock(conn)
        if conn.dialect.name == "postgresql":
            _rebuild_settings(conn)
        side.create(conn)
        commune_cells = compute_into(conn, side, engine=engine)
        _add_primary_key(conn, side)
        total = conn.execute(select(func.count()).select_from(side)).scalar_one()
        t_compute = time.perf_counter() - t0
        if conn.dialect.name == "postgresql":
            conn.execute(text(f'LOCK TABLE "{live}" IN ACCESS EXCLUSIVE MODE'))
        conn.execute(text(f'ALTER TABLE "{live}" RENAME TO "indicator_value_old_{tag}"'))
        conn.execute(text(f'ALTER TABLE "{side.name}" RENAME TO "{live}"'))
        conn.execute(text(f'DROP TABLE "indicator_value_old_{tag}"'))
        bump_generation(conn)
    return {
        "commune_cells": commune_cells,
        "rows": total,
        "seconds": time.perf_counter() - t0,
        "compute_seconds": t_compute,
        "indicators": len(defs.load()),
    }


def refresh(session: Session, submission_ids: list[str]) -> dict[str, Any]:
    """Recompute only the (commune, period) cells the given submissions touch, then the levels above them."""
    from aggregator.models import ChildObservation, FacilityCheck, Household, RawSubmission

    if not submission_ids:
        return {"communes": 0, "periods": 0}
    conn = session.connection()
    ensure_tables(conn.engine)
    _lock(conn)
    table = IndicatorValue.__table__  # type: ignore[attr-defined]
    if conn.execute(select(table.c.indicator).limit(1)).first() is None:
        # never built: commune cells alone would make every level above them wrong, so compute everything
        cells = compute_into(conn, table)
        bump_generation(conn)
        session.commit()
        return {"full": True, "cells": cells}
    ids = set(submission_ids)
    raw = RawSubmission.__table__  # type: ignore[attr-defined]
    prev = {r[0] for r in conn.execute(select(raw.c.deprecated_id).where(raw.c.id.in_(ids))) if r[0]}
    ids |= prev
    known = orgunits.communes()
    communes: set[str] = set()
    dates: set[date] = set()
    years: set[int] = set()  # records without a visit date: every period of the year they came in
    for r in conn.execute(select(raw.c.commune_code, raw.c.data, raw.c.received_at).where(raw.c.id.in_(ids))):
        communes.add(r[0] if r[0] in known else UNKNOWN_COMMUNE)
        vd = (r[1] or {}).get("visit_date") if isinstance(r[1], dict) else None
        try:
            dates.add(date.fromisoformat(str(vd)[:10]))
        except ValueError:
            if r[2] is not None:
                years.add(r[2].year)
    children: set[str] = set()
    obs = ChildObservation.__table__  # type: ignore[attr-defined]
    for model in (ChildObservation, Household, FacilityCheck):
        t = model.__table__  # type: ignore[union-attr]
        cols = [t.c.commune_code, t.c.visit_date] + ([t.c.child_id] if model is ChildObservation else [])
        for r in conn.execute(select(*cols).where(t.c.submission_id.in_(ids))):
            communes.add(r[0] if r[0] in known else UNKNOWN_COMMUNE)
            if r[1] is not None:
                dates.add(r[1])
            if len(r) > 2 and r[2]:
                children.add(r[2])
    by_type = periods_by_type(dates, years)
    periods = set().union(*by_type.values())
    if not periods:
        session.commit()
        return {"communes": len(communes), "periods": 0}
    if children:
        # a child seen elsewhere in the same periods may have moved: its old commune's stock cells change too
        spans = [parse_period(p) for p in periods]
        lo, hi = min(p.start for p in spans), max(p.end for p in spans)
        q = (
            select(obs.c.commune_code)
            .distinct()
            .where(obs.c.child_id.in_(children), obs.c.visit_date.between(lo, hi))
        )
        communes |= {r[0] if r[0] in known else UNKNOWN_COMMUNE for r in conn.execute(q)}
    conn.execute(
        delete(table).where(
            table.c.hierarchy == "legacy",
            table.c.level == "commune",
            table.c.org_unit.in_(communes),
            table.c.period.in_(periods),
        )
    )
    cells = 0
    for (source, kind), group in groups(defs.load().values()).items():
        for ptype in PERIOD_TYPES:
            if by_type[ptype]:
                cq = CellQuery(SOURCES[source], kind, ptype, group, communes=communes, periods=by_type[ptype])
                cells += _bulk_insert(conn, table, cq.cells(conn))
    _derive(conn, table, periods=periods, communes=communes)
    bump_generation(conn)
    session.commit()
    return {"communes": len(communes), "periods": len(periods), "cells": cells}


# ---------------------------------------------------------------- reading: the public API


@dataclass
class IndicatorRow:
    """One indicator × org unit × period (× disaggregation), ready to show."""

    indicator: str
    name_vi: str
    name_en: str
    unit: str
    org_unit: str
    org_unit_name: str
    level: str
    hierarchy: str
    period: str
    numerator: float | None
    denominator: float | None
    value: float | None
    target: dict[str, Any] | None
    status: str  # met | not_met | no_target | no_data | suppressed
    disaggregation: dict[str, str] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def org_units(level: str, hierarchy: str) -> dict[str, str]:
    """Every org unit of a level in a hierarchy: code → name."""
    if level == "province":
        return {
            orgunits.PROVINCE_CODE: orgunits.PROVINCE_NAME
            if hierarchy == "legacy"
            else orgunits.PROVINCE_2025_NAME
        }
    if level == "district":
        return {d.code: d.name for d in orgunits.districts().values()}
    if hierarchy == "legacy":
        return {c.code: c.name for c in orgunits.communes().values()}
    return dict(sorted(orgunits.communes_2025().items()))


def children_of(level: str, area: str, hierarchy: str) -> tuple[str, dict[str, str]]:
    """The org units one level below ``area`` (for ranking): (their level, code → name)."""
    if level == "province":
        child = "district" if hierarchy == "legacy" else "commune"
        return child, org_units(child, hierarchy)
    if level == "district":
        cs = [c for c in orgunits.communes().values() if c.district_code == area]
        if hierarchy == "legacy":
            return "commune", {c.code: c.name for c in cs}
        return "commune", dict(sorted({c.code_2025: c.name_2025 for c in cs}.items()))
    raise BadRequest(
        "Xã/phường là cấp thấp nhất, không có đơn vị con.",
        "A commune is the lowest level; it has no org units below it.",
    )


def _check(level: str, hierarchy: str) -> None:
    if hierarchy not in HIERARCHIES:
        raise BadRequest(
            f"Hệ thống đơn vị '{hierarchy}' không hợp lệ (legacy hoặc 2025).",
            f"Hierarchy '{hierarchy}' is not valid; use legacy or 2025.",
        )
    if level not in LEVELS:
        raise BadRequest(
            f"Cấp '{level}' không hợp lệ (province, district, commune).",
            f"Level '{level}' is not valid; use province, district or commune.",
        )


def query_indicators(
    session: Session,
    *,
    level: str,
    area: str | None,
    period: str,
    hierarchy: str = "legacy",
    indicators: list[str] | None = None,
    disaggregate_by: str | None = None,
    children: bool = False,
    suppress: bool = True,
    min_cell: int | None = None,
) -> list[IndicatorRow]:
    """Indicator rows for one period at one level: the org unit ``area`` (all units of the level when
    None), or
    with ``children=True`` the units one level below it. ``disaggregate_by`` (sex, ethnicity, area_type,
    age_group) gives one row per value, and only for indicators defined with that disaggregation. Cells whose
    denominator is below ``min_cell`` (default settings.min_cell_size) are suppressed unless
    ``suppress=False``, and so are their complements (``aggregator.suppression``): the cells that would give a
    hidden one away by subtraction, the same in every answer."""
    _check(level, hierarchy)
    per = parse_period(period).code
    if disaggregate_by is not None and disaggregate_by not in defs.DIMENSIONS:
        raise BadRequest(
            f"Không phân tổ được theo '{disaggregate_by}'.",
            f"Cannot disaggregate by '{disaggregate_by}'; use {', '.join(defs.DIMENSIONS)}.",
        )
    all_defs = defs.load()
    chosen = [defs.get(c) for c in indicators] if indicators else list(all_defs.values())
    if disaggregate_by:
        chosen = [i for i in chosen if disaggregate_by in i.disaggregate]
    units_level = org_units(level, hierarchy)
    if area is not None and area not in units_level:
        raise NotFound(
            f"Không có đơn vị '{area}' ở cấp {level} ({hierarchy}).",
            f"No org unit '{area}' at level {level} ({hierarchy}).",
        )
    if children:
        if area is None:
            raise BadRequest("Cần chọn đơn vị (area) để xem các đơn vị con.", "children=True needs an area.")
        out_level, units = children_of(level, area, hierarchy)
    else:
        out_level, units = level, ({area: units_level[area]} if area is not None else units_level)
    limit = get_settings().min_cell_size if min_cell is None else min_cell
    conn = session.connection()
    ensure_tables(conn.engine)
    t = IndicatorValue.__table__  # type: ignore[attr-defined]
    where = [
        t.c.hierarchy == hierarchy,
        t.c.level == out_level,
        t.c.period == per,
        t.c.dis_key == (disaggregate_by or ""),
        t.c.indicator.in_([i.code for i in chosen]),
    ]
    if len(units) < 500:
        where.append(t.c.org_unit.in_(list(units)))
    found = {
        (r.indicator, r.org_unit, r.dis_value): (r.numerator, r.denominator)
        for r in conn.execute(
            select(t.c.indicator, t.c.org_unit, t.c.dis_value, t.c.numerator, t.c.denominator).where(*where)
        )
    }
    values = defs.DIMENSION_VALUES[disaggregate_by] if disaggregate_by else ("",)
    rows = []
    for ind in chosen:
        for code, name in units.items():
            for dv in values:
                n, d = found.get((ind.code, code, dv), (None, None))
                value = ind.value(n, d)
                status = ind.status(value)
                rows.append(
                    IndicatorRow(
                        indicator=ind.code,
                        name_vi=ind.name_vi,
                        name_en=ind.name_en,
                        unit=ind.unit,
                        org_unit=code,
                        org_unit_name=name,
                        level=out_level,
                        hierarchy=hierarchy,
                        period=per,
                        numerator=n,
                        denominator=d,
                        value=value,
                        target=ind.target,
                        status=status,
                        disaggregation={disaggregate_by: dv} if disaggregate_by else None,
                    )
                )
    if suppress:
        hidden = suppression.hidden_cells(conn, per, [i.code for i in chosen], limit)
        kind = suppression.unit_kind(out_level, hierarchy)
        dis_key = disaggregate_by or ""
        for r in rows:
            dis_value = (r.disaggregation or {}).get(dis_key, "")
            if (r.indicator, kind, r.org_unit, dis_key, dis_value) in hidden:
                r.numerator, r.value, r.status = None, None, "suppressed"
    return rows


def trend(
    session: Session, *, indicator: str, org_unit: str, level: str, hierarchy: str, periods: list[str]
) -> list[IndicatorRow]:
    """One indicator for one org unit over several periods (oldest first, as given)."""
    out: list[IndicatorRow] = []
    for p in periods:
        out += query_indicators(
            session, level=level, area=org_unit, period=p, hierarchy=hierarchy, indicators=[indicator]
        )
    return out


def table_exists(engine: Engine) -> bool:
    return inspect(engine).has_table(IndicatorValue.__tablename__)


__all__ = [
    "IndicatorValue",
    "IndicatorRow",
    "query_indicators",
    "trend",
    "rebuild",
    "refresh",
    "ensure_tables",
    "org_units",
    "children_of",
]

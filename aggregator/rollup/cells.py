"""The cell SQL builder: one statement per (source, period type) computing numerators and denominators."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Date,
    Float,
    FromClause,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    collate,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)

from aggregator import indicators as defs
from aggregator import versions
from aggregator.indicators import SOURCES, Indicator, Source
from aggregator.periods import PERIOD_TYPES, parse_period, periods_of
from aggregator.rollup.tables import COLS, UNKNOWN_COMMUNE
from core import orgunits


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
    periods: set[str] | None = None  # incremental: only these periods (codes of this period type, or of any
    # type with ALL_PERIODS)
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

    def measures(self) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
        """The group's *distinct* measures (indicators share numerators and denominators): SQL text of the
        measure ("count:<condition or *>" / "sum:<expression>") -> (column name m0, m1, …, per-row
        expression: the condition of a count, None for count(*), the value of a sum); and "n3" / "d3" (the
        numerator / denominator of the group's 4th indicator) -> its measure's column name."""
        measure_of: dict[str, str] = {}
        aggs: dict[str, tuple[str, Any]] = {}
        for i, ind in enumerate(self.indicators):
            for x, m in (("n", ind.numerator), ("d", ind.denominator)):
                expr: Any
                if m.column is None:
                    expr = m.condition()  # None: every row
                    sig = "count:" + ("*" if expr is None else sql_text(expr))
                else:
                    expr = m.sql()
                    sig = "sum:" + sql_text(expr)
                if sig not in aggs:
                    aggs[sig] = (f"m{len(aggs)}", expr)
                measure_of[f"{x}{i}"] = aggs[sig][0]
        return aggs, measure_of

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
        in_wanted = _in_wanted(t, known)

        def c(expr: Any) -> Any:
            # byte-order sorting and grouping on PostgreSQL: locale-aware text comparison dominates the sorts
            return collate(expr, "C") if dialect == "postgresql" else expr

        per_row: list[Any] = [c(period_sql(self.ptype, t)).label("period"), c(commune).label("commune")]
        per_row += [c(defs.dimension_sql(d, src)).label(f"dim_{d}") for d in self.dims]
        for i, ind in enumerate(self.indicators):
            per_row += [ind.numerator.sql().label(f"n{i}"), ind.denominator.sql().label(f"d{i}")]
        where = self._row_filter(t)
        if self.kind == "stock":
            key = src.unit()
            per_row.append(
                func.row_number()
                .over(
                    partition_by=[c(key), c(period_sql(self.ptype, t))],
                    order_by=versions.visit_order_of(t, descending=True),  # rule 2: the latest visit first
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
        stock = self.kind == "stock"
        per_row: list[Any] = [t.c.year.label("year"), t.c.month.label("month"), c(commune).label("commune")]
        per_row += [c(defs.dimension_sql(d, src)).label(f"dim_{d}") for d in dims]
        # one per-row column and one aggregate per *distinct* measure (indicators share numerators and
        # denominators); counts as count(*) FILTER (WHERE condition): no 0/1 to compute and add per row
        aggs, measure_of = self.measures()
        per_row += [expr.label(name) for name, expr in aggs.values() if expr is not None]
        has_period = [t.c.year.is_not(None), t.c.month.is_not(None)]
        if self.incremental:  # every touched period lies whole within [lo, hi] (see _runs)
            span = t.c.visit_date.between(bindparam("lo", type_=Date), bindparam("hi", type_=Date))
            has_period.append(span)
            if stock:
                # only units seen in the touched communes can change those communes' cells; each unit's
                # rows within [lo, hi] are all there, so its latest row of every touched period is found
                # (by commune and date only: read from their index alone)
                has_period.append(_rows_of_units(src, [_in_wanted(t, known), span], dialect))
            else:
                has_period.append(_in_wanted(t, known))
        if self.part is not None:
            # the k-th of n equal ranges of the unit's hash: a range (not hash % n = k, which PostgreSQL
            # estimates at 0.5 % of the rows and then plans sort-based aggregates for)
            k, n = self.part
            h, top = _unit_hash(src.unit(), dialect)
            if k > 0:
                has_period.append(h >= literal(top * k // n))
            if k < n - 1:
                has_period.append(h < literal(top * (k + 1) // n))
        if stock:
            # months since year 0, 0-based month: one integer, so one window function marks every period
            per_row.append((t.c.year * 12 + t.c.month - 1).label("ym"))
            rows = latest_window(t, per_row, c(src.unit()), has_period)
        else:
            rows = select(*per_row).where(*has_period).subquery("rows")
        keys1: list[Any] = [rows.c.year, rows.c.month, rows.c.commune] + [rows.c[f"dim_{d}"] for d in dims]
        where1: list[Any] = []
        if stock:
            latest = latest_of(rows.c.ym, rows.c.next_ym)
            # latest in its month; latest in its quarter / year / school year implies latest in its month
            where1.append(latest.pop("month"))
            keys1 += [case((cond, 1), else_=0).label(f"last_{p}") for p, cond in latest.items()]
        if self.incremental:  # (after the window: a unit's rows in other communes still order its own)
            where1.append(rows.c.commune.in_(bindparam("communes2", expanding=True)))
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
        """(parameters, period codes to keep) per execution: one for a rebuild; incremental, one per period,
        or one for them all with ALL_PERIODS."""
        if not self.incremental:
            yield {}, None
            return
        communes = sorted(self.communes or ())
        base = {"communes": communes, "communes2": communes, "unknown": UNKNOWN_COMMUNE in communes}
        if self.ptype == ALL_PERIODS:  # every period in one pass over the rows of the span they cover
            spans = [parse_period(code) for code in self.periods or ()]
            if spans:
                lo, hi = min(p.start for p in spans), max(p.end for p in spans)
                yield {"lo": lo, "hi": hi, **base}, set(self.periods or ())
            return
        for code in sorted(self.periods or ()):
            p = parse_period(code)
            yield {"lo": p.start, "hi": p.end, **base}, {code}

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


def latest_window(t: Table, cols: list[Any], unit: Any, where: list[Any], *, keep_unit: bool = False) -> Any:
    """Rule 2's "latest visit" for every period at once: the rows of ``t`` matching ``where``, as ``cols``
    (which include ``ym``: year * 12 + month - 1) plus ``next_ym``, the month index of the same unit's next
    row in rule 2's order (``versions.visit_order``), NULL for its last row; :func:`latest_of` turns the two
    into "latest of its month, quarter, year, school year". ``keep_unit``: the unit's key as a column too.
    The one place the full rebuild (``CellQuery``) and the counted rows (``rollup.delta``) mark latest
    visits."""
    pk = list(t.primary_key.columns)[0]
    # the per-row values are computed below the window's sort (which then carries them instead of the raw
    # columns); OFFSET 0 keeps PostgreSQL from pulling them up above the window
    w = (
        select(
            *cols,
            unit.label("unit"),
            t.c.visit_date.label("vd"),
            t.c.end_time.label("et"),
            t.c.received_at.label("ra"),
            pk.label("pk"),
        )
        .where(*where)
        .offset(0)
        .subquery("per_row")
    ).c
    # rule 2 ascending: the last row of a period is row_number() = 1 of CellQuery._build
    order = versions.visit_order(w.vd, w.et, w.ra, w.pk)
    return select(
        *([w.unit] if keep_unit else []),
        *[w[e.name] for e in cols],
        func.lead(w.ym).over(partition_by=[w.unit], order_by=order).label("next_ym"),
    ).subquery("rows")


def latest_of(ym: Any, next_ym: Any) -> dict[str, ColumnElement[bool]]:
    """Per period type, whether a row of :func:`latest_window` is its unit's latest of that period."""
    last = next_ym.is_(None)

    def start(v: Any, n: int, shift: int = 0) -> Any:
        # the first month of v's n-month span (portable integer arithmetic: % and -, no division)
        return (v - shift) - (v - shift) % n

    return {
        "month": or_(last, next_ym != ym),
        "quarter": or_(last, start(next_ym, 3) != start(ym, 3)),
        "year": or_(last, start(next_ym, 12) != start(ym, 12)),
        # school years start in September (0-based month 8)
        "school_year": or_(last, start(next_ym, 12, 8) != start(ym, 12, 8)),
    }


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _in_wanted(t: Table, known: list[str]) -> ColumnElement[bool]:
    """Incremental runs: the rows of the touched communes (``communes``; ``unknown``: also the rows without a
    known commune), as a condition on the raw column, which its indexes serve."""
    return or_(
        t.c.commune_code.in_(bindparam("communes", expanding=True)),
        and_(
            bindparam("unknown", type_=Boolean),
            or_(t.c.commune_code.is_(None), t.c.commune_code.not_in(known)),
        ),
    )


def _rows_of_units(src: Source, where: list[Any], dialect: str) -> ColumnElement[bool]:
    """The rows of the units that have a row matching ``where``. On PostgreSQL against those units' keys as an
    array, computed once: the key's index finds their rows (estimated few, so never a scan comparing each
    row with the array), where a semi-join read and probed every row of the span."""
    t, unit = src.table, src.unit()
    if dialect != "postgresql":
        found: ColumnElement[bool] = unit.in_(select(unit).where(*where).correlate(None))
        return found
    key = t.c[src.stock_key or ""]
    keys = select(func.array_agg(func.distinct(key))).where(*where, key.is_not(None)).correlate(None)
    cond: ColumnElement[bool] = key == any_(cast(keys.scalar_subquery(), ARRAY(String)))
    if src.own_unit_when_null:  # a row without a key is a unit of its own: one of them iff it matches itself
        cond = or_(cond, and_(key.is_(None), *where))
    return cond


def _unit_hash(key: Any, dialect: str) -> tuple[Any, int]:
    """A non-negative integer hash of a unit's key, to split a rebuild's units into parts, and its bound."""
    if dialect == "postgresql":
        return func.hashtext(key).op("&")(0x7FFFFFFF), 1 << 31
    return func.hash(key), 1 << 64  # DuckDB (the benchmark's baseline runs the same split statements)


def sql_text(expr: Any) -> str:
    """An expression's SQL text with its literals inlined: equal texts compute equal values."""
    return str(expr.compile(compile_kwargs={"literal_binds": True}))


ALL_PERIODS = "all"  # CellQuery.ptype of a full rebuild: every period type in one statement
SQL_UNPIVOT = ("postgresql",)  # dialects whose full rebuild unpivots the wide rows in SQL (insert_cells)


def groups(indicators: Iterable[Indicator]) -> dict[tuple[str, str], list[Indicator]]:
    out: dict[tuple[str, str], list[Indicator]] = {}
    for ind in indicators:
        out.setdefault((ind.source, ind.kind), []).append(ind)
    return out

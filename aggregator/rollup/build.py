"""Rebuild (beside the live table, then swap) and incremental refresh of the indicator cells."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlmodel import Session

from aggregator import indicators as defs
from aggregator.indicators import SOURCES, Indicator, Source
from aggregator.locks import WRITE_LOCK
from aggregator.periods import PERIOD_TYPES, parse_period
from aggregator.rollup import delta
from aggregator.rollup.cells import ALL_PERIODS, SQL_UNPIVOT, CellQuery, groups, periods_by_type
from aggregator.rollup.tables import (
    BATCH,
    COLS,
    LOCK_KEY,
    REBUILD_CONNECTIONS,
    REBUILD_WORK_MEM,
    REFRESH_WORK_MEM,
    SPLIT_ROWS,
    UNKNOWN_COMMUNE,
    IndicatorOrgUnit,
    IndicatorValue,
    add_primary_key,
    bump_generation,
    ensure_tables,
    side_table,
)
from core import orgunits
from core.localtime import local_date

log = logging.getLogger("carecheck.indicators")


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


def derive(
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
    # refreshing: every statement names the org units it reads or writes, so the primary key (org unit
    # first) finds them, instead of scanning every cell of the periods
    by_unit: dict[str, list[Any]] = {"district": [], "2025": [], "province": [], "copy_province": []}
    if communes is not None:
        sel = select(m.c.district_code, m.c.commune_2025_code).where(m.c.commune_code.in_(communes))
        got = conn.execute(sel).all()
        districts, c2025 = {r[0] for r in got}, {r[1] for r in got}
        under = conn.execute(
            select(m.c.commune_code, m.c.district_code, m.c.commune_2025_code).where(
                or_(m.c.district_code.in_(districts), m.c.commune_2025_code.in_(c2025))
            )
        ).all()
        every_district = conn.execute(select(m.c.district_code).distinct()).scalars().all()
        by_unit = {
            "district": [v.c.org_unit.in_({r[0] for r in under if r[1] in districts})],
            "2025": [v.c.org_unit.in_({r[0] for r in under if r[2] in c2025})],
            "province": [v.c.org_unit.in_({*every_district, UNKNOWN_COMMUNE})],
            "copy_province": [v.c.org_unit == orgunits.PROVINCE_CODE],
        }
    # delete what is about to be recomputed
    dele = [v.c.level != "commune"] + ([v.c.period.in_(periods)] if periods is not None else [])
    if communes is not None:
        dele.append(v.c.org_unit.in_({*(districts or set()), orgunits.PROVINCE_CODE}))
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
    where_d += by_unit["district"]
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
    where_c += by_unit["2025"]
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
            .where(or_(from_districts, no_commune), *only_periods, *by_unit["province"])
            .group_by(*keys),
        )
    )
    # the 2025 hierarchy keeps the province and the legacy districts (as a grouping): the same numbers
    copied = [c for c in target_cols if c != "hierarchy"]
    for level, extra in (
        ("province", by_unit["copy_province"]),
        ("district", [v.c.org_unit.in_(districts or set())]),
    ):
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


def fetch_wide(engine: Engine, stmts: list[Any]) -> list[list[tuple[Any, ...]]]:
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
            pool.submit(fetch_wide, engine, [part(q, k, len(ts)) for q, ts in split])
            for k in range(1, max((len(ts) for _, ts in split), default=1))
        ]
        if aside:
            others.append(pool.submit(fetch_wide, engine, [q.select(dialect) for q, _ in aside]))
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
    derive(conn, table)
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


def _hold_rows(conn: Connection) -> None:
    """Until the commit, no new rows in the source tables (PostgreSQL; reads go on): a full build's cells and
    counted rows are computed by many statements on several connections, each seeing what is committed when
    it starts, and they must all see the same rows — a row committed between the cells' statement and the
    counted rows' would be counted without being in the cells, and its page's refresh would then find
    nothing to add. Ingestion's page writes wait for the build (the pages' refreshes then run after it)."""
    if conn.dialect.name == "postgresql":
        # first ingestion's own lock (aggregator.locks.WRITE_LOCK), which pages take before their first
        # write: a page holding a table lock the LOCK TABLE below would wait for, while waiting itself for a
        # table the build already locked, would deadlock
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK})
        names = ", ".join(f'"{s.table.name}"' for s in SOURCES.values())
        conn.execute(text(f"LOCK TABLE {names} IN SHARE MODE"))


def rebuild(engine: Engine) -> dict[str, Any]:
    """Full rebuild into a side table, then swap it in by renaming, in one transaction: readers keep seeing
    the
    old values until the commit and never an empty table; refreshes wait for the swap (advisory lock)."""
    ensure_tables(engine)
    t0 = time.perf_counter()
    tag = uuid.uuid4().hex[:8]
    side = side_table(f"indicator_value_build_{tag}", engine.dialect.name)
    live = IndicatorValue.__tablename__
    with engine.begin() as conn:
        _lock(conn)
        _hold_rows(conn)
        if conn.dialect.name == "postgresql":
            _rebuild_settings(conn)
        side.create(conn)
        commune_cells = compute_into(conn, side, engine=engine)
        add_primary_key(conn, side)
        t_counted = time.perf_counter()
        counted = delta.fill(conn)
        t_counted = time.perf_counter() - t_counted
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
        "counted_rows": counted,
        "counted_seconds": t_counted,
        "indicators": len(defs.load()),
    }


def refresh(session: Session, submission_ids: list[str]) -> dict[str, Any]:
    """Bring the cells up to date with the given submissions (ingested, edited or deleted): by difference
    (``aggregator.rollup.delta``) once a rebuild has filled the counted rows, else by recomputing the
    (commune, period) cells they touch, then the levels above them."""
    if not submission_ids:
        return {"communes": 0, "periods": 0}
    conn = session.connection()
    ensure_tables(conn.engine)
    _lock(conn)
    table = IndicatorValue.__table__  # type: ignore[attr-defined]
    if conn.execute(select(table.c.indicator).limit(1)).first() is None:
        # never built: commune cells alone would make every level above them wrong, so compute everything
        _hold_rows(conn)
        cells = compute_into(conn, table)
        delta.fill(conn)
        bump_generation(conn)
        session.commit()
        return {"full": True, "cells": cells}
    by_difference = delta.ready(conn)
    if not by_difference and delta.exact():
        # the counted rows are missing (the first page after the upgrade that added them) or were made with
        # other indicator definitions: one full rebuild brings the cells and the counted rows up to date, and
        # the next pages are kept by difference again
        log.warning("indicator cells: counted rows out of date (an upgrade, or new definitions): rebuilding")
        session.commit()
        stats = rebuild(conn.engine)
        return {"full": True, "cells": stats["rows"]}
    if conn.dialect.name == "postgresql":  # for this page's transaction only (not a first build's)
        # JIT compiles these wide statements for longer than they run (~0.8 s of a 1.6 s statement at 1 M
        # rows); the window pass's sort and the aggregates in memory instead of spilling to disk; and hash
        # aggregates: the planner expects a handful of the moving units' rows (their keys are an array it
        # cannot see), so it sorted the ~0.5 M rows of a 10 M database on ten text keys to group them (~2–3 s
        # of a 9 s statement; hashed: 0.2 s). The window pass still sorts (no other way to run it).
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text(f"SET LOCAL work_mem = '{REFRESH_WORK_MEM}'"))
        conn.execute(text("SET LOCAL enable_sort = off"))
    ids, communes, by_type, children = _touched(conn, submission_ids)
    periods = set().union(*by_type.values())
    if by_difference:
        deltas: dict[delta.Key, list[int]] = {}
        units = delta.deltas(conn, ids, deltas)
        moved, moved_communes = delta.apply(conn, deltas)
        # the page's periods, and any other whose cells moved (rows of a unit changed by a page not yet
        # refreshed): what readers derived from them is stale
        bump_generation(conn, periods | moved)
        session.commit()
        return {
            "communes": len(moved_communes),
            "periods": len(periods | moved),
            "cells": sum(1 for v in deltas.values() if v[0] or v[1]),
            "units": units,
        }
    if not periods:
        session.commit()
        return {"communes": len(communes), "periods": 0}
    communes |= _moved_from(conn, children, periods)
    cells = _recompute(conn, table, communes, periods, by_type)
    derive(conn, table, periods=periods, communes=communes)
    bump_generation(conn, periods)  # only these periods' cells moved (the delete, inserts and derive above)
    session.commit()
    return {"communes": len(communes), "periods": len(periods), "cells": cells}


def _touched(
    conn: Connection, submission_ids: list[str]
) -> tuple[set[str], set[str], dict[str, set[str]], set[str]]:
    """The submissions (and the versions they replace), the communes and periods (by type) of their rows and
    landing records, and the children they observe."""
    from aggregator.models import ChildObservation, FacilityCheck, Household, RawSubmission

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
            if (received := local_date(r[2])) is not None:  # the year in Vietnam, as periods are
                years.add(received.year)
    children: set[str] = set()
    for model in (ChildObservation, Household, FacilityCheck):
        t = model.__table__  # type: ignore[union-attr]
        cols = [t.c.commune_code, t.c.visit_date] + ([t.c.child_id] if model is ChildObservation else [])
        for r in conn.execute(select(*cols).where(t.c.submission_id.in_(ids))):
            communes.add(r[0] if r[0] in known else UNKNOWN_COMMUNE)
            if r[1] is not None:
                dates.add(r[1])
            if len(r) > 2 and r[2]:
                children.add(r[2])
    return ids, communes, periods_by_type(dates, years), children


def _moved_from(conn: Connection, children: set[str], periods: set[str]) -> set[str]:
    """The communes where ``children`` were seen in the span of ``periods``: a child seen elsewhere in the
    same periods may have moved, so its old commune's stock cells change too."""
    from aggregator.models import ChildObservation

    if not children:
        return set()
    known = orgunits.communes()
    obs = ChildObservation.__table__  # type: ignore[attr-defined]
    spans = [parse_period(p) for p in periods]
    lo, hi = min(p.start for p in spans), max(p.end for p in spans)
    q = (
        select(obs.c.commune_code)
        .distinct()
        .where(obs.c.child_id.in_(children), obs.c.visit_date.between(lo, hi))
    )
    return {r[0] if r[0] in known else UNKNOWN_COMMUNE for r in conn.execute(q)}


def _recompute(
    conn: Connection, table: Table, communes: set[str], periods: set[str], by_type: dict[str, set[str]]
) -> int:
    """Replace the commune cells of ``communes`` × ``periods`` with cells recomputed from the rows."""
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
        whole = CellQuery(SOURCES[source], kind, ALL_PERIODS, group, communes=communes, periods=periods)
        if whole.exact_rollup:  # every period type in one statement, one pass over the rows (and units)
            cells += _bulk_insert(conn, table, whole.cells(conn))
            continue
        for ptype in PERIOD_TYPES:
            if by_type[ptype]:
                cq = CellQuery(SOURCES[source], kind, ptype, group, communes=communes, periods=by_type[ptype])
                cells += _bulk_insert(conn, table, cq.cells(conn))
    return cells


# ---------------------------------------------------------------- reading: the public API

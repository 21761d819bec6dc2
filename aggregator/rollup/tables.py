"""The rollup's tables: indicator values, org units, the generation counter; side tables and keys."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlmodel import Field, SQLModel

from core import orgunits

HIERARCHIES = ("legacy", "2025")
LEVELS = ("province", "district", "commune")
UNKNOWN_COMMUNE = ""  # rows without a (valid) commune count at province level only
BATCH = 5000
REBUILD_WORK_MEM = "256MB"
REFRESH_WORK_MEM = "256MB"  # per sort / hash of a refresh statement (~120 MB: a 10 M database's window sort)
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


class IndicatorPeriodGeneration(SQLModel, table=True):
    """Per period, the generation at which its cells last changed (``*``: every period, by a rebuild): a
    refresh moves a few periods only, so what readers derive from the other periods' cells stays valid."""

    __tablename__ = "indicator_period_generation"

    period: str = Field(primary_key=True)
    generation: int = 0


EVERY_PERIOD = "*"

# the dimensions a counted row can carry (aggregator.indicators.model.DIMENSIONS)
COUNTED_DIMS = ("sex", "ethnicity", "area_type", "age_group")
# For each stock indicator group with exact sums: the rows its cells count, one per unit and month in which
# the row is the unit's latest (rule 2), flagged when it is also the latest of its quarter (1), year (2),
# school year (4), with what it adds to its cells (``aggregator.rollup.delta``). No primary key: a unit may
# be NULL (rows without a key are one unit, as the window pass partitions them).
COUNTED = Table(
    "indicator_counted",
    SQLModel.metadata,
    Column("grp", String(), nullable=False),  # the source (child, household, facility)
    Column("unit", String(), nullable=True),
    Column("ym", Integer(), nullable=False),  # year * 12 + month - 1
    Column("flags", Integer(), nullable=False),
    Column("commune", String(), nullable=False),  # as the cells use it ('' = unknown)
    *[Column(f"dim_{d}", String(), nullable=True) for d in COUNTED_DIMS],
    Column("measures", String(), nullable=False),  # the group's distinct measures, comma-separated integers
    Column("submission_id", String(), nullable=False),
    Index("ix_indicator_counted_unit", "grp", "unit"),
    Index("ix_indicator_counted_submission", "submission_id"),
)


class IndicatorCountedGroup(SQLModel, table=True):
    """Per stock group, the signature of the definitions its counted rows were computed with (written by a
    full rebuild): a refresh keeps cells by difference only while every group's signature matches."""

    __tablename__ = "indicator_counted_group"

    grp: str = Field(primary_key=True)
    sig: str


def bump_generation(conn: Connection, periods: Iterable[str] | None = None) -> None:
    """A new generation, stamped on the periods whose cells changed (None: every period)."""
    t = IndicatorGeneration.__table__  # type: ignore[attr-defined]
    conn.execute(t.update().where(t.c.id == 1).values(generation=t.c.generation + 1))
    g = generation(conn)
    pt = IndicatorPeriodGeneration.__table__  # type: ignore[attr-defined]
    marks = [EVERY_PERIOD] if periods is None else sorted(set(periods))
    if periods is None:
        conn.execute(delete(pt))
    else:
        conn.execute(delete(pt).where(pt.c.period.in_(marks)))
    if marks:
        conn.execute(insert(pt), [{"period": p, "generation": g} for p in marks])


def period_generation(conn: Connection, period: str) -> int:
    """The generation at which this period's cells last changed."""
    pt = IndicatorPeriodGeneration.__table__  # type: ignore[attr-defined]
    q = select(func.max(pt.c.generation)).where(pt.c.period.in_([EVERY_PERIOD, period]))
    return int(conn.execute(q).scalar_one_or_none() or 0)


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
    pgen: Table = IndicatorPeriodGeneration.__table__  # type: ignore[attr-defined]
    pgen.create(engine, checkfirst=True)
    COUNTED.create(engine, checkfirst=True)
    IndicatorCountedGroup.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    with engine.begin() as conn:
        if conn.execute(select(gen.c.id)).first() is None:
            conn.execute(insert(gen).values(id=1, generation=0))
        if conn.execute(select(pgen.c.period).limit(1)).first() is None:  # nothing stamped yet: every period
            conn.execute(insert(pgen).values(period=EVERY_PERIOD, generation=generation(conn)))
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


def side_table(name: str, dialect: str) -> Table:
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


def add_primary_key(conn: Connection, table: Table) -> None:
    keys = ", ".join(PK_ORDER)
    if conn.dialect.name == "sqlite":  # SQLite cannot add a primary key: a unique index serves the same reads
        conn.execute(text(f'CREATE UNIQUE INDEX "{table.name}_pk" ON "{table.name}" ({keys})'))
    else:
        conn.execute(text(f'ALTER TABLE "{table.name}" ADD PRIMARY KEY ({keys})'))


def table_exists(engine: Engine) -> bool:
    return inspect(engine).has_table(IndicatorValue.__tablename__)

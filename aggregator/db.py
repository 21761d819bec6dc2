"""SQL engine and sessions from settings (SQLite under var/ by default, PostgreSQL in production)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Session, SQLModel, create_engine

from core.errors import ConfigError
from core.settings import Settings, get_settings

_ENGINES: dict[str, Engine] = {}
log = logging.getLogger("carecheck.db")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (status, reports) run while the follower writes; busy_timeout makes concurrent writers
    # wait for the lock instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def get_engine(settings: Settings | None = None) -> Engine:
    """One engine per database URL per process (workers fork: engines are created lazily, after the fork)."""
    settings = settings or get_settings()
    url = settings.effective_database_url
    if url in _ENGINES:
        return _ENGINES[url]
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - a bad setting, reported with its name
        raise ConfigError(f"CARECHECK_DATABASE_URL is not a valid database URL ({exc}).") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    _ENGINES[url] = engine
    return engine


def dispose_engines() -> None:
    """Drop pooled connections (after a fork, or at the end of a test)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def init_db(settings: Settings | None = None) -> Engine:
    """Create the tables and columns that do not exist yet (additive only). Safe from several processes.

    There is no migration tool: a database created by an earlier version lacks the columns added to the
    models since (docs/contracts.md §5, "additive"). ``add_missing_columns`` adds them; nothing is ever
    dropped or altered.
    """
    from aggregator import models  # noqa: F401 - registers the tables on SQLModel.metadata

    engine = get_engine(settings)
    for attempt in range(3):
        try:
            SQLModel.metadata.create_all(engine)
            break
        except (IntegrityError, ProgrammingError, OperationalError):
            # Two processes creating the same table at once on PostgreSQL: the loser sees a duplicate; retry.
            if attempt == 2:
                raise
    add_missing_columns(engine)
    scrub_plain_personal_ids(engine)
    return engine


def scrub_plain_personal_ids(engine: Engine) -> int:
    """Empty ``child.personal_id`` (plain 12-digit IDs, stored by versions before keyed pseudonyms).

    The column is left in place (nothing is ever dropped) but NULL from then on: the model no longer has it,
    so nothing writes it again. Logs one line with the number of rows (no values); returns it. Children
    scrubbed this way are matched by personal ID again only after the feed is replayed (docs/contracts.md §5).
    """
    if "child" not in inspect(engine).get_table_names():
        return 0
    if "personal_id" not in {c["name"] for c in inspect(engine).get_columns("child")}:
        return 0
    with engine.connect() as conn:  # a read first: init_db runs at every follower start, the write only once
        if conn.execute(text("SELECT 1 FROM child WHERE personal_id IS NOT NULL LIMIT 1")).first() is None:
            return 0
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        n = conn.execute(text("UPDATE child SET personal_id = NULL WHERE personal_id IS NOT NULL")).rowcount
    if n:
        log.warning(
            "cleared %d plain personal IDs from child.personal_id (keyed pseudonyms replace them; "
            "run `carecheck ingest --replay --once` to re-link those children)",
            n,
        )
    return int(n or 0)


def add_missing_columns(engine: Engine, tables: list[Table] | None = None) -> list[str]:
    """``ALTER TABLE … ADD COLUMN`` for every nullable model column an existing table lacks; returns them.

    Additive only: never drops, renames or changes a column. A missing NOT NULL column (or primary key) cannot
    be added to a table that has rows, so it is logged as a warning and left for a person to migrate. Each
    column is added in its own transaction (one log line each); a column another process added meanwhile is
    not an error. Indexes the model declares on an added column are created too.
    """
    tables = list(SQLModel.metadata.sorted_tables) if tables is None else tables
    existing = set(inspect(engine).get_table_names())
    added: list[str] = []
    for table in tables:
        if table.name not in existing:
            continue  # create_all creates whole tables; only tables of an earlier schema lack columns
        have = {c["name"] for c in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            where = f"{table.name}.{column.name}"
            if column.primary_key or not column.nullable:
                log.warning(
                    "table %s lacks the NOT NULL column %s: not added (only nullable columns are)",
                    table.name,
                    column.name,
                )
                continue
            if _add_column(engine, table, column):
                added.append(where)
    return added


def _add_column(engine: Engine, table: Table, column: Any) -> bool:
    prep = engine.dialect.identifier_preparer
    type_sql = column.type.compile(dialect=engine.dialect)
    ddl = f"ALTER TABLE {prep.format_table(table)} ADD COLUMN {prep.format_column(column)} {type_sql}"
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '30s'"))  # wait for readers, not forever
            conn.execute(text(ddl))
            for index in table.indexes:
                if column.name in index.columns:
                    index.create(conn, checkfirst=True)
    except DBAPIError:
        # Another process added it first (duplicate column): fine. Anything else is a real failure.
        if column.name in {c["name"] for c in inspect(engine).get_columns(table.name)}:
            return False
        raise
    log.info("added column %s.%s %s (NULL for existing rows)", table.name, column.name, type_sql)
    return True


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session bound to the settings' engine; commit is explicit, rollback on error."""
    with Session(get_engine(settings)) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise

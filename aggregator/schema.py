"""The SQL schema's history (Alembic, ``migrations/``): upgrade, check, and adopt a pre-migration database.

``upgrade`` is what ``carecheck db upgrade`` (and, on start, every process through ``init_db``) runs: it takes
a lock (PostgreSQL advisory lock, a file lock beside a SQLite database) so several processes starting together
apply each revision once. A database made before migrations existed (``create_all`` plus additive columns) has
tables but no ``alembic_version``: it is adopted — stamped at the first revision — and the later revisions,
written to be idempotent for exactly that case, bring it to the head with its rows.
``check`` compares the models with a database (by default a scratch one upgraded from nothing), so a model
change without a migration fails CI.
"""

from __future__ import annotations

import fcntl
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect, text
from sqlmodel import SQLModel

from core.errors import ConfigError

log = logging.getLogger("carecheck.db")
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
FIRST = "0001"
ADVISORY_KEY = 0x1D1D  # pg_advisory_lock key of schema upgrades (the rollup uses 0x1D1C)


def target_metadata() -> MetaData:
    """Every table the migrations own: the aggregator's models and the rollup's tables."""
    from aggregator import models  # noqa: F401 - registers the tables on SQLModel.metadata
    from aggregator.rollup import tables  # noqa: F401

    return SQLModel.metadata


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:
        raise ConfigError(f"Các bản migration có {len(heads)} nhánh: {heads}.",
                          f"The migrations have {len(heads)} heads {heads}: merge them (alembic merge).")
    return str(heads[0])


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[Connection]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                conn.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
    if lock_path is None:
        with engine.connect() as conn:
            yield conn
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _adopt(conn: Connection) -> bool:
    """Stamp a database made before migrations at the first revision; True if it was such a database."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables or "rawsubmission" not in tables:
        return False
    command.stamp(_config(conn), FIRST)
    conn.commit()
    log.info("adopted a database made before migrations: stamped at revision %s", FIRST)
    return True


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database to ``revision``; returns (revision before, revision after). Idempotent."""
    target = head() if revision == "head" else revision
    with _upgrade_lock(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        if before == target:
            return before, before
        if before is None and _adopt(conn):
            before = FIRST
        command.upgrade(_config(conn), revision)
        conn.commit()
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database schema upgraded: %s -> %s", before or "empty", after)
    return before, after


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    with _upgrade_lock(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        command.downgrade(_config(conn), revision)
        conn.commit()
        return before, MigrationContext.configure(conn).get_current_revision()


def _ignore(diff: Any) -> bool:
    # Tables that are not the schema's: Alembic's own, and the rollup's rebuild side tables of a crashed run.
    kind = diff[0] if isinstance(diff, tuple) else None
    if kind in ("add_table", "remove_table"):
        name = str(diff[1].name)
        return name == "alembic_version" or name.startswith(("indicator_value_", "_"))
    return False


def differences(engine: Engine) -> list[str]:
    """What differs between the models and this database (empty: they agree), plus a revision behind head."""
    out: list[str] = []
    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        if rev != head():
            out.append(f"database at revision {rev or 'none'}, the code's head is {head()}")
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        for diff in compare_metadata(ctx, target_metadata()):
            flat = diff if isinstance(diff, tuple) else diff[0] if diff else diff
            if isinstance(flat, tuple) and _ignore(flat):
                continue
            out.append(_describe(diff))
    return out


def _describe(diff: Any) -> str:
    if isinstance(diff, list):
        return "; ".join(_describe(d) for d in diff)
    kind, *rest = diff
    names = []
    for r in rest:
        name = getattr(r, "name", None)
        names.append(str(name) if name is not None else str(r))
    return f"{kind} " + " ".join(n for n in names if n and n != "None")


def check_fresh() -> list[str]:
    """Upgrade a scratch SQLite database from nothing and compare it with the models."""
    with tempfile.TemporaryDirectory() as d:
        engine = create_engine(f"sqlite:///{d}/check.db")
        try:
            upgrade(engine)
            return differences(engine)
        finally:
            engine.dispose()

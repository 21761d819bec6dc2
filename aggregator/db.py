"""SQL engine and sessions from settings (SQLite under var/ by default, PostgreSQL in production)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from core.errors import ConfigError
from core.settings import Settings, get_settings

_ENGINES: dict[str, Engine] = {}
_UPGRADED: set[str] = set()  # database URLs this process has brought to the head
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
    _UPGRADED.clear()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def init_db(settings: Settings | None = None) -> Engine:
    """The engine, with the schema at the migrations' head (``aggregator.schema.upgrade``, once per process).

    Every process runs this at start (server, worker, CLI): on the embedded default that is the whole
    migration story; in production a one-shot ``carecheck db upgrade`` job runs first and this finds nothing
    to do. Concurrent starts are serialised by the upgrade's lock.
    """
    from aggregator import schema

    engine = get_engine(settings)
    key = str(engine.url)
    if key not in _UPGRADED:
        schema.upgrade(engine)
        _UPGRADED.add(key)
    return engine


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session bound to the settings' engine; commit is explicit, rollback on error."""
    with Session(get_engine(settings)) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise

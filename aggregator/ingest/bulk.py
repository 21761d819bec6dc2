"""Set-based row writing: one statement per table per page, whatever the page's size.

On PostgreSQL rows go in with ``COPY … FROM STDIN`` (psycopg's copy protocol: no statement per row, no
parameter limit); an upsert copies into a temporary staging table and merges it with one
``INSERT … SELECT … ON CONFLICT (primary key) DO UPDATE``. On SQLite (the embedded default) the same calls are
executemany statements, which SQLite runs in-process at a comparable cost.

Rows are plain dicts keyed by column name (what ``ingest.rows`` produces); every row of one call has the same
keys. Columns a row does not name get the column's default (NULL), as with an INSERT naming fewer columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import JSON
from sqlmodel import Session, SQLModel


def _table(model: type[SQLModel] | Table) -> Table:
    return model if isinstance(model, Table) else model.__table__  # type: ignore[attr-defined]


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _columns(table: Table, rows: Sequence[dict[str, Any]]) -> list[str]:
    names = set(rows[0])
    return [c.name for c in table.columns if c.name in names]


def _copy(
    session: Session, target: str, table: Table, cols: list[str], rows: Iterable[dict[str, Any]]
) -> None:
    """COPY rows into ``target`` (a table with ``table``'s columns) on the session's own connection."""
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    dbapi = session.connection().connection.dbapi_connection
    assert dbapi is not None
    quoted = ", ".join(f'"{c}"' for c in cols)
    with dbapi.cursor() as cur, cur.copy(f'COPY "{target}" ({quoted}) FROM STDIN') as copy:  # type: ignore[attr-defined]
        if json_cols:
            for r in rows:
                copy.write_row(
                    [json.dumps(r[c]) if c in json_cols and r[c] is not None else r[c] for c in cols]
                )
        else:
            for r in rows:
                copy.write_row([r[c] for c in cols])


def insert_rows(session: Session, model: type[SQLModel] | Table, rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERT of new rows (the caller made sure their keys are free)."""
    if not rows:
        return
    table = _table(model)
    if _is_pg(session):
        _copy(session, table.name, table, _columns(table, rows), rows)
    else:
        session.execute(table.insert(), list(rows))


def upsert_rows(
    session: Session,
    model: type[SQLModel] | Table,
    rows: Sequence[dict[str, Any]],
    *,
    merge: dict[str, str] | None = None,
    update: bool = True,
) -> None:
    """INSERT … ON CONFLICT (primary key) DO UPDATE (or DO NOTHING when ``update`` is False).

    Rows must have distinct primary keys. ``merge`` gives SQL expressions for columns that combine the stored
    and the incoming value instead of replacing it (``t`` is the stored row, ``excluded`` the incoming one),
    e.g. ``{"first_seen": "LEAST(t.first_seen, excluded.first_seen)"}``; the same expressions are used on
    SQLite, so keep to functions both know (``min``/``max`` with two arguments are spelled LEAST/GREATEST on
    PostgreSQL: use ``merge_sql`` below).
    """
    if not rows:
        return
    table = _table(model)
    pk = [c.name for c in table.primary_key.columns]
    cols = _columns(table, rows)
    merge = merge or {}
    sets = [f'"{c}" = {merge.get(c, f"excluded.{c}")}' for c in cols if c not in pk]
    conflict = f"ON CONFLICT ({', '.join(pk)}) " + (
        f"DO UPDATE SET {', '.join(sets)}" if update and sets else "DO NOTHING"
    )
    quoted = ", ".join(f'"{c}"' for c in cols)
    if _is_pg(session):
        stage = f"_stage_{table.name}"
        session.execute(
            text(
                f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS) '
                "ON COMMIT DELETE ROWS"
            )
        )
        _copy(session, stage, table, cols, rows)
        session.execute(
            text(f'INSERT INTO "{table.name}" AS t ({quoted}) SELECT {quoted} FROM "{stage}" {conflict}')
        )
        # the staging rows go now, not at commit: a page retried document by document reuses the table
        session.execute(text(f'DELETE FROM "{stage}"'))
        return
    if not merge:
        ins = sqlite.insert(table)
        stmt = (
            ins.on_conflict_do_update(
                index_elements=pk, set_={c: ins.excluded[c] for c in cols if c not in pk}
            )
            if update
            else ins.on_conflict_do_nothing(index_elements=pk)
        )
        session.execute(stmt, list(rows))
        return
    placeholders = ", ".join(f":{c}" for c in cols)
    session.execute(
        text(f'INSERT INTO "{table.name}" AS t ({quoted}) VALUES ({placeholders}) {conflict}'), list(rows)
    )


def merge_sql(session: Session, fn: str, a: str, b: str) -> str:
    """``LEAST``/``GREATEST`` of two values ignoring NULLs, on PostgreSQL or SQLite."""
    if _is_pg(session):
        return f"{fn}({a}, {b})"
    # SQLite's two-argument min()/max() return NULL if either is NULL
    pick = "min" if fn == "LEAST" else "max"
    return f"COALESCE({pick}({a}, {b}), {a}, {b})"

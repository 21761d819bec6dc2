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
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, String, Table, any_, bindparam, cast, func, or_, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import JSON
from sqlmodel import Session, SQLModel


def _table(model: type[SQLModel] | Table) -> Table:
    return model if isinstance(model, Table) else model.__table__  # type: ignore[attr-defined]


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _columns(table: Table, rows: Sequence[dict[str, Any]]) -> list[str]:
    names = set(rows[0])
    return [c.name for c in table.columns if c.name in names or _default(table, c.name) is not None]


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one parameter whatever the count, so
    the statement's text is the same for every page (compiled and parsed once, then a prepared statement)
    instead of hundreds of placeholders rendered, cast and parsed again per page."""
    vals = list(values)
    if _is_pg(session):
        if all(type(v) is str for v in vals):  # keys: one text parameter, PostgreSQL parses the array
            literal = bindparam(None, _text_array(vals), type_=String)
            return column == any_(cast(literal, postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
        return column == any_(bindparam(None, vals, type_=postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(vals)  # type: ignore[no-any-return]


def _text_array(vals: list[str]) -> str:
    """A PostgreSQL array literal of strings (every element quoted; backslash and double quote escaped), built
    with C string methods: psycopg's list dumper checks each element against a regular expression in Python,
    a few hundred per statement."""
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in vals]) + "}"


def _default(table: Table, name: str) -> Any:
    """A column's scalar Python-side default (what SQLAlchemy's INSERT fills in for a column not given)."""
    d = table.c[name].default
    return d.arg if d is not None and d.is_scalar else None  # type: ignore[attr-defined]


def _copy(
    session: Session, target: str, table: Table, cols: list[str], rows: Iterable[dict[str, Any]]
) -> None:
    """COPY rows into ``target`` (a table with ``table``'s columns) on the session's own connection."""
    rows = list(rows)
    if not rows:
        return
    # The columns the first row names are read with one itemgetter call per row (a row without one of them
    # falls back to the defaults); the others (defaults) come after them in the COPY's column list.
    given = [c for c in cols if c in rows[0]]
    rest = [(c, _default(table, c)) for c in cols if c not in rows[0]]
    order = given + [c for c, _ in rest]
    json_at = [i for i, c in enumerate(order) if isinstance(table.c[c].type, JSON)]
    get: Callable[[dict[str, Any]], tuple[Any, ...]] = (
        itemgetter(*given) if len(given) > 1 else (lambda r: tuple(r[c] for c in given))
    )
    dbapi = session.connection().connection.dbapi_connection
    assert dbapi is not None
    quoted = ", ".join(f'"{c}"' for c in order)
    with dbapi.cursor() as cur, cur.copy(f'COPY "{target}" ({quoted}) FROM STDIN') as copy:  # type: ignore[attr-defined]
        for r in rows:
            try:
                values = get(r)
            except KeyError:
                values = tuple(r.get(c, _default(table, c)) for c in given)
            if rest:
                values += tuple(r.get(c, d) for c, d in rest)
            if json_at:
                out = list(values)
                for i in json_at:
                    if out[i] is not None:
                        out[i] = json.dumps(out[i])
                values = tuple(out)
            copy.write_row(values)


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
    skip_unchanged: bool = False,
) -> None:
    """INSERT … ON CONFLICT (primary key) DO UPDATE (or DO NOTHING when ``update`` is False).

    Rows must have distinct primary keys. ``merge`` names columns that keep the ``"least"`` or
    ``"greatest"`` of the stored and the incoming value (NULL counts as unknown) instead of taking the
    incoming one, e.g. ``{"first_seen": "least"}``. ``skip_unchanged``: a stored row the update would leave
    as it is is not written again (no new row version, no index entries; not for JSON columns, which have no
    equality).
    """
    if not rows:
        return
    table = _table(model)
    pk = [c.name for c in table.primary_key.columns]
    cols = _columns(table, rows)
    merge = merge or {}
    if _is_pg(session):
        incoming = {
            c: f'{merge[c].upper()}(t."{c}", excluded."{c}")' if c in merge else f'excluded."{c}"'
            for c in cols
            if c not in pk
        }
        sets = [f'"{c}" = {v}' for c, v in incoming.items()]
        conflict = f"ON CONFLICT ({', '.join(pk)}) " + (
            f"DO UPDATE SET {', '.join(sets)}" if update and sets else "DO NOTHING"
        )
        if update and sets and skip_unchanged:
            stored = ", ".join(f't."{c}"' for c in incoming)
            conflict += f" WHERE ROW({stored}) IS DISTINCT FROM ROW({', '.join(incoming.values())})"
        quoted = ", ".join(f'"{c}"' for c in cols)
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
    ins = sqlite.insert(table)
    if not update:
        session.execute(ins.on_conflict_do_nothing(index_elements=pk), list(rows))
        return
    values: dict[str, Any] = {}
    changed = []
    for c in cols:
        if c in pk:
            continue
        old, new = table.c[c], ins.excluded[c]
        # SQLite's two-argument min()/max() are NULL when either side is: fall back to the known side
        how = merge.get(c)
        if how is None:
            values[c] = new
        else:
            both = func.min(old, new) if how == "least" else func.max(old, new)
            values[c] = func.coalesce(both, old, new)
        changed.append(old.is_distinct_from(values[c]))
    where = or_(*changed) if skip_unchanged and changed else None
    session.execute(ins.on_conflict_do_update(index_elements=pk, set_=values, where=where), list(rows))

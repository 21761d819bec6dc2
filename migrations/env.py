"""Alembic environment: the SQL schema of the aggregator (models + rollup tables), offline or online.

Run through ``carecheck db upgrade|check|downgrade`` (``aggregator.schema``), which passes the engine in
``config.attributes["connection"]``; plain ``alembic`` (``alembic.ini``) works too and reads the database URL
from the carecheck settings.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from aggregator.schema import target_metadata

config = context.config


def run_offline() -> None:
    from core.settings import get_settings

    context.configure(url=get_settings().effective_database_url, target_metadata=target_metadata(),
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from aggregator.db import get_engine

        with get_engine().connect() as conn:
            _run(conn)
            conn.commit()
        return
    _run(connection)


def _run(connection: object) -> None:
    # render_as_batch: SQLite cannot ALTER most things; Alembic's batch mode copies the table instead.
    context.configure(connection=connection, target_metadata=target_metadata(), render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


assert SQLModel  # the models register on SQLModel.metadata when target_metadata() imports them
if context.is_offline_mode():
    run_offline()
else:
    run_online()

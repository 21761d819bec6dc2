"""Indexes for the incremental indicator refresh (issue 16): the rows of a few communes over a span of dates.

Revision ID: 0006_refresh
Revises: 0005_console
Create Date: 2026-11-30

Additive and idempotent (created only when missing): ``(commune_code, visit_date)`` on ``childobservation``
(carrying ``child_id``: the children seen in the touched communes, read from the index alone on PostgreSQL)
and on ``household`` (carrying ``household_key``). A refresh names its communes and the span of its periods;
without these it read every row of each commune, of every period.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_refresh"
down_revision: str | None = "0005_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_childobservation_commune_visit": ("childobservation", "child_id"),
    "ix_household_commune_visit": ("household", "household_key"),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, (table, carried) in INDEXES.items():
        if name not in {ix["name"] for ix in inspector.get_indexes(table)}:
            op.create_index(
                name, table, ["commune_code", "visit_date"], unique=False, postgresql_include=[carried]
            )


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)

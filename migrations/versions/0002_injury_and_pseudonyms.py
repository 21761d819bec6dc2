"""Injury questions (plan II.2) and keyed pseudonyms: additive columns, the registry key table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Written to be idempotent: a database made before migrations existed is stamped at 0001 but may already have
some of these (``init_db`` used to add them one by one), so each is added only where it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
COLUMNS = {
    "household": [sa.Column("child_drowning_deaths_12m", sa.Integer(), nullable=True)],
    "childobservation": [
        sa.Column("injury_12m", sa.Boolean(), nullable=True),
        sa.Column("injury_type", _TEXT(), nullable=True),
        sa.Column("injury_drowning", sa.Boolean(), nullable=True),
    ],
    "child": [sa.Column("personal_id_hash", _TEXT(), nullable=True)],
}


def _have(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        missing = [c for c in columns if c.name not in _have(table)]
        if missing:
            with op.batch_alter_table(table) as batch:
                for column in missing:
                    batch.add_column(column)
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("child")}
    if "ix_child_personal_id_hash" not in indexes:
        op.create_index("ix_child_personal_id_hash", "child", ["personal_id_hash"], unique=False)
    if "registrykey" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "registrykey",
            sa.Column("name", _TEXT(), nullable=False),
            sa.Column("key_id", _TEXT(), nullable=False),
            sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("name"),
        )


def downgrade() -> None:
    op.drop_table("registrykey")
    op.drop_index("ix_child_personal_id_hash", table_name="child")
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)

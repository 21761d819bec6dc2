"""Officers' data-quality decisions from the web console: registry duplicates and competing edits.

Revision ID: 0004_console
Revises: 0003
Create Date: 2026-11-30

Two additive tables (idempotent: created only when missing): ``registrydecision`` (same child / different
children, applied by ingestion as an alias) and ``editchoice`` (which competing edit of a record counts).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_console"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "registrydecision" not in tables:
        op.create_table(
            "registrydecision",
            sa.Column("conflict_id", _text(), nullable=False),
            sa.Column("decision", _text(), nullable=False),
            sa.Column("child_kept", _text(), nullable=False),
            sa.Column("child_merged", _text(), nullable=True),
            sa.Column("decided_by", _text(), nullable=False),
            sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("conflict_id"),
        )
        op.create_index(
            "ix_registrydecision_child_merged", "registrydecision", ["child_merged"], unique=False
        )
    if "editchoice" not in tables:
        op.create_table(
            "editchoice",
            sa.Column("record", _text(), nullable=False),
            sa.Column("chosen_id", _text(), nullable=False),
            sa.Column("decided_by", _text(), nullable=False),
            sa.Column("decided_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("record"),
        )


def downgrade() -> None:
    op.drop_index("ix_registrydecision_child_merged", table_name="registrydecision")
    op.drop_table("registrydecision")
    op.drop_table("editchoice")

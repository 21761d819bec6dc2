"""Officers' registry-duplicate decisions from the web console.

Revision ID: 0005_console
Revises: 0004_numbers
Create Date: 2026-11-30

One additive table (idempotent: created only when missing): ``registrydecision`` (same child / different
children, applied by ingestion as an alias). Competing edits: ``versionchoice`` (0004_numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_console"
down_revision: str | None = "0004_numbers"
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



def downgrade() -> None:
    op.drop_index("ix_registrydecision_child_merged", table_name="registrydecision")
    op.drop_table("registrydecision")

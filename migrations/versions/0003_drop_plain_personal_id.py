"""Drop ``child.personal_id``: plain 12-digit IDs were stored before keyed pseudonyms replaced them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

The values are emptied first (one log line with the count, never the values), then the column and its index
go. Children whose plain ID was dropped are linked by personal ID again after ``carecheck ingest --replay``.
Downgrade brings the column back empty: the plain IDs are not recoverable, by design.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("carecheck.db")


def upgrade() -> None:
    bind = op.get_bind()
    if "personal_id" not in {c["name"] for c in sa.inspect(bind).get_columns("child")}:
        return
    n = bind.execute(sa.text("UPDATE child SET personal_id = NULL WHERE personal_id IS NOT NULL")).rowcount
    if n:
        log.warning(
            "cleared %d plain personal IDs from child.personal_id (keyed pseudonyms replace them; "
            "run `carecheck ingest --replay --once` to re-link those children)",
            n,
        )
    indexes = {i["name"] for i in sa.inspect(bind).get_indexes("child")}
    with op.batch_alter_table("child") as batch:
        if "ix_child_personal_id" in indexes:
            batch.drop_index("ix_child_personal_id")
        batch.drop_column("personal_id")


def downgrade() -> None:
    with op.batch_alter_table("child") as batch:
        batch.add_column(sa.Column("personal_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch.create_index("ix_child_personal_id", ["personal_id"], unique=False)

"""Numbers that mean what the plan means (issue 12): version winners, visit tie-breakers, refreshes due.

Revision ID: 0004_numbers
Revises: 0003
Create Date: 2026-11-30

Additive and idempotent: ``rawsubmission.lost_to`` (rule 1), ``end_time``/``received_at`` on the derived
tables (rule 2's order), the tables ``versionchoice`` (an officer's pick of the winning version) and
``refreshdue`` (rule 8). Rows landed before this revision have NULL tie-breakers and no ``lost_to`` until
``carecheck ingest --replay --once`` re-reads the feed (which also settles forked edits).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004_numbers"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime


def _order() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column("end_time", _TIME(), nullable=True), sa.Column("received_at", _TIME(), nullable=True)]


COLUMNS = {
    "rawsubmission": [sa.Column("lost_to", _TEXT(), nullable=True)],
    "household": _order(),
    "childobservation": _order(),
    "facilitycheck": _order(),
}


def _inspect() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        have = {c["name"] for c in _inspect().get_columns(table)}
        missing = [c for c in columns if c.name not in have]
        if missing:
            with op.batch_alter_table(table) as batch:
                for column in missing:
                    batch.add_column(column)
    tables = set(_inspect().get_table_names())
    if "versionchoice" not in tables:
        op.create_table(
            "versionchoice",
            sa.Column("record", _TEXT(), nullable=False),
            sa.Column("instance_id", _TEXT(), nullable=False),
            sa.Column("chosen_by", _TEXT(), nullable=True),
            sa.Column("chosen_at", _TIME(), nullable=True),
            sa.PrimaryKeyConstraint("record"),
        )
    if "refreshdue" not in tables:
        op.create_table(
            "refreshdue",
            sa.Column("submission_id", _TEXT(), nullable=False),
            sa.Column("due_at", _TIME(), nullable=True),
            sa.PrimaryKeyConstraint("submission_id"),
        )


def downgrade() -> None:
    op.drop_table("refreshdue")
    op.drop_table("versionchoice")
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)

"""Per-period generation of the indicator cells (issue 16): a refresh stamps only the periods it moved.

Revision ID: 0007_period_generation
Revises: 0006_refresh
Create Date: 2026-11-30

Additive: the table ``indicator_period_generation`` (period, generation), with one row ``*`` (every
period) at the current generation, so readers' caches of what they derive from a period's cells (the
suppression pattern) stay valid across refreshes of other periods.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_period_generation"
down_revision: str | None = "0006_refresh"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "indicator_period_generation" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "indicator_period_generation",
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("period"),
    )
    op.execute(
        "INSERT INTO indicator_period_generation (period, generation) "
        "SELECT '*', COALESCE(MAX(generation), 0) FROM indicator_generation"
    )


def downgrade() -> None:
    op.drop_table("indicator_period_generation")

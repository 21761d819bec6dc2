"""The rows the stock indicator cells count (issue 16): refresh keeps cells by difference.

Revision ID: 0008_counted
Revises: 0007_period_generation
Create Date: 2026-11-30

Additive: ``indicator_counted`` (per stock group, unit and month, the unit's latest row with what it adds to
its cells; ``aggregator.rollup.delta``) with indexes by (group, unit) and by submission, and
``indicator_counted_group`` (the definitions' signature each group was counted with). Both start empty: the
first refresh after the upgrade runs one full rebuild, which fills them (``aggregator.rollup.build.refresh``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_counted"
down_revision: str | None = "0007_period_generation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMS = ("sex", "ethnicity", "area_type", "age_group")


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "indicator_counted" not in have:
        op.create_table(
            "indicator_counted",
            sa.Column("grp", sa.String(), nullable=False),
            sa.Column("unit", sa.String(), nullable=True),
            sa.Column("ym", sa.Integer(), nullable=False),
            sa.Column("flags", sa.Integer(), nullable=False),
            sa.Column("commune", sa.String(), nullable=False),
            *[sa.Column(f"dim_{d}", sa.String(), nullable=True) for d in DIMS],
            sa.Column("measures", sa.String(), nullable=False),
            sa.Column("submission_id", sa.String(), nullable=False),
        )
    # (a database made by ``create_all`` from older code plus these models has the table without them)
    indexes = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("indicator_counted")}
    if "ix_indicator_counted_unit" not in indexes:
        op.create_index("ix_indicator_counted_unit", "indicator_counted", ["grp", "unit"])
    if "ix_indicator_counted_submission" not in indexes:
        op.create_index("ix_indicator_counted_submission", "indicator_counted", ["submission_id"])
    if "indicator_counted_group" not in have:
        op.create_table(
            "indicator_counted_group",
            sa.Column("grp", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.Column("sig", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
            sa.PrimaryKeyConstraint("grp"),
        )


def downgrade() -> None:
    op.drop_table("indicator_counted_group")
    op.drop_index("ix_indicator_counted_submission", table_name="indicator_counted")
    op.drop_index("ix_indicator_counted_unit", table_name="indicator_counted")
    op.drop_table("indicator_counted")

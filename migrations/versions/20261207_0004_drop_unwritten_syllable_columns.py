"""drop columns nothing writes: per-syllable statistics (computed from the bouts on request)
and a model-level transition count table (kept per segmentation)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("syllables") as batch:
        for column in ("usage", "bout_count", "median_duration_s", "durations_s"):
            batch.drop_column(column)
    with op.batch_alter_table("syllable_models") as batch:
        batch.drop_column("transition_counts")


def downgrade() -> None:
    with op.batch_alter_table("syllable_models") as batch:
        batch.add_column(sa.Column("transition_counts", sa.JSON(), nullable=True))
    with op.batch_alter_table("syllables") as batch:
        batch.add_column(sa.Column("usage", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("bout_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("median_duration_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("durations_s", sa.JSON(), nullable=False, server_default="[]"))

"""syllable groupings: versioned names for groups of a frozen model's syllables

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syllable_groupings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["syllable_models.id"],
            name=op.f("fk_syllable_groupings_model_id_syllable_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syllable_groupings")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_syllable_groupings_model_id")),
    )
    op.create_index(op.f("ix_syllable_groupings_model_id"), "syllable_groupings", ["model_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_syllable_groupings_model_id"), table_name="syllable_groupings")
    op.drop_table("syllable_groupings")

"""annotations: a lab's own behaviour labels per session, for agreement with syllables

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("behaviours", sa.JSON(), nullable=False),
        sa.Column("labels", sa.LargeBinary(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("scored_frames", sa.Integer(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("source", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_annotations_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotations")),
    )
    op.create_index(op.f("ix_annotations_session_id"), "annotations", ["session_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_annotations_session_id"), table_name="annotations")
    op.drop_table("annotations")

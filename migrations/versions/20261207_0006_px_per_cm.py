"""video pixels per cm of arena floor, per session and per experiment (kinematics in cm)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("px_per_cm", sa.Float(), nullable=True))
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("px_per_cm", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("px_per_cm")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("px_per_cm")

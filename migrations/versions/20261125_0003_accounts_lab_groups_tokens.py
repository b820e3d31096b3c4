"""lab accounts: users, lab groups and members, login sessions, API tokens; experiments.group_id

Experiments that exist before this revision go into a lab group named "default"; the first
administrator created afterwards becomes its owner (app.accounts.service.create_user).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "lab_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_lab_groups_name")),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["lab_groups.id"],
            name=op.f("fk_memberships_group_id_lab_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint("group_id", "user_id", name=op.f("uq_memberships_group_id")),
    )
    op.create_index(op.f("ix_memberships_group_id"), "memberships", ["group_id"], unique=False)
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"], unique=False)
    for table in ("login_sessions", "api_tokens"):
        extra = (
            [
                sa.Column("csrf_token", sa.String(length=64), nullable=False),
                sa.Column("created_at", sa.DateTime(), nullable=False),
                sa.Column("last_seen_at", sa.DateTime(), nullable=False),
            ]
            if table == "login_sessions"
            else [
                sa.Column("name", sa.String(length=200), nullable=False),
                sa.Column("prefix", sa.String(length=20), nullable=False),
                sa.Column("created_at", sa.DateTime(), nullable=False),
                sa.Column("last_used_at", sa.DateTime(), nullable=True),
            ]
        )
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("user_id", sa.Integer(), nullable=False),
            sa.Column("secret_hash", sa.String(length=64), nullable=False),
            *extra,
            sa.Column("revoked_at", sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["users.id"],
                name=op.f(f"fk_{table}_user_id_users"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("secret_hash", name=op.f(f"uq_{table}_secret_hash")),
        )
        op.create_index(op.f(f"ix_{table}_user_id"), table, ["user_id"], unique=False)

    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))

    # Nothing is lost: experiments made before accounts existed go into the "default" group.
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT COUNT(*) FROM experiments")).scalar():
        conn.execute(
            sa.text("INSERT INTO lab_groups (name, created_at) VALUES ('default', :now)"),
            {"now": _now()},
        )
        group_id = conn.execute(
            sa.text("SELECT id FROM lab_groups WHERE name = 'default'")
        ).scalar_one()
        conn.execute(sa.text("UPDATE experiments SET group_id = :g"), {"g": group_id})

    with op.batch_alter_table("experiments") as batch:
        batch.alter_column("group_id", existing_type=sa.Integer(), nullable=False)
        batch.create_index(op.f("ix_experiments_group_id"), ["group_id"], unique=False)
        batch.create_foreign_key(
            op.f("fk_experiments_group_id_lab_groups"),
            "lab_groups",
            ["group_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_constraint(op.f("fk_experiments_group_id_lab_groups"), type_="foreignkey")
        batch.drop_index(op.f("ix_experiments_group_id"))
        batch.drop_column("group_id")
    for table in ("api_tokens", "login_sessions"):
        op.drop_index(op.f(f"ix_{table}_user_id"), table_name=table)
        op.drop_table(table)
    op.drop_index(op.f("ix_memberships_user_id"), table_name="memberships")
    op.drop_index(op.f("ix_memberships_group_id"), table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("lab_groups")
    op.drop_table("users")

"""monitor alerts maintenance

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 05:54:03.200480
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cronkeeper.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "system_values",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_system_values")),
    )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("starts_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("schedule", sa.String(length=200), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column(
            "job_slugs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_maintenance_windows_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_maintenance_windows_project_id_name")
        ),
    )
    op.create_table(
        "alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("flip_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("reminder", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("created_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deliver_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["flip_id"], ["flips.id"], name=op.f("fk_alerts_flip_id_flips"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_alerts_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alerts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_job_created", ["job_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_alerts_pending",
            ["deliver_at"],
            unique=False,
            sqlite_where=sa.text("processed_at IS NULL"),
            postgresql_where=sa.text("processed_at IS NULL"),
        )

    with op.batch_alter_table("flips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suppressed_reason", sa.String(length=32), nullable=True))
        batch_op.drop_index(batch_op.f("ix_flips_unprocessed"))
        batch_op.drop_column("processed_at")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "state_since", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("fail_streak", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("ok_streak", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "realert_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "flapping_since", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "payload",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.drop_constraint(batch_op.f("fk_notifications_flip_id_flips"), type_="foreignkey")
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_alert_id_alerts"),
            "alerts",
            ["alert_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("flip_id")

    # Existing projects get a fresh random badge key before the column becomes NOT NULL.
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("badge_key", sa.String(length=64), nullable=True))
    projects = sa.table("projects", sa.column("id", sa.Uuid()), sa.column("badge_key", sa.String()))
    connection = op.get_bind()
    for (project_id,) in connection.execute(sa.select(projects.c.id)).all():
        connection.execute(
            projects.update()
            .where(projects.c.id == project_id)
            .values(badge_key=secrets.token_urlsafe(16))
        )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.alter_column("badge_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_projects_badge_key"), ["badge_key"])


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_projects_badge_key"), type_="unique")
        batch_op.drop_column("badge_key")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flip_id", sa.INTEGER(), nullable=True))
        batch_op.drop_constraint(batch_op.f("fk_notifications_alert_id_alerts"), type_="foreignkey")
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_flip_id_flips"),
            "flips",
            ["flip_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("payload")
        batch_op.drop_column("alert_id")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("flapping_since")
        batch_op.drop_column("realert_at")
        batch_op.drop_column("ok_streak")
        batch_op.drop_column("fail_streak")
        batch_op.drop_column("state_since")

    with op.batch_alter_table("flips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("processed_at", sa.DATETIME(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_flips_unprocessed"),
            ["created_at"],
            unique=False,
            sqlite_where=sa.text("processed_at IS NULL"),
        )
        batch_op.drop_column("suppressed_reason")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_alerts_pending",
            sqlite_where=sa.text("processed_at IS NULL"),
            postgresql_where=sa.text("processed_at IS NULL"),
        )
        batch_op.drop_index("ix_alerts_job_created")

    op.drop_table("alerts")
    op.drop_table("maintenance_windows")
    op.drop_table("system_values")

"""channel_sends: the channels' send log, so the rate limit holds across processes

One row per message sent to a channel (a digest is one row for all it carries). Every
notifier counts a channel's rows in the rate limit's window before it claims messages for
the channel; before, each process kept its own window in memory and N processes could
send N × 30 messages a minute to one channel.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cronkeeper.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_sends",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("sent_at", cronkeeper.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("notification_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_channel_sends_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_sends")),
    )
    with op.batch_alter_table("channel_sends", schema=None) as batch_op:
        batch_op.create_index(
            "ix_channel_sends_channel_sent", ["channel_id", "sent_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("channel_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_channel_sends_channel_sent")
    op.drop_table("channel_sends")

"""runs: a status-filtered history page reads its own index

`ix_runs_job_status (job_id, status)` becomes `ix_runs_job_status_page (job_id, status,
created_at, id)`: still the busy-job check's index (its prefix), and now a page of one
status (`?status=failed`) is a range scan instead of reading every run of the job until
fifty match.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_job_status_page", ["job_id", "status", "created_at", "id"], unique=False
        )
        batch_op.drop_index("ix_runs_job_status")


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_job_status", ["job_id", "status"], unique=False)
        batch_op.drop_index("ix_runs_job_status_page")

"""The last few run outcomes of many jobs at once (the dashboard's status strips)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.store.tables import runs


async def recent_outcomes(
    conn: AsyncConnection, project_id: uuid.UUID, job_ids: list[uuid.UUID], count: int
) -> dict[uuid.UUID, list[tuple[uuid.UUID, str, datetime]]]:
    """{job id: [(run id, status, created_at)…]} newest first, at most `count` per job.

    One statement: a UNION ALL of one small index range scan per job
    (`ix_runs_job_page`), instead of a window over each job's whole history."""
    if not job_ids:
        return {}
    parts = [
        select(
            select(runs.c.id, runs.c.job_id, runs.c.status, runs.c.created_at)
            .where(runs.c.job_id == job_id, runs.c.project_id == project_id)
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(count)
            .subquery()
        )
        for job_id in job_ids
    ]
    found: dict[uuid.UUID, list[tuple[uuid.UUID, str, datetime]]] = {}
    for run_id, job_id, status, created_at in await conn.execute(union_all(*parts)):
        found.setdefault(job_id, []).append((run_id, status, created_at))
    for outcomes in found.values():
        outcomes.sort(key=lambda outcome: (outcome[2], outcome[0]), reverse=True)
    return found

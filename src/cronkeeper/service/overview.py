"""What the jobs overview shows beside each job: its last few outcomes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from cronkeeper.domain.models import Actor
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project
from cronkeeper.store import strips as strip_store


@dataclass(frozen=True)
class Outcome:
    id: str
    status: str
    created_at: datetime


async def recent_outcomes(
    ctx: Context, actor: Actor, project_slug: str, job_ids: list[str], count: int = 20
) -> dict[str, list[Outcome]]:
    """{job id: its last `count` runs, oldest first} for jobs of the project (one query)."""
    ids = [uuid.UUID(job_id) for job_id in job_ids]
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        found = await strip_store.recent_outcomes(conn, project.id, ids, count)
    return {
        str(job_id): [Outcome(str(run_id), status, at) for run_id, status, at in reversed(rows)]
        for job_id, rows in found.items()
    }

"""The last few run outcomes of many jobs at once (the dashboard's status strips)."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Integer, ScalarSelect, bindparam, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.store.tables import jobs, runs


async def recent_outcomes(
    conn: AsyncConnection, project_id: uuid.UUID, job_ids: list[uuid.UUID], count: int
) -> dict[uuid.UUID, list[tuple[uuid.UUID, str, datetime]]]:
    """{job id: [(run id, status, created_at)…]} newest first, at most `count` per job;
    nothing for a job of another project.

    One statement: a UNION ALL of one small index range scan per job
    (`ix_runs_job_page`), instead of a window over each job's whole history."""
    if not job_ids:
        return {}
    values: dict[str, Any] = {"project_id": project_id, "count": count}
    values.update((f"job_{index}", job_id) for index, job_id in enumerate(job_ids))
    found: dict[uuid.UUID, list[tuple[uuid.UUID, str, datetime]]] = {}
    for run_id, job_id, status, created_at in await conn.execute(_statement(len(job_ids)), values):
        found.setdefault(job_id, []).append((run_id, status, created_at))
    for outcomes in found.values():
        outcomes.sort(key=lambda outcome: (outcome[2], outcome[0]), reverse=True)
    return found


@functools.lru_cache(maxsize=128)
def _statement(jobs_shown: int) -> CompoundSelect[Any]:
    """The strips' statement for that many jobs (built once: a page of 50 jobs is a
    statement of 50 parts, and building it cost more than SQLite spends running it)."""
    parts = [
        select(
            select(runs.c.id, runs.c.job_id, runs.c.status, runs.c.created_at)
            .where(runs.c.job_id == _job_of_project(f"job_{index}"))
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(bindparam("count", type_=Integer))
            .subquery()
        )
        for index in range(jobs_shown)
    ]
    return union_all(*parts)


def _job_of_project(name: str) -> ScalarSelect[uuid.UUID]:
    """The job's id if the job is in the project, else NULL (which matches no run).

    The project is checked on the job's row, not on `runs.project_id`: with that
    condition SQLite walks `ix_runs_project_page` from the project's newest run until it
    has met `count` of the job's runs, i.e. through the project's whole history for a
    job that has few runs or none."""
    return (
        select(jobs.c.id)
        .where(
            jobs.c.id == bindparam(name, type_=jobs.c.id.type),
            jobs.c.project_id == bindparam("project_id", type_=jobs.c.project_id.type),
        )
        .scalar_subquery()
    )

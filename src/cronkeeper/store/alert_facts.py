"""Read-only ledger facts the notifier puts into a message: the job, its run and output
tail, the project's other failing jobs, and when the job went down."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.notifications import RunFacts
from cronkeeper.store.tables import attempts, flips, jobs, projects, runs

#: A down message lists at most this many other failing jobs.
FAILING_JOBS_LIMIT = 20


@dataclass(frozen=True)
class JobFacts:
    id: uuid.UUID
    project_id: uuid.UUID
    project_slug: str
    slug: str
    name: str
    monitor_state: str
    state_since: datetime | None
    alert_channels: tuple[str, ...]


def job_facts_of(row: Any) -> JobFacts:
    """JobFacts from a `jobs` row joined with its project's slug (`project_slug`)."""
    channels = (row["spec"].get("alerts") or {}).get("channels") or []
    return JobFacts(
        id=row["id"],
        project_id=row["project_id"],
        project_slug=row["project_slug"],
        slug=row["slug"],
        name=row["name"],
        monitor_state=row["monitor_state"],
        state_since=row["state_since"],
        alert_channels=tuple(str(ref) for ref in channels),
    )


async def job_facts(conn: AsyncConnection, job_id: uuid.UUID) -> JobFacts | None:
    """The job an alert is about, or None if it was deleted."""
    query = (
        select(jobs, projects.c.slug.label("project_slug"))
        .join(projects, projects.c.id == jobs.c.project_id)
        .where(jobs.c.id == job_id)
    )
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else job_facts_of(row)


async def run_facts(conn: AsyncConnection, run_id: uuid.UUID | None) -> RunFacts | None:
    """The run an alert names, with the output (body preview) of its last attempt."""
    if run_id is None:
        return None
    row = (await conn.execute(select(runs).where(runs.c.id == run_id))).mappings().first()
    if row is None:
        return None
    output_query = (
        select(attempts.c.body_preview)
        .where(attempts.c.run_id == run_id)
        .order_by(attempts.c.number.desc())
        .limit(1)
    )
    output = (await conn.execute(output_query)).scalar_one_or_none()
    return RunFacts(
        id=str(row["id"]),
        status=row["status"],
        failure_reason=row["failure_reason"],
        error=row["error"],
        output_tail=output,
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_ms=row["duration_ms"],
    )


async def failing_jobs(
    conn: AsyncConnection, project_id: uuid.UUID, except_job: uuid.UUID
) -> list[tuple[str, str, datetime | None]]:
    """(slug, name, down since) of the project's other jobs that are down."""
    query = (
        select(jobs.c.slug, jobs.c.name, jobs.c.state_since)
        .where(jobs.c.project_id == project_id, jobs.c.monitor_state == "down")
        .where(jobs.c.id != except_job)
        .order_by(jobs.c.slug)
        .limit(FAILING_JOBS_LIMIT)
    )
    return [(r.slug, r.name, r.state_since) for r in await conn.execute(query)]


async def flip_time(conn: AsyncConnection, flip_id: int | None) -> datetime | None:
    """When a flip happened (back-dated to its deadline)."""
    if flip_id is None:
        return None
    value: datetime | None = (
        await conn.execute(select(flips.c.created_at).where(flips.c.id == flip_id))
    ).scalar_one_or_none()
    return value


async def went_down_at(
    conn: AsyncConnection, job_id: uuid.UUID, before: datetime
) -> datetime | None:
    """When the job last flipped to down, at or before `before`."""
    query = (
        select(flips.c.created_at)
        .where(flips.c.job_id == job_id, flips.c.new_state == "down", flips.c.created_at <= before)
        .order_by(flips.c.created_at.desc())
        .limit(1)
    )
    value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return value

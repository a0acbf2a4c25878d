"""Run statistics per job: how many runs, how they ended, how long they took, how late
they started."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from cronkeeper.domain.models import Actor
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project
from cronkeeper.store import jobs as job_store
from cronkeeper.store import stats as stats_store


class Percentiles(BaseModel):
    p50: int | None
    p95: int | None


class JobStats(BaseModel):
    job: str
    total: int
    succeeded: int
    failed: int
    cancelled: int
    skipped: int
    missed: int
    active: int  # queued, running or suspended
    success_rate: float | None  # succeeded / (succeeded + failed), None without any
    duration_ms: Percentiles
    drift_ms: Percentiles


class StatsOut(BaseModel):
    since: datetime
    jobs: list[JobStats]
    total: int
    succeeded: int
    failed: int


async def project_stats(ctx: Context, actor: Actor, project_slug: str, since: datetime) -> StatsOut:
    """Statistics of every job with runs created since `since`, by slug."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        counts = await stats_store.status_counts(conn, project.id, since)
        durations = await stats_store.percentiles(conn, project.id, since, "duration_ms")
        drifts = await stats_store.percentiles(conn, project.id, since, "drift_ms")
        slugs = await job_store.slugs_by_id(conn, list(counts))
    rows = [
        _job_stats(slugs.get(job_id, "?"), by_status, durations.get(job_id), drifts.get(job_id))
        for job_id, by_status in counts.items()
    ]
    rows.sort(key=lambda row: row.job)
    return StatsOut(
        since=since,
        jobs=rows,
        total=sum(row.total for row in rows),
        succeeded=sum(row.succeeded for row in rows),
        failed=sum(row.failed for row in rows),
    )


def _job_stats(
    slug: str,
    by_status: dict[str, int],
    duration: tuple[int | None, int | None] | None,
    drift: tuple[int | None, int | None] | None,
) -> JobStats:
    succeeded, failed = by_status.get("succeeded", 0), by_status.get("failed", 0)
    decided = succeeded + failed
    active = sum(by_status.get(s, 0) for s in ("queued", "running", "suspended"))
    return JobStats(
        job=slug,
        total=sum(by_status.values()),
        succeeded=succeeded,
        failed=failed,
        cancelled=by_status.get("cancelled", 0),
        skipped=by_status.get("skipped", 0),
        missed=by_status.get("missed", 0),
        active=active,
        success_rate=round(succeeded / decided, 4) if decided else None,
        duration_ms=Percentiles(
            p50=(duration or (None, None))[0], p95=(duration or (None, None))[1]
        ),
        drift_ms=Percentiles(p50=(drift or (None, None))[0], p95=(drift or (None, None))[1]),
    )

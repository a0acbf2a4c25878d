"""Per-job run statistics over a time window: counts by status and nearest-rank p50/p95
of duration and drift, computed in SQL on both dialects (window functions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.store.tables import runs

FINAL = ("succeeded", "failed", "cancelled", "missed", "skipped")


async def status_counts(
    conn: AsyncConnection, project_id: uuid.UUID, since: datetime
) -> dict[uuid.UUID, dict[str, int]]:
    """{job id: {status: count}} of runs created since `since`."""
    query = (
        select(runs.c.job_id, runs.c.status, func.count())
        .where(runs.c.project_id == project_id, runs.c.created_at >= since)
        .group_by(runs.c.job_id, runs.c.status)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for job_id, status, count in await conn.execute(query):
        counts.setdefault(job_id, {})[status] = int(count)
    return counts


async def percentiles(
    conn: AsyncConnection, project_id: uuid.UUID, since: datetime, column: str
) -> dict[uuid.UUID, tuple[int | None, int | None]]:
    """{job id: (p50, p95)} of `duration_ms` or `drift_ms` over runs that ran."""
    value: ColumnElement[Any] = runs.c[column]
    ranked = (
        select(
            runs.c.job_id,
            value.label("v"),
            func.row_number().over(partition_by=runs.c.job_id, order_by=value).label("rn"),
            func.count().over(partition_by=runs.c.job_id).label("n"),
        )
        .where(
            runs.c.project_id == project_id,
            runs.c.created_at >= since,
            value.is_not(None),
            runs.c.status.in_(("succeeded", "failed")),
        )
        .subquery()
    )
    query = select(
        ranked.c.job_id,
        func.min(case((ranked.c.rn >= ranked.c.n * 0.5, ranked.c.v))),
        func.min(case((ranked.c.rn >= ranked.c.n * 0.95, ranked.c.v))),
    ).group_by(ranked.c.job_id)
    return {job_id: (_int(p50), _int(p95)) for job_id, p50, p95 in await conn.execute(query)}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


async def queue_counts(
    conn: AsyncConnection, project_id: uuid.UUID, now: datetime
) -> dict[str, dict[str, Any]]:
    """Per queue: runs due and waiting, runs queued for later, running, oldest due wait."""
    due = runs.c.not_before.is_(None) | (runs.c.not_before <= now)
    waiting_since = func.coalesce(runs.c.not_before, runs.c.queued_at)
    query = (
        select(
            runs.c.queue,
            func.count().filter(runs.c.status == "queued", due),
            func.count().filter(runs.c.status == "queued", ~due),
            func.count().filter(runs.c.status == "running"),
            func.min(case((due, waiting_since))).filter(runs.c.status == "queued"),
        )
        .where(runs.c.project_id == project_id, runs.c.status.in_(("queued", "running")))
        .group_by(runs.c.queue)
    )
    return {
        queue: {
            "depth": int(depth),
            "scheduled_ahead": int(ahead),
            "running": int(running),
            "oldest_due": oldest,
        }
        for queue, depth, ahead, running, oldest in await conn.execute(query)
    }


async def start_latencies_ms(
    conn: AsyncConnection, project_id: uuid.UUID, since: datetime, limit: int = 20_000
) -> tuple[list[int], int]:
    """(enqueue→start latencies in ms of runs started since `since`, newest first and at
    most `limit`; how many runs finished since `since`)."""
    waiting_since = func.coalesce(runs.c.not_before, runs.c.queued_at)
    started = (
        select(runs.c.started_at, waiting_since)
        .where(runs.c.project_id == project_id, runs.c.started_at >= since)
        .order_by(runs.c.started_at.desc())
        .limit(limit)
    )
    latencies = [
        max(0, int((start - queued).total_seconds() * 1000))
        for start, queued in await conn.execute(started)
        if start is not None and queued is not None
    ]
    finished = select(func.count()).where(
        runs.c.project_id == project_id, runs.c.finished_at >= since
    )
    return latencies, int((await conn.execute(finished)).scalar_one())

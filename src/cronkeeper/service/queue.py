"""The queue, as operators watch it: depth, oldest wait, throughput, start latency."""

from __future__ import annotations

import math
from datetime import timedelta

from pydantic import BaseModel

from cronkeeper.domain.models import Actor
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project
from cronkeeper.store import stats as stats_store


class QueueOut(BaseModel):
    queue: str
    depth: int  # due and waiting for a worker
    scheduled_ahead: int  # created ahead of their slot, not due yet
    running: int
    oldest_queued_age_s: float | None


class QueueStatsOut(BaseModel):
    queues: list[QueueOut]
    finished_last_hour: int
    throughput_per_minute: float
    start_latency_ms_p50: int | None
    start_latency_ms_p95: int | None


async def queue_stats(ctx: Context, actor: Actor, project_slug: str) -> QueueStatsOut:
    """Depth and oldest wait per queue; throughput and enqueue→start latency over an hour."""
    now = ctx.clock.now()
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        counts = await stats_store.queue_counts(conn, project.id, now)
        latencies, finished = await stats_store.start_latencies_ms(
            conn, project.id, now - timedelta(hours=1)
        )
    queues = [
        QueueOut(
            queue=name,
            depth=row["depth"],
            scheduled_ahead=row["scheduled_ahead"],
            running=row["running"],
            oldest_queued_age_s=(
                None
                if row["oldest_due"] is None
                else round(max(0.0, (now - row["oldest_due"]).total_seconds()), 3)
            ),
        )
        for name, row in sorted(counts.items())
    ]
    ordered = sorted(latencies)
    return QueueStatsOut(
        queues=queues,
        finished_last_hour=finished,
        throughput_per_minute=round(finished / 60, 2),
        start_latency_ms_p50=_nearest_rank(ordered, 0.5),
        start_latency_ms_p95=_nearest_rank(ordered, 0.95),
    )


def _nearest_rank(ordered: list[int], fraction: float) -> int | None:
    if not ordered:
        return None
    rank = math.ceil(len(ordered) * fraction)
    return ordered[max(0, rank - 1)]

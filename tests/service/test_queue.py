"""The queue overview: due depth vs runs created ahead of their slot, running runs, the
oldest due run's wait, and throughput / start latency over the last hour."""

from __future__ import annotations

from datetime import timedelta

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole, RunStatus
from cronkeeper.service import jobs, keys, queue
from cronkeeper.service.context import Context
from cronkeeper.service.execution import new_run_values
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock


async def test_queue_overview_separates_due_waiting_runs_from_runs_created_ahead(
    ctx: Context, admin: Actor, clock: FakeClock
) -> None:
    await keys.create_key(ctx, admin, project_slug="default", role=KeyRole.WRITE, name="ci")
    await jobs.create_job(
        ctx, admin, "default", {"slug": "q", "kind": "command", "target": {"command": ["true"]}}
    )
    now = clock.now()
    async with ctx.db.write() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        job = await job_store.get_job(conn, project.id, "q")
        assert job is not None

        async def add(status: RunStatus, queued_ago: float, **extra: object) -> None:
            values = new_run_values(
                project.id,
                job.id,
                job.spec,
                source="manual",
                now=now - timedelta(seconds=queued_ago),
                status=status,
            )
            await run_store.insert_run(conn, {**values, **extra})

        await add(RunStatus.QUEUED, 30)  # due, waiting 30 s
        await add(RunStatus.QUEUED, 5)  # due, waiting 5 s
        await add(RunStatus.QUEUED, 1, not_before=now + timedelta(seconds=1))  # ahead
        await add(RunStatus.RUNNING, 60)
        for latency in (100, 200, 300, 400):  # finished runs that waited this long
            start = now - timedelta(minutes=10)
            await add(
                RunStatus.SUCCEEDED,
                600 + latency / 1000,
                started_at=start,
                finished_at=start + timedelta(seconds=1),
            )

    overview = await queue.queue_stats(ctx, admin, "default")

    [default] = overview.queues
    assert (default.queue, default.depth, default.scheduled_ahead, default.running) == (
        "default",
        2,
        1,
        1,
    )
    assert default.oldest_queued_age_s == 30
    assert overview.finished_last_hour == 4
    assert (overview.start_latency_ms_p50, overview.start_latency_ms_p95) == (200, 400)

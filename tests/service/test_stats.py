"""Per-job statistics: counts by status, success rate and nearest-rank percentiles of
duration and drift, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx

from cronkeeper.api.app import create_app
from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole, RunStatus
from cronkeeper.service import jobs, keys, stats
from cronkeeper.service.context import Context
from cronkeeper.service.execution import new_run_values
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock


async def _seed(ctx: Context, admin: Actor, clock: FakeClock) -> str:
    created = await keys.create_key(
        ctx, admin, project_slug="default", role=KeyRole.READ, name="viewer"
    )
    for slug in ("alpha", "beta"):
        body = {"slug": slug, "kind": "command", "target": {"command": ["true"]}}
        await jobs.create_job(ctx, admin, "default", body)
    async with ctx.db.write() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        alpha = await job_store.get_job(conn, project.id, "alpha")
        assert alpha is not None
        for i in range(1, 21):  # durations 100..2000 ms, drift 1..20 ms; 2 failures
            status = RunStatus.FAILED if i in (5, 10) else RunStatus.SUCCEEDED
            values = new_run_values(
                project.id,
                alpha.id,
                alpha.spec,
                source="schedule",
                now=clock.now() - timedelta(minutes=i),
                status=status,
            )
            values.update(duration_ms=i * 100, drift_ms=i, scheduled_for=values["created_at"])
            await run_store.insert_run(conn, values)
        old = new_run_values(
            project.id,
            alpha.id,
            alpha.spec,
            source="manual",
            now=clock.now() - timedelta(days=3),
            status=RunStatus.FAILED,
        )
        await run_store.insert_run(conn, {**old, "duration_ms": 99_999})
    return created.plaintext


async def test_stats_count_outcomes_and_give_nearest_rank_percentiles_per_job(
    ctx: Context, admin: Actor, clock: FakeClock
) -> None:
    await _seed(ctx, admin, clock)

    result = await stats.project_stats(ctx, admin, "default", clock.now() - timedelta(hours=24))

    assert [job.job for job in result.jobs] == ["alpha"]  # beta had no runs; old run excluded
    alpha = result.jobs[0]
    assert (alpha.total, alpha.succeeded, alpha.failed) == (20, 18, 2)
    assert alpha.success_rate == 0.9
    assert (alpha.duration_ms.p50, alpha.duration_ms.p95) == (1000, 1900)
    assert (alpha.drift_ms.p50, alpha.drift_ms.p95) == (10, 19)


async def test_stats_endpoint_takes_a_duration_window_and_names_a_bad_one(
    ctx: Context, admin: Actor, clock: FakeClock
) -> None:
    key = await _seed(ctx, admin, clock)
    transport = httpx.ASGITransport(app=create_app(ctx))
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        week = await c.get("/api/v1/projects/default/stats", params={"since": "7d"})
        bad = await c.get("/api/v1/projects/default/stats", params={"since": "soon"})

    assert week.status_code == 200
    assert week.json()["data"]["jobs"][0]["total"] == 21
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "since"

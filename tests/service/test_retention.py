"""Retention deletes finished runs past the project's retention, with their events, and
keeps recent runs and anything still queued or running."""

from __future__ import annotations

import uuid
from datetime import timedelta

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole, RunStatus
from cronkeeper.service import jobs, keys, retention, runs
from cronkeeper.service.context import Context
from cronkeeper.service.execution import new_run_values
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock


async def test_runs_older_than_30_days_are_pruned_in_batches_and_active_ones_are_kept(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await keys.create_key(ctx, admin, project_slug="default", role=KeyRole.WRITE, name="ci")
    body = {"slug": "old", "kind": "command", "target": {"command": ["true"]}}
    await jobs.create_job(ctx, admin, "default", body)
    async with ctx.db.write() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        job = await job_store.get_job(conn, project.id, "old")
        assert job is not None
        start = clock.now()
        for days_ago, status in [(40, "succeeded")] * 7 + [(40, "queued"), (10, "failed")]:
            at = start - timedelta(days=days_ago)
            values = new_run_values(
                project.id, job.id, job.spec, source="manual", now=at, status=RunStatus(status)
            )
            run = await run_store.insert_run(conn, values)
            await run_store.append_events(conn, run.id, [("log", at, "x", None)])

    deleted = await retention.prune_old_runs(ctx, batch=3)

    assert deleted == 7
    page = await runs.list_runs(ctx, admin, "default", runs.RunQuery(), job_slug="old")
    assert sorted(run.status for run in page.items) == ["failed", "queued"]
    async with ctx.db.read() as conn:
        remaining = [len(await run_store.list_events(conn, uuid.UUID(r.id))) for r in page.items]
    assert remaining == [1, 1]


async def test_flips_and_processed_alerts_older_than_93_days_are_pruned_with_their_notifications(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    from sqlalchemy import func, select

    from cronkeeper.store.tables import alerts, channels, flips, notifications

    await keys.create_key(ctx, admin, project_slug="default", role=KeyRole.WRITE, name="ci")
    body = {"slug": "beat", "kind": "heartbeat", "schedule": "@hourly"}
    await jobs.create_job(ctx, admin, "default", body)
    now = clock.now()
    async with ctx.db.write() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        job = await job_store.get_job(conn, project.id, "beat")
        assert job is not None
        channel_id = uuid.uuid4()
        await conn.execute(
            channels.insert().values(
                id=channel_id,
                project_id=project.id,
                name="hook",
                kind="webhook",
                config={"url": "https://hooks.example.com/x"},
                created_at=now,
                updated_at=now,
            )
        )
        for days_ago in (100, 100, 10):
            at = now - timedelta(days=days_ago)
            flip = await conn.execute(
                flips.insert()
                .returning(flips.c.id)
                .values(
                    job_id=job.id,
                    old_state="up",
                    new_state="down",
                    reason="missed",
                    created_at=at,
                )
            )
            alert = await conn.execute(
                alerts.insert()
                .returning(alerts.c.id)
                .values(
                    project_id=project.id,
                    job_id=job.id,
                    flip_id=flip.scalar_one(),
                    event="down",
                    created_at=at,
                    deliver_at=at,
                    processed_at=at,
                    outcome="sent",
                )
            )
            await conn.execute(
                notifications.insert().values(
                    id=uuid.uuid4(),
                    alert_id=alert.scalar_one(),
                    channel_id=channel_id,
                    event="down",
                    status="sent",
                    created_at=at,
                )
            )

    deleted = await retention.prune_monitor_history(ctx, batch=1)

    assert deleted >= 2
    async with ctx.db.read() as conn:
        counts = [
            (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in (flips, alerts, notifications)
        ]
    assert counts == [1, 1, 1]  # the 10-day-old history stays

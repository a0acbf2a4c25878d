"""The constraints the runtime leans on, checked in the migrated database of each dialect."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import IntegrityError

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.states import JobKind
from cronkeeper.service.context import Context
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store.tables import runs

SLOT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


async def two_jobs(ctx: Context) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A project with two jobs; returns (project_id, first_job_id, second_job_id)."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        project = await project_store.insert_project(conn, "default", "Default", "ping", now)
        job_ids = []
        for slug in ("nightly", "hourly"):
            spec = JobSpec(slug=slug, kind=JobKind.HEARTBEAT, schedule="0 2 * * *")
            job = await job_store.insert_job(
                conn, project_id=project.id, spec=spec, ping_uuid=None, next_fire_at=None, now=now
            )
            job_ids.append(job.id)
    return project.id, job_ids[0], job_ids[1]


async def insert_run(
    ctx: Context, project_id: uuid.UUID, job_id: uuid.UUID, scheduled_for: datetime | None
) -> None:
    row: dict[str, object] = {
        "id": uuid.uuid4(),
        "project_id": project_id,
        "job_id": job_id,
        "source": "schedule" if scheduled_for else "manual",
        "status": "queued",
        "scheduled_for": scheduled_for,
        "created_at": ctx.clock.now(),
    }
    if "ordered_at" in runs.c:  # the run-history sort key: the slot, else creation time
        row["ordered_at"] = scheduled_for or row["created_at"]
    async with ctx.db.write() as conn:
        await conn.execute(runs.insert().values(**row))


async def run_count(ctx: Context) -> int:
    async with ctx.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(runs))).scalar_one())


async def test_a_slot_becomes_a_run_at_most_once(ctx: Context) -> None:
    project_id, job_id, _ = await two_jobs(ctx)
    await insert_run(ctx, project_id, job_id, SLOT)

    with pytest.raises(IntegrityError):
        await insert_run(ctx, project_id, job_id, SLOT)
    assert await run_count(ctx) == 1


async def test_the_same_slot_written_in_another_timezone_is_still_the_same_slot(
    ctx: Context,
) -> None:
    project_id, job_id, _ = await two_jobs(ctx)
    await insert_run(ctx, project_id, job_id, SLOT)

    in_kolkata = SLOT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    with pytest.raises(IntegrityError):
        await insert_run(ctx, project_id, job_id, in_kolkata)
    assert await run_count(ctx) == 1


async def test_runs_without_a_slot_are_never_duplicates_of_each_other(ctx: Context) -> None:
    project_id, job_id, _ = await two_jobs(ctx)
    await insert_run(ctx, project_id, job_id, None)
    await insert_run(ctx, project_id, job_id, None)
    await insert_run(ctx, project_id, job_id, SLOT)
    assert await run_count(ctx) == 3


async def test_two_jobs_may_each_fire_the_same_slot_and_a_job_the_next_slot(
    ctx: Context,
) -> None:
    project_id, first, second = await two_jobs(ctx)
    await insert_run(ctx, project_id, first, SLOT)
    await insert_run(ctx, project_id, second, SLOT)
    await insert_run(ctx, project_id, first, SLOT + timedelta(seconds=1))
    assert await run_count(ctx) == 3


def _schema(sync_conn: Connection) -> dict[str, Any]:
    inspector = inspect(sync_conn)
    indexes = {
        index["name"]: index
        for table in ("runs", "jobs", "alerts", "notifications")
        for index in inspector.get_indexes(table)
    }
    uniques = {u["name"]: u["column_names"] for u in inspector.get_unique_constraints("runs")}
    return {"indexes": indexes, "uniques": uniques}


def _where(index: dict[str, Any]) -> str:
    options = index.get("dialect_options", {})
    clause = options.get("postgresql_where", options.get("sqlite_where"))
    # PostgreSQL reflects `((status)::text = 'queued'::text)`; SQLite the text as written.
    if clause is None:
        return ""
    return str(clause).replace("::text", "").replace("(", "").replace(")", "")


PARTIAL_INDEXES = {
    "ix_runs_queued": (["queue", "not_before", "created_at"], "status = 'queued'"),
    "ix_runs_running_lease": (["lease_expires_at"], "status = 'running'"),
    "ix_jobs_next_fire": (["next_fire_at"], "status = 'active'"),
    "ix_jobs_deadline": (["deadline_at"], "status = 'active'"),
    "ix_alerts_pending": (["deliver_at"], "processed_at IS NULL"),
    "ix_notifications_pending": (["next_attempt_at"], "status = 'pending'"),
}


async def test_the_partial_indexes_exist_with_their_conditions(ctx: Context) -> None:
    async with ctx.db.engine.connect() as conn:
        schema = await conn.run_sync(_schema)

    found = {
        name: (index["column_names"], _where(index))
        for name, index in schema["indexes"].items()
        if _where(index)
    }
    assert found == PARTIAL_INDEXES
    assert not any(schema["indexes"][name]["unique"] for name in PARTIAL_INDEXES)


async def test_the_slot_constraint_and_the_page_indexes_exist(ctx: Context) -> None:
    async with ctx.db.engine.connect() as conn:
        schema = await conn.run_sync(_schema)

    assert schema["uniques"]["uq_runs_job_id_scheduled_for"] == ["job_id", "scheduled_for"]
    indexes = schema["indexes"]
    assert indexes["ix_runs_job_page"]["column_names"] == ["job_id", "created_at", "id"]
    assert indexes["ix_runs_project_page"]["column_names"] == ["project_id", "created_at", "id"]
    assert _where(indexes["ix_runs_job_page"]) == ""

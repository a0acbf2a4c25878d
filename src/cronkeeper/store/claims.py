"""The race-sensitive statements. Each docstring names the race it prevents.

Every state change is conditional (`WHERE status = :expected`) and callers check how
many rows changed; PostgreSQL adds `FOR UPDATE SKIP LOCKED` so several processes split
the work instead of queueing behind each other's row locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.models import DueJob, Run
from cronkeeper.store.runs import run_from_row
from cronkeeper.store.tables import jobs, runs

ACTIVE = ("queued", "running", "suspended")


def _skip_locked(conn: AsyncConnection, query: Select[Any]) -> Select[Any]:
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def due_jobs(conn: AsyncConnection, now: datetime, limit: int) -> list[DueJob]:
    """Active jobs whose next slot has come, oldest first.

    Race: two schedulers on PostgreSQL each lock (and skip) different jobs, so one
    job's slot is planned by one of them; the slot constraint covers everything else.
    """
    query = (
        select(jobs.c.id, jobs.c.project_id, jobs.c.spec, jobs.c.next_fire_at)
        .where(jobs.c.status == "active", jobs.c.next_fire_at <= now)
        .order_by(jobs.c.next_fire_at)
        .limit(limit)
    )
    rows = (await conn.execute(_skip_locked(conn, query))).all()
    return [DueJob(r.id, r.project_id, JobSpec.from_body(r.spec), r.next_fire_at) for r in rows]


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    """The earliest next fire of any active job (the scheduler sleeps until then)."""
    query = select(func.min(jobs.c.next_fire_at)).where(jobs.c.status == "active")
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


async def insert_slot_runs(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert runs for schedule slots, ignoring slots that already have a run.

    Race: two schedulers (or a restart) firing the same slot — the unique
    (job_id, scheduled_for) constraint lets exactly one insert through.
    """
    if not rows:
        return 0
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = dialect_insert(runs).on_conflict_do_nothing(
        index_elements=["job_id", "scheduled_for"]
    )
    result = await conn.execute(statement, list(rows))
    return int(result.rowcount)


async def advance_next_fire(
    conn: AsyncConnection, job_id: uuid.UUID, expected: datetime, new: datetime | None
) -> bool:
    """Move a job's next fire forward if nobody else already did."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.next_fire_at == expected)
        .values(next_fire_at=new)
    )
    return result.rowcount == 1


async def claim_runs(
    conn: AsyncConnection,
    *,
    node: str,
    now: datetime,
    lease_until: datetime,
    queues: Sequence[str],
    limit: int,
) -> list[Run]:
    """Move up to `limit` due queued runs to `running` for this node, respecting each
    job's concurrency (unless its overlap policy is `allow`).

    Race: two workers claiming one run — the conditional UPDATE (status still
    'queued') lets one win; on PostgreSQL SKIP LOCKED keeps them off each other's rows
    and the job row lock serialises the concurrency check per job.
    """
    candidates = (
        select(runs.c.id, runs.c.job_id, jobs.c.spec)
        .join(jobs, jobs.c.id == runs.c.job_id)
        .where(
            runs.c.status == "queued",
            runs.c.queue.in_(list(queues)),
            (runs.c.not_before.is_(None)) | (runs.c.not_before <= now),
        )
        .order_by(runs.c.created_at)
        .limit(limit * 4)
    )
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(of=runs, skip_locked=True)
    rows = (await conn.execute(candidates)).all()
    chosen = await _within_concurrency(conn, rows, limit)
    if not chosen:
        return []
    result = await conn.execute(
        update(runs)
        .where(runs.c.id.in_(chosen), runs.c.status == "queued")
        .values(
            status="running",
            node=node,
            lease_expires_at=lease_until,
            started_at=func.coalesce(runs.c.started_at, now),
            attempts=runs.c.attempts + 1,
        )
        .returning(*runs.c)
    )
    return [run_from_row(row) for row in result.mappings()]


async def _within_concurrency(
    conn: AsyncConnection, rows: Sequence[Any], limit: int
) -> list[uuid.UUID]:
    job_ids = list({row.job_id for row in rows})
    if conn.dialect.name == "postgresql" and job_ids:
        await conn.execute(select(jobs.c.id).where(jobs.c.id.in_(job_ids)).with_for_update())
    running: dict[uuid.UUID, int] = {}
    if job_ids:
        query = (
            select(runs.c.job_id, func.count())
            .where(runs.c.job_id.in_(job_ids), runs.c.status == "running")
            .group_by(runs.c.job_id)
        )
        running = {job_id: int(n) for job_id, n in (await conn.execute(query)).all()}
    chosen: list[uuid.UUID] = []
    for row in rows:
        spec = row.spec
        busy = running.get(row.job_id, 0)
        if spec.get("overlap") != "allow" and busy >= int(spec.get("concurrency", 1)):
            continue
        running[row.job_id] = busy + 1
        chosen.append(row.id)
        if len(chosen) == limit:
            break
    return chosen


async def renew_leases(
    conn: AsyncConnection, node: str, run_ids: Sequence[uuid.UUID], until: datetime
) -> set[uuid.UUID]:
    """Extend the leases of this node's running runs; returns the ids still ours.

    Race: a run cancelled (or reaped) while we ran it is no longer `running` for this
    node, so it is absent from the result and the worker stops its attempt.
    """
    if not run_ids:
        return set()
    result = await conn.execute(
        update(runs)
        .where(runs.c.id.in_(list(run_ids)), runs.c.node == node, runs.c.status == "running")
        .values(lease_expires_at=until)
        .returning(runs.c.id)
    )
    return {row.id for row in result}


async def finish_run(
    conn: AsyncConnection, run_id: uuid.UUID, node: str | None, values: dict[str, Any]
) -> bool:
    """Set a running run's final (or re-queued) state, only if it is still ours.

    Race: a cancel or a lease reap that got there first wins; the caller then drops
    its outcome instead of overwriting the final state.
    """
    condition = [runs.c.id == run_id, runs.c.status == "running"]
    if node is not None:
        condition.append(runs.c.node == node)
    result = await conn.execute(update(runs).where(*condition).values(**values))
    return result.rowcount == 1


async def release_run(conn: AsyncConnection, run_id: uuid.UUID, node: str) -> bool:
    """Put a running run of this node back in the queue, uncounting its attempt.

    Race: as in `finish_run`, only if the run is still running on this node.
    """
    result = await conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == "running", runs.c.node == node)
        .values(status="queued", node=None, lease_expires_at=None, attempts=runs.c.attempts - 1)
    )
    return result.rowcount == 1


async def cancel_run(conn: AsyncConnection, run_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Cancel a run that is not final yet (`values`: finished_at, duration_ms, …).

    Race: a worker finishing the run at the same moment — whichever conditional
    update lands first decides; the other sees zero rows changed.
    """
    result = await conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_(ACTIVE))
        .values(status="cancelled", lease_expires_at=None, **values)
    )
    return result.rowcount == 1


async def expired_leases(conn: AsyncConnection, now: datetime, limit: int) -> list[Run]:
    """Running runs whose lease ran out (their node died or hung).

    Race: two reapers on PostgreSQL skip each other's locked rows; the follow-up
    finish is conditional, so a run is reaped once.
    """
    query = (
        select(runs)
        .where(runs.c.status == "running", runs.c.lease_expires_at < now)
        .order_by(runs.c.lease_expires_at)
        .limit(limit)
    )
    rows = (await conn.execute(_skip_locked(conn, query))).mappings()
    return [run_from_row(row) for row in rows]


async def set_last_run(conn: AsyncConnection, job_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """Point the job at its newest finished run (shown beside the job)."""
    await conn.execute(update(jobs).where(jobs.c.id == job_id).values(last_run_id=run_id))

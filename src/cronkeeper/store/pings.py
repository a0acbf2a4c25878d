"""The statements of ping ingest: find pinged jobs, their open heartbeat runs, and write a
whole batch of pings with a handful of statements (the group writer calls this).

Race: pings for one job arriving at two processes (PostgreSQL). The batch locks the
pinged job rows (`FOR UPDATE`, in id order) before it reads their open runs, so one
batch at a time decides which run a start or a finish belongs to; the other sees its
result. SQLite needs no lock: its writers take turns (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import RowMapping, bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.pings import OpenRun, PingedJob
from cronkeeper.store.bulk import BulkStatement
from cronkeeper.store.tables import attempts, events, jobs, projects, runs

_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.project_id,
    projects.c.slug.label("project_slug"),
    jobs.c.slug,
    jobs.c.kind,
    jobs.c.status,
    jobs.c.queue,
)


def _pinged_job(row: RowMapping) -> PingedJob:
    return PingedJob(**{name: row[name] for name in PingedJob.__dataclass_fields__})


async def lock_jobs_by_ping_uuid(
    conn: AsyncConnection, ping_uuids: Collection[uuid.UUID]
) -> dict[uuid.UUID, PingedJob]:
    """The jobs with these ping UUIDs (unique index), locked for this transaction."""
    if not ping_uuids:
        return {}
    query = (
        select(jobs.c.ping_uuid, *_JOB_COLUMNS)
        .join(projects, projects.c.id == jobs.c.project_id)
        .where(jobs.c.ping_uuid.in_(list(ping_uuids)))
        .order_by(jobs.c.id)
        .with_for_update(of=jobs)
    )
    rows = (await conn.execute(query)).mappings()
    return {row["ping_uuid"]: _pinged_job(row) for row in rows}


async def projects_by_ping_key(
    conn: AsyncConnection, ping_keys: Collection[str]
) -> dict[str, tuple[uuid.UUID, str]]:
    """(id, slug) of the projects with these ping keys."""
    if not ping_keys:
        return {}
    query = select(projects.c.ping_key, projects.c.id, projects.c.slug).where(
        projects.c.ping_key.in_(list(ping_keys))
    )
    return {row.ping_key: (row.id, row.slug) for row in await conn.execute(query)}


async def lock_jobs_by_slug(
    conn: AsyncConnection, pairs: Collection[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], PingedJob]:
    """The jobs with these (project id, slug) pairs, locked for this transaction."""
    if not pairs:
        return {}
    query = (
        select(*_JOB_COLUMNS)
        .join(projects, projects.c.id == jobs.c.project_id)
        .where(tuple_(jobs.c.project_id, jobs.c.slug).in_(list(pairs)))
        .order_by(jobs.c.id)
        .with_for_update(of=jobs)
    )
    rows = (await conn.execute(query)).mappings()
    return {(row["project_id"], row["slug"]): _pinged_job(row) for row in rows}


async def open_heartbeat_runs(
    conn: AsyncConnection, job_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[OpenRun]]:
    """The running heartbeat runs of these jobs (index on job id and status), locked.

    Race: a cancel through the API while the batch closes the same run — the lock makes
    the cancel wait (or, if it committed first, the run is no longer read as running).
    """
    if not job_ids:
        return {}
    query = (
        select(runs.c.id, runs.c.job_id, runs.c.ping_rid, runs.c.started_at)
        .where(
            runs.c.job_id.in_(list(job_ids)),
            runs.c.status == "running",
            runs.c.source == "heartbeat",
        )
        .order_by(runs.c.id)
        .with_for_update()
    )
    found: dict[uuid.UUID, list[OpenRun]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.job_id, []).append(OpenRun(row.id, row.ping_rid, row.started_at))
    return found


async def latest_run_id(conn: AsyncConnection, job_id: uuid.UUID) -> uuid.UUID | None:
    """The job's newest run of any status, or None (where a stray log ping goes)."""
    query = (
        select(runs.c.id)
        .where(runs.c.job_id == job_id)
        .order_by(runs.c.created_at.desc(), runs.c.id.desc())
        .limit(1)
    )
    run_id: uuid.UUID | None = (await conn.execute(query)).scalar_one_or_none()
    return run_id


#: The columns of the rows each writer below takes, in tuple order.
RUN_COLUMNS = (
    "id",
    "project_id",
    "job_id",
    "source",
    "status",
    "queue",
    "started_at",
    "finished_at",
    "duration_ms",
    "attempts",
    "max_attempts",
    "failure_reason",
    "error",
    "ping_rid",
    "created_at",
    "ordered_at",
)
CLOSING_COLUMNS = ("status", "finished_at", "duration_ms", "failure_reason", "error")
ATTEMPT_COLUMNS = (
    "id",
    "run_id",
    "number",
    "status",
    "failure_reason",
    "exit_code",
    "latency_ms",
    "body_preview",
    "started_at",
    "finished_at",
)
EVENT_COLUMNS = ("run_id", "sequence_num", "type", "at", "message", "data")

_INSERT_RUNS = BulkStatement(runs.insert(), RUN_COLUMNS)
_CLOSE_RUNS = BulkStatement(
    update(runs)
    .where(runs.c.id == bindparam("b_id"), runs.c.status == "running")
    .values({name: bindparam(f"b_{name}") for name in CLOSING_COLUMNS}),
    [f"b_{name}" for name in CLOSING_COLUMNS] + ["b_id"],
)
_INSERT_ATTEMPTS = BulkStatement(attempts.insert(), ATTEMPT_COLUMNS)
_INSERT_EVENTS = BulkStatement(events.insert(), EVENT_COLUMNS)


async def insert_runs(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many runs (tuples in RUN_COLUMNS order) in one driver call."""
    await _INSERT_RUNS.execute(conn, rows)


async def close_runs(conn: AsyncConnection, closings: Sequence[tuple[Any, ...]]) -> None:
    """Give running runs their final state (CLOSING_COLUMNS values, then the run id).

    The batch has held these runs' locks (PostgreSQL) or the only write transaction
    (SQLite) since it read them as running, so none can have changed meanwhile.
    """
    await _CLOSE_RUNS.execute(conn, closings)


async def insert_attempts(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Record finished attempts (tuples in ATTEMPT_COLUMNS order) in one driver call."""
    await _INSERT_ATTEMPTS.execute(conn, rows)


async def insert_events(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append events (tuples in EVENT_COLUMNS order, sequence numbers already given)."""
    await _INSERT_EVENTS.execute(conn, rows)


async def last_sequence_numbers(
    conn: AsyncConnection, run_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The last event sequence number of each of these stored runs (0 if it has none).

    Single writer per run: the batch holds the run's lock (PostgreSQL) or the write
    transaction (SQLite), so nobody appends between this read and the insert.
    """
    if not run_ids:
        return {}
    query = (
        select(events.c.run_id, func.max(events.c.sequence_num))
        .where(events.c.run_id.in_(list(run_ids)))
        .group_by(events.c.run_id)
    )
    last = dict.fromkeys(run_ids, 0)
    last.update({run_id: int(number) for run_id, number in await conn.execute(query)})
    return last

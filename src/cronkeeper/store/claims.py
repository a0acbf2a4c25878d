"""The race-sensitive statements. Each docstring names the race it prevents.

Every state change is conditional (`WHERE status = :expected`) and callers check how
many rows changed; PostgreSQL adds `FOR UPDATE SKIP LOCKED` so several processes split
the work instead of queueing behind each other's row locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import DueJob, Run
from cronkeeper.domain.monitor import POKE
from cronkeeper.domain.scheduling import overlap_action
from cronkeeper.store.bulk import BulkStatement
from cronkeeper.store.runs import run_from_row
from cronkeeper.store.specs import SPEC_TEXT, spec_of
from cronkeeper.store.tables import jobs, runs

ACTIVE = ("queued", "running", "suspended")
#: Candidate pages a claim looks through when runs waiting behind a busy job fill a page.
_CLAIM_PASSES = 4


def skip_locked(conn: AsyncConnection, query: Select[Any]) -> Select[Any]:
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def due_jobs(conn: AsyncConnection, horizon: datetime, limit: int) -> list[DueJob]:
    """Active jobs whose next slot is at or before `horizon`, earliest first.

    Race: two schedulers on PostgreSQL each lock (and skip) different jobs, so one
    job's slot is planned by one of them; the slot constraint covers everything else.
    """
    query = (
        select(jobs.c.id, jobs.c.project_id, SPEC_TEXT, jobs.c.next_fire_at)
        .where(jobs.c.status == "active", jobs.c.next_fire_at <= horizon)
        .order_by(jobs.c.next_fire_at)
        .limit(limit)
    )
    rows = (await conn.execute(skip_locked(conn, query))).all()
    return [DueJob(r.id, r.project_id, spec_of(r.id, r.spec_text), r.next_fire_at) for r in rows]


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    """The earliest next fire of any active job (the scheduler sleeps until then)."""
    query = select(func.min(jobs.c.next_fire_at)).where(jobs.c.status == "active")
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


async def insert_slot_runs(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert runs for schedule slots, ignoring slots that already have a run; returns the
    ids of the runs really inserted.

    Race: two schedulers (or a restart) firing the same slot — the unique
    (job_id, scheduled_for) constraint lets exactly one insert through.
    """
    if not rows:
        return set()
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(runs)
        .on_conflict_do_nothing(index_elements=["job_id", "scheduled_for"])
        .returning(runs.c.id)
    )
    result = await conn.execute(statement, list(rows))
    return {row.id for row in result}


async def advance_next_fires(
    conn: AsyncConnection, moves: Sequence[tuple[uuid.UUID, datetime, datetime | None]]
) -> None:
    """Move each job's next fire from `expected` to `new`, unless somebody already did.

    Race: two schedulers planning the same job — the condition on the old value makes
    the second update a no-op (and the slot constraint already dropped its runs).
    """
    if not moves:
        return
    statement = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), jobs.c.next_fire_at == bindparam("b_expected"))
        .values(next_fire_at=bindparam("b_new"))
    )
    params = [{"b_id": job_id, "b_expected": old, "b_new": new} for job_id, old, new in moves]
    await conn.execute(statement, params)


async def discard_future_runs(conn: AsyncConnection, job_id: uuid.UUID, after: datetime) -> int:
    """Delete the runs the scheduler created ahead of time for slots after `after` (the job
    was paused, edited or re-scheduled; its slots are planned again)."""
    result = await conn.execute(
        delete(runs).where(
            runs.c.job_id == job_id,
            runs.c.status == "queued",
            runs.c.source == "schedule",
            runs.c.attempts == 0,
            runs.c.scheduled_for > after,
        )
    )
    return int(result.rowcount)


async def next_queued_at(
    conn: AsyncConnection, queues: Sequence[str], after: datetime | None = None
) -> datetime | None:
    """When the earliest queued run of these queues (not due before `after`) may start."""
    query = select(func.min(runs.c.not_before)).where(
        runs.c.status == "queued", runs.c.queue.in_(list(queues))
    )
    if after is not None:
        query = query.where(runs.c.not_before > after)
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


@dataclass(frozen=True)
class Claim:
    claimed: list[Run]  # now running on this node
    skipped: list[uuid.UUID]  # due runs dropped by their job's overlap policy `skip`


async def claim_runs(
    conn: AsyncConnection,
    *,
    node: str,
    now: datetime,
    lease_until: datetime,
    queues: Sequence[str],
    limit: int,
    due_by: datetime | None = None,
) -> Claim:
    """Move up to `limit` queued runs due by `due_by` (default: now) to `running` for this
    node, oldest slot first. A run claimed ahead of its `not_before` waits on the node and
    starts at its exact time; its `started_at` is that time until the attempt records
    when it really started.

    A job at its `concurrency` keeps further runs queued (`overlap = queue`), or has them
    skipped (`skip`); `allow` ignores the limit. Race: two workers claiming one run —
    the conditional UPDATE (status still 'queued') lets one win; on PostgreSQL SKIP
    LOCKED keeps them off each other's rows and the job row lock serialises the
    concurrency check per job.
    """
    # Served by ix_runs_queued (queue, not_before, created_at): no sort, no join. A run
    # not yet due is a candidate only while its job has nothing running (ix_runs_job_status):
    # runs waiting behind busy jobs would otherwise fill every page claimed ahead.
    busy = runs.alias("busy")
    running = select(busy.c.id).where(busy.c.job_id == runs.c.job_id, busy.c.status == "running")
    idle_job = ~running.exists()
    candidates = (
        select(runs.c.id, runs.c.job_id, runs.c.source, runs.c.not_before)
        .where(
            runs.c.status == "queued",
            runs.c.queue.in_(list(queues)),
            runs.c.not_before <= (due_by or now),  # every queued run has one
            or_(runs.c.not_before <= now, idle_job),
        )
        .order_by(runs.c.not_before, runs.c.created_at)
        .limit(limit * 2)
    )
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    chosen: list[uuid.UUID] = []
    skipped: list[uuid.UUID] = []
    seen: set[uuid.UUID] = set()
    for _ in range(_CLAIM_PASSES):
        query = candidates.where(runs.c.job_id.not_in(seen)) if seen else candidates
        rows = (await conn.execute(query)).all()
        started, dropped, waited = await _within_concurrency(conn, rows, limit - len(chosen), now)
        chosen += started
        skipped += dropped
        # A page full of runs waiting behind their own job's limit would starve every
        # other job: look again past the jobs of this page.
        if not waited or len(rows) < limit * 2 or len(chosen) >= limit:
            break
        seen |= {row.job_id for row in rows}
    if skipped:
        await conn.execute(
            update(runs)
            .where(runs.c.id.in_(skipped), runs.c.status == "queued")
            .values(status="skipped", finished_at=now)
        )
    if not chosen:
        return Claim([], skipped)
    result = await conn.execute(
        update(runs)
        .where(runs.c.id.in_(chosen), runs.c.status == "queued")
        .values(
            status="running",
            node=node,
            lease_expires_at=lease_until,
            started_at=func.coalesce(
                runs.c.started_at, case((runs.c.not_before > now, runs.c.not_before), else_=now)
            ),
            attempts=runs.c.attempts + 1,
        )
        .returning(*runs.c)
    )
    return Claim([run_from_row(row) for row in result.mappings()], skipped)


async def _within_concurrency(
    conn: AsyncConnection,
    rows: Sequence[Any],
    limit: int,
    now: datetime,
) -> tuple[list[uuid.UUID], list[uuid.UUID], bool]:
    """(runs to start, runs to skip, whether any run must wait) under each job's
    concurrency and overlap policy. A run not yet due is never skipped — the runs ahead
    of it may well end before its time — it waits to be looked at again."""
    job_ids = list({row.job_id for row in rows})
    if conn.dialect.name == "postgresql" and job_ids:
        await conn.execute(select(jobs.c.id).where(jobs.c.id.in_(job_ids)).with_for_update())
    policies: dict[uuid.UUID, tuple[str, int]] = {}
    running: dict[uuid.UUID, int] = {}
    if job_ids:
        found = select(jobs.c.id, SPEC_TEXT).where(jobs.c.id.in_(job_ids))
        for row in await conn.execute(found):
            spec = spec_of(row.id, row.spec_text)
            policies[row.id] = (spec.overlap, spec.concurrency)
        query = (
            select(runs.c.job_id, func.count())
            .where(runs.c.job_id.in_(job_ids), runs.c.status == "running")
            .group_by(runs.c.job_id)
        )
        running = {job_id: int(n) for job_id, n in (await conn.execute(query)).all()}
    chosen: list[uuid.UUID] = []
    skipped: list[uuid.UUID] = []
    waited = False
    for row in rows:
        busy = running.get(row.job_id, 0)
        overlap, concurrency = policies.get(row.job_id, ("skip", 1))
        action = overlap_action(overlap, concurrency, busy, scheduled=row.source == "schedule")
        if action == "skip" and row.not_before > now:
            action = "wait"
        if action == "skip":
            skipped.append(row.id)
        elif action == "start" and len(chosen) < limit:
            running[row.job_id] = busy + 1
            chosen.append(row.id)
        elif action == "wait":
            waited = True
    return chosen, skipped, waited


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


async def finish_runs(
    conn: AsyncConnection, node: str | None, values: dict[uuid.UUID, dict[str, Any]]
) -> set[uuid.UUID]:
    """Set the new state of many running runs at once (`values`: run id → columns, the
    same keys for every run); only runs still running on `node` are changed. Returns
    their ids.

    Race: a cancel or a lease reap that got there first wins — those runs are not in the
    result and their outcome is dropped. On PostgreSQL the rows are locked first; on
    SQLite the write transaction already excludes every other writer.
    """
    if not values:
        return set()
    still = select(runs.c.id).where(runs.c.id.in_(list(values)), runs.c.status == "running")
    if node is not None:
        still = still.where(runs.c.node == node)
    if conn.dialect.name == "postgresql":
        still = still.with_for_update()
    ours = {row.id for row in await conn.execute(still)}
    if ours:
        columns = next(iter(values.values())).keys()
        statement = (
            update(runs)
            .where(runs.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in columns})
        )
        params = [
            {"b_id": run_id, **{f"b_{name}": value for name, value in values[run_id].items()}}
            for run_id in ours
        ]
        await conn.execute(statement, params)
    return ours


async def release_run(conn: AsyncConnection, run_id: uuid.UUID, node: str) -> bool:
    """Put a running run of this node back in the queue, uncounting its attempt.

    Race: as in `finish_run`, only if the run is still running on this node.
    """
    result = await conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == "running", runs.c.node == node)
        .values(
            status="queued",
            node=None,
            lease_expires_at=None,
            attempts=runs.c.attempts - 1,
            # a first attempt that never finished did not start the run
            started_at=case((runs.c.attempts <= 1, None), else_=runs.c.started_at),
        )
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
    rows = (await conn.execute(skip_locked(conn, query))).mappings()
    return [run_from_row(row) for row in rows]


async def set_last_run(conn: AsyncConnection, job_id: uuid.UUID, run_id: uuid.UUID) -> None:
    """Point the job at its newest finished run (shown beside the job)."""
    await set_last_runs(conn, [(job_id, run_id)])


def _last_runs_statement() -> BulkStatement:
    finished = runs.alias("finished")
    unsuccessful = (
        select(finished.c.id)
        .where(finished.c.id == bindparam("b_run"), finished.c.status != "succeeded")
        .exists()
    )
    may_flip = or_(jobs.c.monitor_state != "up", unsuccessful)
    statement = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_job"))
        .values(
            last_run_id=bindparam("b_run"),
            deadline_at=case((may_flip, POKE), else_=jobs.c.deadline_at),
        )
    )
    return BulkStatement(statement, ["b_job", "b_run"])


#: `set_last_runs`' statement, built once; rows are (job id, run id). The ping batch runs
#: it with its other statements (store/pings.py).
LAST_RUNS = _last_runs_statement()


async def set_last_runs(
    conn: AsyncConnection, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """Point each job at its newest finished run, in one statement; poke the monitor
    (deadline POKE) where the run can change the job's monitor state: it did not
    succeed, or the job is not `up`. Successes of an `up` job cost the monitor nothing."""
    await LAST_RUNS.execute(conn, pairs)

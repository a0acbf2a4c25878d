"""The race-sensitive statements. Each docstring names the race it prevents.

Every state change is conditional (`WHERE status = :expected`) and callers check how
many rows changed; PostgreSQL adds `FOR UPDATE SKIP LOCKED` so several processes split
the work instead of queueing behind each other's row locks.

The `sqlite_*` functions are the same statements as plain `sqlite3` calls on the SQLite
connection's own thread, inside a transaction `Database.write_on_thread` holds (rows
converted exactly as SQLAlchemy's column types store them: store/bulk.py).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import DueJob, Run
from cronkeeper.domain.monitor import POKE
from cronkeeper.domain.scheduling import overlap_action
from cronkeeper.store.bulk import SQLITE, BulkStatement, reader, sqlite_time
from cronkeeper.store.engine import Database
from cronkeeper.store.runs import run_from_row
from cronkeeper.store.specs import SPEC_TEXT, spec_of
from cronkeeper.store.sqlite_driver import execute_all
from cronkeeper.store.tables import jobs, runs
from cronkeeper.store.types import sqlite_utc_time

ACTIVE = ("queued", "running", "suspended")
#: Candidate pages a claim looks through when runs waiting behind a busy job fill a page.
_CLAIM_PASSES = 4


def on_thread(db: Database) -> bool:
    """Whether `db` can run a whole write transaction on SQLite's thread
    (`Database.write_on_thread`, for the `sqlite_*` forms below)."""
    return db.features.writes_on_thread


def skip_locked(conn: AsyncConnection, query: Select[Any]) -> Select[Any]:
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def insert_into(conn: AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """An INSERT into `table` in `conn`'s dialect, which has ON CONFLICT clauses."""
    return pg_insert(table) if conn.dialect.name == "postgresql" else sqlite_insert(table)


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


def sqlite_due_jobs(db: sqlite3.Connection, horizon: datetime, limit: int) -> list[DueJob]:
    """`due_jobs` on the SQLite connection's thread, inside its write transaction."""
    rows = db.execute(_SQLITE_DUE_JOBS, (sqlite_time(horizon), limit)).fetchall()
    due = []
    for job_hex, project_hex, text, next_fire_at in rows:
        job_id = uuid.UUID(hex=job_hex)
        at = sqlite_utc_time(next_fire_at)  # not NULL: compared above
        assert at is not None
        due.append(DueJob(job_id, uuid.UUID(hex=project_hex), spec_of(job_id, text), at))
    return due


_SQLITE_DUE_JOBS = (
    "SELECT id, project_id, CAST(spec AS TEXT), next_fire_at FROM jobs "
    "WHERE status = 'active' AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?"
)


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
    statement = (
        insert_into(conn, runs)
        .on_conflict_do_nothing(index_elements=["job_id", "scheduled_for"])
        .returning(runs.c.id)
    )
    result = await conn.execute(statement, list(rows))
    return {row.id for row in result}


def sqlite_insert_slot_runs(
    db: sqlite3.Connection, rows: Sequence[dict[str, Any]]
) -> set[uuid.UUID]:
    """`insert_slot_runs` on the SQLite connection's thread, inside its write transaction
    (the same race, the same constraint). Every row has the first row's keys. The runs
    inserted are those whose (new) id is in the table afterwards: a slot that already had
    a run kept that run, under another id."""
    if not rows:
        return set()
    columns = tuple(rows[0])
    values = [tuple(row[name] for name in columns) for row in rows]
    execute_all(db, [_slot_runs_statement(columns).prepared(SQLITE, values)])
    asked = {row["id"].hex: row["id"] for row in rows}
    found = db.execute(_SQLITE_RUNS_FOUND, (json.dumps(list(asked)),)).fetchall()
    return {asked[run_hex] for (run_hex,) in found}


@functools.cache
def _slot_runs_statement(columns: tuple[str, ...]) -> BulkStatement:
    """`insert_slot_runs`' INSERT of `columns` (without RETURNING: rows go as one
    executemany)."""
    statement = sqlite_insert(runs).on_conflict_do_nothing(
        index_elements=["job_id", "scheduled_for"]
    )
    return BulkStatement(statement, columns)


_SQLITE_RUNS_FOUND = "SELECT id FROM runs WHERE id IN (SELECT value FROM json_each(?))"


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


def sqlite_advance_next_fires(
    db: sqlite3.Connection, moves: Sequence[tuple[uuid.UUID, datetime, datetime | None]]
) -> None:
    """`advance_next_fires` on the SQLite connection's thread, inside its write transaction."""
    execute_all(db, [_ADVANCE_NEXT_FIRES.prepared(SQLITE, moves)])


_ADVANCE_NEXT_FIRES = BulkStatement(
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"), jobs.c.next_fire_at == bindparam("b_expected"))
    .values(next_fire_at=bindparam("b_new")),
    ["b_id", "b_expected", "b_new"],
)


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
    # not yet due is a candidate only while its job has nothing running
    # (ix_runs_job_status_page): runs waiting behind busy jobs would otherwise fill every
    # page claimed ahead.
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
    return _admit(rows, policies, running, limit, now)


def _admit(
    rows: Sequence[Any],
    policies: dict[Any, tuple[str, int]],
    running: dict[Any, int],
    limit: int,
    now: Any,
) -> tuple[list[Any], list[Any], bool]:
    """`_within_concurrency`'s decision over candidate rows (id, job id, source,
    not_before), given each job's (overlap, concurrency) and running count (updated).
    Ids and times are compared as they come: objects, or SQLite's stored texts."""
    chosen: list[Any] = []
    skipped: list[Any] = []
    waited = False
    for run_id, job_id, source, not_before in rows:
        busy = running.get(job_id, 0)
        overlap, concurrency = policies.get(job_id, ("skip", 1))
        action = overlap_action(overlap, concurrency, busy, scheduled=source == "schedule")
        if action == "skip" and not_before > now:
            action = "wait"
        if action == "skip":
            skipped.append(run_id)
        elif action == "start" and len(chosen) < limit:
            running[job_id] = busy + 1
            chosen.append(run_id)
        elif action == "wait":
            waited = True
    return chosen, skipped, waited


def sqlite_claim_runs(
    db: sqlite3.Connection,
    *,
    node: str,
    now: datetime,
    lease_until: datetime,
    queues: Sequence[str],
    limit: int,
    due_by: datetime | None = None,
) -> Claim:
    """`claim_runs` on the SQLite connection's thread, inside its write transaction (which
    excludes every other writer: the runs read as queued are still queued when updated).
    The same statements; ids and times stay SQLite's stored texts until the claimed runs
    are read back."""
    at = sqlite_time(now)
    chosen: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for _ in range(_CLAIM_PASSES):
        query = _sqlite_candidates(len(queues), len(seen))
        values = (*queues, sqlite_time(due_by or now), at, *seen, limit * 2)
        rows = db.execute(query, values).fetchall()
        started, dropped, waited = _admit(
            rows, *_sqlite_policies(db, rows), limit - len(chosen), at
        )
        chosen += started
        skipped += dropped
        if not waited or len(rows) < limit * 2 or len(chosen) >= limit:
            break
        seen |= {row[1] for row in rows}
    if skipped:
        db.execute(_SQLITE_SKIP.format(_marks(len(skipped))), (at, *skipped)).close()
    skipped_ids = [uuid.UUID(hex=run_hex) for run_hex in skipped]
    if not chosen:
        return Claim([], skipped_ids)
    start = _SQLITE_START.format(_marks(len(chosen)))
    found = db.execute(start, (node, sqlite_time(lease_until), at, at, *chosen)).fetchall()
    return Claim([_sqlite_run(row) for row in found], skipped_ids)


def _sqlite_policies(
    db: sqlite3.Connection, rows: Sequence[tuple[str, str, str, str]]
) -> tuple[dict[str, tuple[str, int]], dict[str, int]]:
    """By job id (text): the candidates' jobs' (overlap, concurrency), and how many runs
    each has running."""
    job_ids = list({row[1] for row in rows})
    if not job_ids:
        return {}, {}
    marks = _marks(len(job_ids))
    policies: dict[str, tuple[str, int]] = {}
    for job_hex, text in db.execute(_SQLITE_SPECS.format(marks), job_ids):
        spec = spec_of(uuid.UUID(hex=job_hex), text)
        policies[job_hex] = (spec.overlap, spec.concurrency)
    running: dict[str, int] = dict(db.execute(_SQLITE_RUNNING.format(marks), job_ids).fetchall())
    return policies, running


def _marks(count: int) -> str:
    """`?, ?, …`: an IN list of `count` parameters (as SQLAlchemy expands one)."""
    return ", ".join("?" * count)


@functools.cache
def _sqlite_candidates(queues: int, seen: int) -> str:
    """`claim_runs`' candidates: the same statement (ix_runs_queued serves it, no sort)."""
    past = f" AND r.job_id NOT IN ({_marks(seen)})" if seen else ""
    # Only parameter marks are formatted in.
    return (
        "SELECT r.id, r.job_id, r.source, r.not_before FROM runs AS r "  # noqa: S608
        f"WHERE r.status = 'queued' AND r.queue IN ({_marks(queues)}) AND r.not_before <= ? "
        "AND (r.not_before <= ? OR NOT EXISTS (SELECT busy.id FROM runs AS busy "
        f"WHERE busy.job_id = r.job_id AND busy.status = 'running')){past} "
        "ORDER BY r.not_before, r.created_at LIMIT ?"
    )


_SQLITE_SPECS = "SELECT id, CAST(spec AS TEXT) FROM jobs WHERE id IN ({})"
_SQLITE_RUNNING = (
    "SELECT job_id, count(*) FROM runs WHERE job_id IN ({}) AND status = 'running' GROUP BY job_id"
)
_SQLITE_SKIP = (
    "UPDATE runs SET status = 'skipped', finished_at = ? WHERE id IN ({}) AND status = 'queued'"
)
_RUN_COLUMNS = tuple(column.name for column in runs.c)
_SQLITE_START = (  # RETURNING the table's own column names
    "UPDATE runs SET status = 'running', node = ?, lease_expires_at = ?, "  # noqa: S608
    "started_at = coalesce(started_at, CASE WHEN (not_before > ?) THEN not_before ELSE ? END), "
    "attempts = attempts + 1 WHERE id IN ({}) AND status = 'queued' "
    f"RETURNING {', '.join(_RUN_COLUMNS)}"
)
#: How each `runs` column is read back, as SQLAlchemy reads it.
_RUN_READERS = tuple(reader(column.type, SQLITE) for column in runs.c)


def _sqlite_run(row: tuple[Any, ...]) -> Run:
    """A Run from a whole `runs` row as SQLite returns it (`_RUN_COLUMNS` order)."""
    values = {
        name: value if value is None or read is None else read(value)
        for name, read, value in zip(_RUN_COLUMNS, _RUN_READERS, row, strict=True)
    }
    return Run(**{name: values[name] for name in Run.__dataclass_fields__})


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


def sqlite_finish_runs(
    db: sqlite3.Connection, node: str | None, values: dict[uuid.UUID, dict[str, Any]]
) -> set[uuid.UUID]:
    """`finish_runs` on the SQLite connection's thread, inside its write transaction (the
    same race: runs cancelled or reaped before it are not changed, nor in the result)."""
    if not values:
        return set()
    asked = {run_id.hex: run_id for run_id in values}
    if node is None:
        found = db.execute(_SQLITE_STILL_RUNNING, (json.dumps(list(asked)),)).fetchall()
    else:
        found = db.execute(_SQLITE_STILL_OURS, (json.dumps(list(asked)), node)).fetchall()
    ours = {asked[run_hex] for (run_hex,) in found}
    if ours:
        columns = tuple(next(iter(values.values())))
        rows = [(*(values[run_id][name] for name in columns), run_id) for run_id in ours]
        execute_all(db, [_finish_statement(columns).prepared(SQLITE, rows)])
    return ours


_SQLITE_STILL_RUNNING = (
    "SELECT id FROM runs WHERE id IN (SELECT value FROM json_each(?)) AND status = 'running'"
)
_SQLITE_STILL_OURS = f"{_SQLITE_STILL_RUNNING} AND node = ?"


@functools.cache
def _finish_statement(columns: tuple[str, ...]) -> BulkStatement:
    """`finish_runs`' UPDATE setting `columns`; rows are their values, then the run id."""
    statement = (
        update(runs)
        .where(runs.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )
    return BulkStatement(statement, [*(f"b_{name}" for name in columns), "b_id"])


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


def sqlite_set_last_runs(
    db: sqlite3.Connection, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """`set_last_runs` on the SQLite connection's thread, inside its write transaction."""
    execute_all(db, [LAST_RUNS.prepared(SQLITE, pairs)])

"""The statements of ping ingest: find the pinged jobs and their open heartbeat runs, and
write a whole batch of pings with a handful of statements (the group writer calls this).

Race: pings for one job arriving at two processes (PostgreSQL). The batch locks the
pinged job rows (`FOR UPDATE`, in id order) before it reads their open runs, so one
batch at a time decides which run a start or a finish belongs to; the other sees its
result. SQLite needs no lock: its writers take turns (BEGIN IMMEDIATE).

On SQLite a batch is two hops to the connection's thread, each a fixed sequence of plain
`sqlite3` calls in the writer's transaction: `lock_targets` reads (SQL below, by hand;
with the transaction's BEGIN), `write_batch` writes (the same compiled statements as on
PostgreSQL), deferred to go with the COMMIT (store/sqlite_driver.py). The job rows read are
turned into `PingedJob`s through a cache that serves a job only to a row that reads the
same in every field, its spec included, so a job that was deleted, paused or changed is
never served from it: its row reads differently.

The batch's rows come in the form `value_form` names for the connection: on SQLite
already as SQLAlchemy's column types store them (store/bulk.py `SQLITE_VALUES`: each
id, time and JSON value converted once by the caller), written as they are.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import RowMapping, bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.pings import OpenRun, PingedJob
from cronkeeper.store.bulk import PYTHON_VALUES, SQLITE_VALUES, BulkStatement, ValueForm
from cronkeeper.store.claims import LAST_RUNS
from cronkeeper.store.sqlite_driver import defer, execute_all, run_on_thread
from cronkeeper.store.tables import attempts, events, jobs, projects, runs
from cronkeeper.store.types import sqlite_utc_time

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


@dataclass
class Targets:
    """What a batch of pings names, locked: jobs by ping UUID and by (project id, slug),
    the projects of its ping keys and the jobs' running heartbeat runs (oldest first)."""

    by_uuid: dict[uuid.UUID, PingedJob] = field(default_factory=dict)
    projects: dict[str, tuple[uuid.UUID, str]] = field(default_factory=dict)
    by_slug: dict[tuple[uuid.UUID, str], PingedJob] = field(default_factory=dict)
    open_runs: dict[uuid.UUID, list[OpenRun]] = field(default_factory=dict)


@dataclass
class BatchRows:
    """Everything one batch writes; tuples in the *_COLUMNS orders above, their values
    in `form` (the connection's `value_form`)."""

    form: ValueForm
    runs: list[tuple[Any, ...]]
    closings: list[tuple[Any, ...]]  # CLOSING_COLUMNS values, then the run id
    attempts: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]  # sequence numbers already given
    last_runs: list[tuple[Any, ...]]  # (job id, its newest finished run)
    deadlines: list[tuple[Any, ...]]  # (job id, look at it by then at the latest)


def value_form(conn: AsyncConnection) -> ValueForm:
    """The form `write_batch` takes a batch's values in on this connection: as SQLite
    stores them on SQLite, Python values (converted by the statements) elsewhere."""
    return SQLITE_VALUES if conn.dialect.name == "sqlite" else PYTHON_VALUES


async def lock_targets(
    conn: AsyncConnection,
    ping_uuids: Collection[uuid.UUID],
    slugs: Collection[tuple[str, str]],
) -> Targets:
    """The jobs with these ping UUIDs (unique index) or (project ping key, slug) pairs,
    locked for this transaction, with their open heartbeat runs (index on job id and
    status), also locked.

    Race: a cancel through the API while the batch closes one of these runs — the lock
    makes the cancel wait (or, if it committed first, the run is no longer read as running).
    """
    if conn.dialect.name == "sqlite":
        return await _sqlite_targets(conn, ping_uuids, slugs)
    found = Targets(by_uuid=await _lock_by_uuid(conn, ping_uuids))
    found.projects = await _projects_by_ping_key(conn, {key for key, _ in slugs})
    pairs = {(found.projects[key][0], slug) for key, slug in slugs if key in found.projects}
    found.by_slug = await _lock_by_slug(conn, pairs)
    await _open_runs(conn, found)
    return found


async def write_batch(conn: AsyncConnection, rows: BatchRows) -> None:
    """Write a batch: new runs, closings of stored runs, attempts, events, each job's
    newest finished run (claims.LAST_RUNS, which pokes the monitor), then earlier
    deadlines (a start of a job with max_runtime: the monitor looks at it by then).

    Closings need no condition beyond `status = 'running'`: the batch has held these runs'
    locks (PostgreSQL) or the only write transaction (SQLite) since it read them.
    """
    assert rows.form is value_form(conn)
    if conn.dialect.name == "sqlite":
        await defer(conn, sqlite_write_batch, rows)  # with the COMMIT: one hop for both
        return
    for statement, batch in _work(rows):
        await statement.execute(conn, batch)


def sqlite_write_batch(db: sqlite3.Connection, rows: BatchRows) -> None:
    """`write_batch` on the SQLite connection's thread, inside its transaction."""
    execute_all(db, sqlite_parameters(rows))


def sqlite_parameters(rows: BatchRows) -> list[tuple[str, Sequence[Sequence[Any]]]]:
    """Each statement of a batch on SQLite with its parameters: rows in `SQLITE_VALUES` go
    as they are, rows of Python values are converted (to the very same parameters)."""
    if rows.form.stored:
        return [statement.arranged(_SQLITE, r) for statement, r in _work(rows) if r]
    return [statement.prepared(_SQLITE, r) for statement, r in _work(rows) if r]


def _work(rows: BatchRows) -> list[tuple[BulkStatement, list[tuple[Any, ...]]]]:
    return [
        (_INSERT_RUNS, rows.runs),
        (_CLOSE_RUNS, rows.closings),
        (_INSERT_ATTEMPTS, rows.attempts),
        (_INSERT_EVENTS, rows.events),
        (LAST_RUNS, rows.last_runs),
        (_EARLIER_DEADLINES, rows.deadlines),
    ]


async def latest_runs(
    conn: AsyncConnection, job_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, int]]:
    """Job id → (id, last event number) of its newest run of any status, for the jobs
    that have a run (where a stray log ping goes)."""
    found = {}
    for job_id in job_ids:
        query = (
            select(runs.c.id, _LAST_EVENT)
            .where(runs.c.job_id == job_id)
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(1)
        )
        row = (await conn.execute(query)).first()
        if row is not None:
            found[job_id] = (row.id, int(row.last_event or 0))
    return found


def sqlite_latest_runs(
    db: sqlite3.Connection, job_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, int]]:
    """`latest_runs` on the SQLite connection's thread."""
    found = {}
    for job_id in job_ids:
        row = db.execute(_SQLITE_LATEST_RUN, (job_id.hex,)).fetchone()
        if row is not None:
            found[job_id] = (uuid.UUID(hex=row[0]), row[1] or 0)
    return found


#: The dialect the on-thread writers prepare their statements for.
_SQLITE = SQLiteDialect_aiosqlite()
_INSERT_RUNS = BulkStatement(runs.insert(), RUN_COLUMNS)
_CLOSE_RUNS = BulkStatement(
    update(runs)
    .where(runs.c.id == bindparam("b_id"), runs.c.status == "running")
    .values({name: bindparam(f"b_{name}") for name in CLOSING_COLUMNS}),
    [f"b_{name}" for name in CLOSING_COLUMNS] + ["b_id"],
)
_INSERT_ATTEMPTS = BulkStatement(attempts.insert(), ATTEMPT_COLUMNS)
_INSERT_EVENTS = BulkStatement(events.insert(), EVENT_COLUMNS)
_EARLIER_DEADLINES = BulkStatement(
    update(jobs)
    .where(
        jobs.c.id == bindparam("b_job"),
        or_(jobs.c.deadline_at.is_(None), jobs.c.deadline_at > bindparam("b_at")),
    )
    .values(deadline_at=bindparam("b_at")),
    ["b_job", "b_at"],
)

# -- PostgreSQL (and any other dialect): Core statements built once ----------------------

_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.project_id,
    projects.c.slug.label("project_slug"),
    jobs.c.slug,
    jobs.c.kind,
    jobs.c.status,
    jobs.c.queue,
    jobs.c.spec["min_runtime"].as_float().label("min_runtime"),
    jobs.c.spec["max_runtime"].as_float().label("max_runtime"),
)
_JOBS = select(*_JOB_COLUMNS).join(projects, projects.c.id == jobs.c.project_id)
_BY_UUID = (
    _JOBS.add_columns(jobs.c.ping_uuid)
    .where(jobs.c.ping_uuid.in_(bindparam("uuids", expanding=True)))
    .order_by(jobs.c.id)
    .with_for_update(of=jobs)
)
_PROJECTS = select(projects.c.ping_key, projects.c.id, projects.c.slug).where(
    projects.c.ping_key.in_(bindparam("keys", expanding=True))
)
_LAST_EVENT = (
    select(func.max(events.c.sequence_num))
    .where(events.c.run_id == runs.c.id)
    .scalar_subquery()
    .label("last_event")
)
_OPEN_RUNS = (
    select(runs.c.id, runs.c.job_id, runs.c.ping_rid, runs.c.started_at, _LAST_EVENT)
    .where(
        runs.c.job_id.in_(bindparam("jobs", expanding=True)),
        runs.c.status == "running",
        runs.c.source == "heartbeat",
    )
    .order_by(runs.c.id)
    .with_for_update(of=runs)
)


def _pinged_job(row: RowMapping) -> PingedJob:
    return PingedJob(**{name: row[name] for name in PingedJob.__dataclass_fields__})


async def _lock_by_uuid(
    conn: AsyncConnection, ping_uuids: Collection[uuid.UUID]
) -> dict[uuid.UUID, PingedJob]:
    if not ping_uuids:
        return {}
    rows = (await conn.execute(_BY_UUID, {"uuids": list(ping_uuids)})).mappings()
    return {row["ping_uuid"]: _pinged_job(row) for row in rows}


async def _projects_by_ping_key(
    conn: AsyncConnection, ping_keys: Collection[str]
) -> dict[str, tuple[uuid.UUID, str]]:
    if not ping_keys:
        return {}
    rows = await conn.execute(_PROJECTS, {"keys": list(ping_keys)})
    return {row.ping_key: (row.id, row.slug) for row in rows}


async def _lock_by_slug(
    conn: AsyncConnection, pairs: Collection[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], PingedJob]:
    if not pairs:
        return {}
    query = (
        _JOBS.where(tuple_(jobs.c.project_id, jobs.c.slug).in_(list(pairs)))
        .order_by(jobs.c.id)
        .with_for_update(of=jobs)
    )
    rows = (await conn.execute(query)).mappings()
    return {(row["project_id"], row["slug"]): _pinged_job(row) for row in rows}


async def _open_runs(conn: AsyncConnection, found: Targets) -> None:
    job_ids = {job.id for job in (*found.by_uuid.values(), *found.by_slug.values())}
    if not job_ids:
        return
    for row in await conn.execute(_OPEN_RUNS, {"jobs": list(job_ids)}):
        found.open_runs.setdefault(row.job_id, []).append(
            OpenRun(row.id, row.ping_rid, row.started_at, int(row.last_event or 0))
        )


# -- SQLite: one hop of plain sqlite3 calls ----------------------------------------------

# The spec comes as it is stored (bytes: no decoding): two json_extract calls would parse
# it in SQLite for every ping, where `_sqlite_job` parses it once per change of the row.
_SQLITE_BY_UUID = (
    "SELECT j.ping_uuid, j.id, j.project_id, p.slug, j.slug, j.kind, j.status, j.queue, "
    "CAST(j.spec AS BLOB) FROM jobs AS j JOIN projects AS p ON p.id = j.project_id "
    "WHERE j.ping_uuid IN (SELECT value FROM json_each(?))"
)
_SQLITE_BY_SLUG = (
    "SELECT j.ping_uuid, j.id, j.project_id, p.slug, j.slug, j.kind, j.status, j.queue, "
    "CAST(j.spec AS BLOB) FROM jobs AS j JOIN projects AS p ON p.id = j.project_id "
    "WHERE (j.project_id, j.slug) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
)
_SQLITE_LATEST_RUN = (
    "SELECT r.id, (SELECT max(e.sequence_num) FROM events AS e WHERE e.run_id = r.id) "
    "FROM runs AS r WHERE r.job_id = ? ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
)
_SQLITE_PROJECTS = (
    "SELECT ping_key, id, slug FROM projects WHERE ping_key IN (SELECT value FROM json_each(?))"
)
_SQLITE_OPEN_RUNS = (
    "SELECT r.id, r.job_id, r.ping_rid, r.started_at, "
    "(SELECT max(e.sequence_num) FROM events AS e WHERE e.run_id = r.id) "
    "FROM runs AS r WHERE r.job_id IN (SELECT value FROM json_each(?)) "
    "AND r.status = 'running' AND r.source = 'heartbeat' ORDER BY r.id"
)
Row = tuple[Any, ...]


def _sqlite_read(
    db: Any, uuids: list[str], slugs: list[tuple[str, str]]
) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
    """On the connection's thread: (jobs by UUID, projects, jobs by slug, open runs)."""
    by_uuid = db.execute(_SQLITE_BY_UUID, (_hex_array(uuids),)).fetchall() if uuids else []
    projects, by_slug = [], []
    if slugs:
        projects = db.execute(_SQLITE_PROJECTS, (json.dumps([k for k, _ in slugs]),)).fetchall()
        ids = {key: project_id for key, project_id, _ in projects}
        pairs = [(ids[key], slug) for key, slug in slugs if key in ids]
        if pairs:
            by_slug = db.execute(_SQLITE_BY_SLUG, (json.dumps(pairs),)).fetchall()
    job_ids = _hex_array([row[1] for row in by_uuid] + [row[1] for row in by_slug])
    open_runs = db.execute(_SQLITE_OPEN_RUNS, (job_ids,)).fetchall()
    return by_uuid, projects, by_slug, open_runs


def _hex_array(hexes: list[str]) -> str:
    """`json.dumps(hexes)` for hex digits (nothing to escape), at a tenth of its cost."""
    return '["' + '", "'.join(hexes) + '"]' if hexes else "[]"


#: Heartbeat job id → (its row as last read, its PingedJob): served only to a row that
#: reads the same in every field, its spec included.
_jobs_seen: dict[str, tuple[Row, PingedJob]] = {}
_JOBS_SEEN_MAX = 50_000


def _sqlite_job(row: Row) -> PingedJob:
    """The PingedJob of a job row (`_SQLITE_BY_UUID`'s columns)."""
    seen = _jobs_seen.get(row[1])
    if seen is not None and seen[0] == row:
        return seen[1]
    _, job_hex, project_hex, project_slug, slug, kind, status, queue, stored_spec = row
    spec = json.loads(stored_spec)  # as json_extract reads it: a missing key or null is None
    job = PingedJob(
        uuid.UUID(hex=job_hex),
        uuid.UUID(hex=project_hex),
        project_slug,
        slug,
        kind,
        status,
        queue,
        spec.get("min_runtime"),
        spec.get("max_runtime"),
    )
    if kind == "heartbeat":  # other specs may hold secrets: not kept
        if len(_jobs_seen) >= _JOBS_SEEN_MAX:
            _jobs_seen.clear()
        _jobs_seen[job_hex] = (row, job)
    return job


async def _sqlite_targets(
    conn: AsyncConnection, ping_uuids: Collection[uuid.UUID], slugs: Collection[tuple[str, str]]
) -> Targets:
    return await run_on_thread(conn, sqlite_targets, ping_uuids, slugs)


def sqlite_targets(
    db: sqlite3.Connection,
    ping_uuids: Collection[uuid.UUID],
    slugs: Collection[tuple[str, str]],
) -> Targets:
    """`lock_targets` on the SQLite connection's thread, inside its write transaction."""
    asked = {ping_uuid.hex: ping_uuid for ping_uuid in ping_uuids}
    by_uuid, projects, by_slug, open_runs = _sqlite_read(db, list(asked), list(slugs))
    found = Targets()
    job_ids: dict[str, uuid.UUID] = {}
    for row in by_uuid:
        job = found.by_uuid[asked[row[0]]] = _sqlite_job(row)
        job_ids[row[1]] = job.id
    found.projects = {key: (uuid.UUID(hex=pid), slug) for key, pid, slug in projects}
    for row in by_slug:
        job = _sqlite_job(row)
        found.by_slug[(job.project_id, job.slug)] = job
        job_ids[row[1]] = job.id
    for run_hex, job_hex, rid, started_at, last_event in open_runs:
        run_id = uuid.UUID(int=int(run_hex, 16))  # hex as `Uuid` stores it on SQLite
        started = sqlite_utc_time(started_at)
        assert started is not None  # a running run has started
        found.open_runs.setdefault(job_ids[job_hex], []).append(
            OpenRun(run_id, rid, started, last_event or 0)
        )
    return found

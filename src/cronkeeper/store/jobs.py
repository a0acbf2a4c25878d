"""Jobs and their tags. The whole spec is stored as JSON; searched fields are columns."""

from __future__ import annotations

import functools
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Executable, RowMapping, bindparam, delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.models import Job, RunSummary
from cronkeeper.domain.states import JobStatus, MonitorState
from cronkeeper.errors import Conflict
from cronkeeper.store.bulk import SQLITE
from cronkeeper.store.errors import is_unique_violation
from cronkeeper.store.specs import SPEC_TEXT, spec_of
from cronkeeper.store.tables import job_tags, jobs, projects, runs


@dataclass(frozen=True)
class JobFilter:
    project_id: uuid.UUID
    tag: str | None = None
    status: str | None = None
    kind: str | None = None
    after_slug: str | None = None  # keyset cursor
    limit: int = 50


def _job(row: RowMapping) -> Job:
    return Job(
        id=row["id"],
        project_id=row["project_id"],
        spec=JobSpec.from_body(row["spec"]),
        monitor_state=MonitorState(row["monitor_state"]),
        ping_uuid=row["ping_uuid"],
        next_fire_at=row["next_fire_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _columns(spec: JobSpec) -> dict[str, object]:
    return {
        "slug": spec.slug,
        "name": spec.name,
        "kind": spec.kind.value,
        "status": spec.status.value,
        "schedule": spec.schedule,
        "timezone": spec.timezone,
        "queue": spec.queue,
        "spec": spec.to_body(),
    }


async def insert_job(
    conn: AsyncConnection,
    *,
    project_id: uuid.UUID,
    spec: JobSpec,
    ping_uuid: uuid.UUID | None,
    next_fire_at: datetime | None,
    now: datetime,
) -> Job:
    """Insert a job and its tags. A taken slug raises IntegrityError (unique project+slug)."""
    job_id = uuid.uuid4()
    await _guard_slug(
        conn,
        jobs.insert().values(
            id=job_id,
            project_id=project_id,
            ping_uuid=ping_uuid,
            next_fire_at=next_fire_at,
            monitor_state=MonitorState.NEW.value,
            created_at=now,
            updated_at=now,
            **_columns(spec),
        ),
        spec.slug,
    )
    await _replace_tags(conn, job_id, spec.tags)
    return Job(job_id, project_id, spec, MonitorState.NEW, ping_uuid, next_fire_at, now, now)


async def update_job(
    conn: AsyncConnection, job: Job, spec: JobSpec, next_fire_at: datetime | None, now: datetime
) -> Job:
    """Replace a job's spec (and tags); returns the stored result."""
    monitor_state = job.monitor_state
    if spec.status is JobStatus.PAUSED:
        monitor_state = MonitorState.PAUSED
    elif job.monitor_state is MonitorState.PAUSED:
        monitor_state = MonitorState.NEW
    await _guard_slug(
        conn,
        update(jobs)
        .where(jobs.c.id == job.id)
        .values(
            next_fire_at=next_fire_at,
            monitor_state=monitor_state.value,
            updated_at=now,
            **_columns(spec),
        ),
        spec.slug,
    )
    if spec.tags != job.spec.tags:
        await _replace_tags(conn, job.id, spec.tags)
    return Job(
        job.id,
        job.project_id,
        spec,
        monitor_state,
        job.ping_uuid,
        next_fire_at,
        job.created_at,
        now,
    )


async def _guard_slug(conn: AsyncConnection, statement: Executable, slug: str) -> None:
    """Run an insert/update of a job; a slug already taken in the project raises Conflict."""
    try:
        await conn.execute(statement)
    except IntegrityError as error:
        if is_unique_violation(error):
            raise Conflict(f"a job with slug {slug!r} already exists", field="slug") from None
        raise


async def _replace_tags(conn: AsyncConnection, job_id: uuid.UUID, tags: tuple[str, ...]) -> None:
    await conn.execute(delete(job_tags).where(job_tags.c.job_id == job_id))
    if tags:
        await conn.execute(job_tags.insert(), [{"job_id": job_id, "tag": tag} for tag in set(tags)])


async def get_job(conn: AsyncConnection, project_id: uuid.UUID, slug: str) -> Job | None:
    """The job with this slug in the project, or None."""
    query = select(jobs).where(jobs.c.project_id == project_id, jobs.c.slug == slug)
    row = (await conn.execute(query)).mappings().first()
    return _job(row) if row else None


async def list_jobs(conn: AsyncConnection, where: JobFilter) -> list[Job]:
    """Jobs by slug, filtered; at most `limit` after the cursor slug."""
    query = select(jobs).where(jobs.c.project_id == where.project_id).order_by(jobs.c.slug)
    if where.tag:
        has_tag = exists().where(job_tags.c.job_id == jobs.c.id, job_tags.c.tag == where.tag)
        query = query.where(has_tag)
    if where.status:
        query = query.where(jobs.c.status == where.status)
    if where.kind:
        query = query.where(jobs.c.kind == where.kind)
    if where.after_slug:
        query = query.where(jobs.c.slug > where.after_slug)
    rows = (await conn.execute(query.limit(where.limit))).mappings()
    return [_job(row) for row in rows]


async def delete_job(conn: AsyncConnection, job_id: uuid.UUID) -> None:
    """Delete a job; its runs, attempts, events, flips and tags go with it (cascade)."""
    await conn.execute(delete(jobs).where(jobs.c.id == job_id))


async def last_runs(conn: AsyncConnection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, RunSummary]:
    """The newest run of each job that has one."""
    if not job_ids:
        return {}
    # jobs.last_run_id is kept by the runtime, so this is one indexed lookup per page.
    query = select(jobs.c.id, jobs.c.last_run_id).where(jobs.c.id.in_(job_ids))
    pairs = {row.id: row.last_run_id for row in await conn.execute(query) if row.last_run_id}
    if not pairs:
        return {}
    rows = (await conn.execute(select(runs).where(runs.c.id.in_(list(pairs.values()))))).mappings()
    return {row["job_id"]: _run_summary(row) for row in rows}


def _run_summary(row: RowMapping) -> RunSummary:
    return RunSummary(
        id=row["id"],
        status=row["status"],
        source=row["source"],
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_ms=row["duration_ms"],
        failure_reason=row["failure_reason"],
    )


async def job_id(conn: AsyncConnection, project_id: uuid.UUID, slug: str) -> uuid.UUID | None:
    """The id of the project's job with this slug, or None (no spec read or parsed)."""
    query = select(jobs.c.id).where(jobs.c.project_id == project_id, jobs.c.slug == slug)
    found: uuid.UUID | None = (await conn.execute(query)).scalar_one_or_none()
    return found


#: (id, spec text, project slug) of some jobs (`job_ids`): `specs_by_id` runs it through
#: SQLAlchemy, `sqlite_specs_by_id` as its SQLite text (`_sqlite_specs_by_id`).
_SPECS_BY_ID = (
    select(jobs.c.id, SPEC_TEXT, projects.c.slug)
    .join(projects, projects.c.id == jobs.c.project_id)
    .where(jobs.c.id.in_(bindparam("job_ids", expanding=True)))
)


async def specs_by_id(
    conn: AsyncConnection, job_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[JobSpec, str]]:
    """(spec, project slug) of each job, for the runtime that executes its runs."""
    if not job_ids:
        return {}
    rows = (await conn.execute(_SPECS_BY_ID, {"job_ids": job_ids})).all()
    return {row.id: (spec_of(row.id, row.spec_text), row.slug) for row in rows}


def sqlite_specs_by_id(
    db: sqlite3.Connection, job_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[JobSpec, str]]:
    """`specs_by_id` on the SQLite connection's thread, inside its write transaction (for
    the runs just claimed)."""
    if not job_ids:
        return {}
    query = _sqlite_specs_by_id(len(job_ids))
    found = {}
    for job_hex, text, slug in db.execute(query, [job_id.hex for job_id in job_ids]):
        job_id = uuid.UUID(hex=job_hex)
        found[job_id] = (spec_of(job_id, text), slug)
    return found


@functools.lru_cache(maxsize=256)  # every size of a claim batch (worker.CLAIM_BATCH: 250)
def _sqlite_specs_by_id(count: int) -> str:
    """`_SPECS_BY_ID` as SQLite's driver runs it for `count` jobs (`IN (?, …)`)."""
    compiled = _SPECS_BY_ID.compile(dialect=SQLITE)
    return compiled.construct_expanded_state({"job_ids": [None] * count}).statement


async def slugs_by_id(conn: AsyncConnection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The slug of each job id."""
    if not job_ids:
        return {}
    rows = (await conn.execute(select(jobs.c.id, jobs.c.slug).where(jobs.c.id.in_(job_ids)))).all()
    return {row.id: row.slug for row in rows}

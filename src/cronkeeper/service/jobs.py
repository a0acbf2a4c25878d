"""Job use cases: create, list, show, edit, delete, pause, resume — each one transaction,
each mutation audited (secrets masked in the diff)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cronkeeper.domain.jobs import (
    EXECUTED_KINDS,
    JobSpec,
    changed_fields,
    is_valid_slug,
    merge_patch,
)
from cronkeeper.domain.masking import mask_target, unmask_target
from cronkeeper.domain.models import Actor, Job, RunSummary
from cronkeeper.domain.schedules import parse_schedule, parse_timezone
from cronkeeper.domain.states import JobKind, JobStatus, MonitorState
from cronkeeper.errors import FieldError, InvalidInput, NotFound
from cronkeeper.service.audit import project_mutation
from cronkeeper.service.context import Context
from cronkeeper.service.pagination import decode_cursor, encode_cursor, invalid_cursor
from cronkeeper.service.projects import require_project
from cronkeeper.service.schemas import JobOut, LastRunOut, parse_job_body
from cronkeeper.service.validation import load_body
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store.engine import Connection


@dataclass(frozen=True)
class JobQuery:
    tag: str | None = None
    status: str | None = None
    kind: str | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class JobPage:
    items: list[JobOut]
    next_cursor: str | None


def masked_body(spec: JobSpec) -> dict[str, Any]:
    """The job body with secrets masked (for responses and audit diffs)."""
    body = spec.to_body()
    body["target"] = mask_target(spec.target)
    return body


def next_fire(spec: JobSpec, after: datetime) -> datetime | None:
    """When the scheduler next fires an active job; None for paused or unscheduled jobs,
    and for heartbeats, which run elsewhere (the monitor watches their schedule)."""
    if spec.status is JobStatus.PAUSED or not spec.schedule or spec.kind not in EXECUTED_KINDS:
        return None
    return parse_schedule(spec.schedule).next_fire(after, parse_timezone(spec.timezone))


def job_out(ctx: Context, job: Job, last_run: RunSummary | None) -> JobOut:
    """The API view of a stored job."""
    spec, schedule = job.spec, parse_schedule(job.spec.schedule)
    next_fires: list[datetime] = []
    if spec.status is JobStatus.ACTIVE:
        next_fires = schedule.next_fires(ctx.clock.now(), parse_timezone(spec.timezone), 3)
    ping_uuid = str(job.ping_uuid) if job.ping_uuid else None
    return JobOut(
        **masked_body(spec),
        id=str(job.id),
        monitor_state=job.monitor_state.value,
        schedule_description=schedule.describe(),
        next_fires=next_fires,
        last_run=_last_run_out(last_run),
        ping_uuid=ping_uuid,
        ping_url=f"{ctx.base_url}/ping/{ping_uuid}" if ping_uuid else None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def _last_run_out(run: RunSummary | None) -> LastRunOut | None:
    if run is None:
        return None
    return LastRunOut(**{**run.__dict__, "id": str(run.id)})


async def _require_job(conn: Connection, project_id: uuid.UUID, slug: str) -> Job:
    if not is_valid_slug(slug):  # no such job can exist; NUL bytes would upset PostgreSQL
        raise NotFound("job", slug)
    job = await job_store.get_job(conn, project_id, slug)
    if job is None:
        raise NotFound("job", slug)
    return job


async def _out(ctx: Context, conn: Connection, job: Job) -> JobOut:
    last = await job_store.last_runs(conn, [job.id])
    return job_out(ctx, job, last.get(job.id))


async def create_job(ctx: Context, actor: Actor, project_slug: str, body: object) -> JobOut:
    """Validate and store a new job; Conflict if the slug is taken in the project."""
    async with project_mutation(ctx, actor, project_slug, "job.create", "job:?") as (
        conn,
        mutation,
        project,
    ):
        body = load_body(body)
        if isinstance(body, dict) and isinstance(body.get("slug"), str):
            mutation.target = f"job:{body['slug'][:64]}"
        spec = parse_job_body(body)
        now = ctx.clock.now()
        ping_uuid = uuid.uuid4() if spec.kind is JobKind.HEARTBEAT else None
        job = await job_store.insert_job(
            conn,
            project_id=project.id,
            spec=spec,
            ping_uuid=ping_uuid,
            next_fire_at=next_fire(spec, now),
            now=now,
        )
        mutation.diff = changed_fields({}, masked_body(spec))
    ctx.wakeups.jobs_changed.set()
    return job_out(ctx, job, None)


async def get_job(ctx: Context, actor: Actor, project_slug: str, slug: str) -> JobOut:
    """One job with its last run and next fires."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        return await _out(ctx, conn, await _require_job(conn, project.id, slug))


async def list_jobs(ctx: Context, actor: Actor, project_slug: str, query: JobQuery) -> JobPage:
    """A page of jobs by slug; `next_cursor` is None on the last page."""
    after = decode_cursor(query.cursor, ("slug",))["slug"] if query.cursor else None
    if after is not None and not (isinstance(after, str) and is_valid_slug(after)):
        raise invalid_cursor()
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        where = job_store.JobFilter(
            project.id, query.tag, query.status, query.kind, after, query.limit + 1
        )
        found = await job_store.list_jobs(conn, where)
        page = found[: query.limit]
        last = await job_store.last_runs(conn, [job.id for job in page])
    items = [job_out(ctx, job, last.get(job.id)) for job in page]
    more = len(found) > query.limit
    return JobPage(items, encode_cursor({"slug": page[-1].slug}) if more else None)


async def update_job(
    ctx: Context, actor: Actor, project_slug: str, slug: str, patch: object
) -> JobOut:
    """Apply a JSON merge patch to a job and re-validate the whole result."""
    async with project_mutation(ctx, actor, project_slug, "job.update", f"job:{slug}") as (
        conn,
        mutation,
        project,
    ):
        job = await _require_job(conn, project.id, slug)
        patch = load_body(patch)
        if not isinstance(patch, dict):
            raise InvalidInput(FieldError("body", "must be a JSON object"))
        merged = merge_patch(job.spec.to_body(), patch)
        if isinstance(merged.get("target"), dict):
            merged["target"] = unmask_target(merged["target"], job.spec.target)
        spec = parse_job_body(merged)
        if spec.slug != slug:
            mutation.target = f"job:{slug}→{spec.slug}"
        now = ctx.clock.now()
        await claims.discard_future_runs(conn, job.id, now)  # slots are planned again
        updated = await job_store.update_job(conn, job, spec, next_fire(spec, now), now)
        mutation.diff = changed_fields(masked_body(job.spec), masked_body(spec))
        result = await _out(ctx, conn, updated)
    ctx.wakeups.jobs_changed.set()
    return result


async def set_paused(
    ctx: Context, actor: Actor, project_slug: str, slug: str, paused: bool
) -> JobOut:
    """Pause (no future fires) or resume (from the next slot, no catch-up) a job."""
    action = "job.pause" if paused else "job.resume"
    async with project_mutation(ctx, actor, project_slug, action, f"job:{slug}") as (
        conn,
        mutation,
        project,
    ):
        job = await _require_job(conn, project.id, slug)
        status = JobStatus.PAUSED if paused else JobStatus.ACTIVE
        spec = replace(job.spec, status=status)
        now = ctx.clock.now()
        await claims.discard_future_runs(conn, job.id, now)  # slots are planned again
        if job.spec.status is not status:  # paused → `paused`; resumed → `new`, as in Healthchecks
            # Before update_job, which moves monitor_state too: set_state's condition on the
            # old state must still hold, or no flip is recorded.
            old, new = job.monitor_state, MonitorState.PAUSED if paused else MonitorState.NEW
            await monitor_store.set_state(conn, job.id, old, new, now, action)
        await job_store.update_job(conn, job, spec, next_fire(spec, now), now)
        updated = await _require_job(conn, project.id, slug)
        mutation.diff = changed_fields({"status": job.spec.status.value}, {"status": status.value})
        result = await _out(ctx, conn, updated)
    ctx.wakeups.jobs_changed.set()
    return result


async def delete_job(ctx: Context, actor: Actor, project_slug: str, slug: str) -> None:
    """Delete a job and its whole history."""
    async with project_mutation(ctx, actor, project_slug, "job.delete", f"job:{slug}") as (
        conn,
        mutation,
        project,
    ):
        job = await _require_job(conn, project.id, slug)
        await job_store.delete_job(conn, job.id)
        mutation.diff = changed_fields(masked_body(job.spec), {})

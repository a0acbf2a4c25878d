"""Run use cases for people and scripts: history, detail, events, trigger, replay, cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronkeeper.domain.models import Actor, Run
from cronkeeper.domain.states import EventType, RunStatus
from cronkeeper.errors import IllegalTransition, NotFound, RateLimited
from cronkeeper.service.audit import project_mutation
from cronkeeper.service.context import Context
from cronkeeper.service.execution import count_finished_run, new_run_values
from cronkeeper.service.pagination import decode_cursor, encode_cursor, invalid_cursor
from cronkeeper.service.projects import require_access, require_project
from cronkeeper.service.run_schemas import (
    EventOut,
    RunDetailOut,
    RunListItem,
    RunOut,
    event_out,
    listed_run_out,
    run_detail_out,
    run_out,
)
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import runs as run_store
from cronkeeper.store.engine import Connection
from cronkeeper.store.runs import ListedRun


@dataclass(frozen=True)
class RunQuery:
    status: str | None = None
    source: str | None = None
    job: str | None = None  # substring of the job slug or name (project-wide lists)
    since: datetime | None = None
    until: datetime | None = None
    sort: str = "created_at"
    order: str = "desc"
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class RunPage:
    items: list[RunListItem]
    next_cursor: str | None


def _after(query: RunQuery) -> tuple[datetime, uuid.UUID] | None:
    if not query.cursor:
        return None
    position = decode_cursor(query.cursor, ("at", "id"))
    try:
        moment, run_id = datetime.fromisoformat(position["at"]), uuid.UUID(position["id"])
    except (TypeError, ValueError):
        raise invalid_cursor() from None
    if moment.tzinfo is None:
        raise invalid_cursor()
    return moment, run_id


async def list_runs(
    ctx: Context, actor: Actor, project_slug: str, query: RunQuery, job_slug: str | None = None
) -> RunPage:
    """A keyset page of runs of one job, or of the whole project."""
    after = _after(query)
    async with ctx.db.read() as conn:
        if job_slug is not None and not query.job:
            found = await _job_run_page(conn, actor, project_slug, job_slug, query, after)
        else:
            project = await require_project(conn, actor, project_slug)
            job_id = None if job_slug is None else await _require_job_id(conn, project.id, job_slug)
            found = await run_store.list_run_page(conn, _filter(query, project.id, job_id, after))
        slugs = {}  # one job's runs need no lookup: its slug is known
        if job_slug is None:
            job_ids = list({run.job_id for run in found if run.job_id is not None})
            slugs = await job_store.slugs_by_id(conn, job_ids)
    page = found[: query.limit]
    items = [listed_run_out(run, job_slug or _slug(slugs, run.job_id)) for run in page]
    return RunPage(items, _next_cursor(query, page) if len(found) > query.limit else None)


def _slug(slugs: dict[uuid.UUID, str], job_id: uuid.UUID | None) -> str:
    return slugs.get(job_id, "?") if job_id is not None else "?"


async def _job_run_page(
    conn: Connection,
    actor: Actor,
    project_slug: str,
    job_slug: str,
    query: RunQuery,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[ListedRun]:
    """One job's page, the job looked up by its slugs in the page's own statement; only an
    empty page reads the project and the job again, to tell which of them is missing."""
    require_access(actor, project_slug)
    job = run_store.JobRef(project_slug, job_slug)
    found = await run_store.list_run_page(conn, _filter(query, None, job, after))
    if not found:
        project = await require_project(conn, actor, project_slug)
        await _require_job_id(conn, project.id, job_slug)
    return found


def _filter(
    query: RunQuery,
    project_id: uuid.UUID | None,
    job: uuid.UUID | run_store.JobRef | None,
    after: tuple[datetime, uuid.UUID] | None,
) -> run_store.RunFilter:
    return run_store.RunFilter(
        project_id,
        job,
        query.status,
        query.source,
        query.job,
        query.since,
        query.until,
        query.sort,
        query.order != "asc",
        after,
        query.limit + 1,  # one more than asked: is there a next page?
    )


def _next_cursor(query: RunQuery, page: list[ListedRun]) -> str:
    last = page[-1]
    key = last.created_at if query.sort == "created_at" else (last.scheduled_for or last.created_at)
    return encode_cursor({"at": key.isoformat(), "id": str(last.id)})


async def _require_job_id(conn: Connection, project_id: uuid.UUID, slug: str) -> uuid.UUID:
    job_id = await job_store.job_id(conn, project_id, slug)
    if job_id is None:
        raise NotFound("job", slug)
    return job_id


async def _require_run(conn: Connection, project_id: uuid.UUID, run_ref: str) -> Run:
    try:
        run_id = uuid.UUID(run_ref)
    except ValueError:
        raise NotFound("run", run_ref[:64]) from None
    run = await run_store.get_run(conn, run_id)
    if run is None or run.project_id != project_id:
        raise NotFound("run", run_ref)
    return run


async def get_run(ctx: Context, actor: Actor, project_slug: str, run_ref: str) -> RunDetailOut:
    """One run with its attempts."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        run = await _require_run(conn, project.id, run_ref)
        attempts = await run_store.list_attempts(conn, run.id)
        slugs = await job_store.slugs_by_id(conn, [run.job_id])
    return run_detail_out(run, slugs.get(run.job_id, "?"), attempts)


async def list_events(
    ctx: Context,
    actor: Actor,
    project_slug: str,
    run_ref: str,
    after: int = 0,
    limit: int = 500,
) -> tuple[list[EventOut], int | None]:
    """A page of a run's events in sequence order after `after`, and the sequence number to
    continue from (None on the last page)."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        run = await _require_run(conn, project.id, run_ref)
        found = await run_store.list_events(conn, run.id, after, limit + 1)
    page = [event_out(event) for event in found[:limit]]
    return page, page[-1].sequence_num if len(found) > limit else None


async def trigger_job(
    ctx: Context,
    actor: Actor,
    project_slug: str,
    slug: str,
    payload: Any = None,
    source: str = "manual",
) -> RunOut:
    """Queue a run of the job now (rate limited per job: RateLimited with a retry delay)."""
    async with project_mutation(ctx, actor, project_slug, "job.trigger", f"job:{slug}") as (
        conn,
        mutation,
        project,
    ):
        job = await job_store.get_job(conn, project.id, slug)
        if job is None:
            raise NotFound("job", slug)
        wait = ctx.trigger_limits.take(str(job.id), ctx.clock.monotonic())
        if wait:
            raise RateLimited(f"job {slug!r} was triggered too often; try again shortly", wait)
        run = await _queue_run(ctx, conn, job.project_id, job.id, job.spec, source, payload)
        mutation.diff = {"run": [None, str(run.id)]}
    ctx.wakeups.runs_queued.set()
    return run_out(run, slug)


async def _queue_run(
    ctx: Context,
    conn: Connection,
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    spec: Any,
    source: str,
    payload: Any,
    replay_of: uuid.UUID | None = None,
) -> Run:
    now = ctx.clock.now()
    values = new_run_values(project_id, job_id, spec, source=source, now=now)
    values.update(payload={"input": payload} if payload is not None else None, replay_of=replay_of)
    run = await run_store.insert_run(conn, values)
    message = f"queued ({source})" + (f", replay of {replay_of}" if replay_of else "")
    await run_store.append_events(conn, run.id, [(EventType.RUN_QUEUED.value, now, message, None)])
    return run


async def replay_run(ctx: Context, actor: Actor, project_slug: str, run_ref: str) -> RunOut:
    """A new run of the same job with the same input (`source=replay`); the original stays."""
    async with project_mutation(ctx, actor, project_slug, "run.replay", f"run:{run_ref[:64]}") as (
        conn,
        mutation,
        project,
    ):
        original = await _require_run(conn, project.id, run_ref)
        specs = await job_store.specs_by_id(conn, [original.job_id])
        spec, _ = specs[original.job_id]
        payload = original.payload.get("input") if isinstance(original.payload, dict) else None
        run = await _queue_run(
            ctx, conn, project.id, original.job_id, spec, "replay", payload, original.id
        )
        mutation.diff = {"run": [None, str(run.id)]}
    ctx.wakeups.runs_queued.set()
    return run_out(run, spec.slug)


async def cancel_run(ctx: Context, actor: Actor, project_slug: str, run_ref: str) -> RunOut:
    """Cancel a queued, running or suspended run; a running attempt is stopped by its worker."""
    async with project_mutation(ctx, actor, project_slug, "run.cancel", f"run:{run_ref[:64]}") as (
        conn,
        mutation,
        project,
    ):
        run = await _require_run(conn, project.id, run_ref)
        now = ctx.clock.now()
        started = run.started_at
        values = {
            "finished_at": now,
            "duration_ms": int((now - started).total_seconds() * 1000) if started else None,
        }
        if not await claims.cancel_run(conn, run.id, values):
            raise IllegalTransition(f"run {run.id} is already {run.status}; it cannot be cancelled")
        message = f"cancelled by {actor.name}"
        await run_store.append_events(
            conn, run.id, [(EventType.RUN_CANCELLED.value, now, message, None)]
        )
        await claims.set_last_run(conn, run.job_id, run.id)
        mutation.diff = {"status": [run.status, RunStatus.CANCELLED.value]}
        cancelled = await run_store.get_run(conn, run.id)
        slugs = await job_store.slugs_by_id(conn, [run.job_id])
    assert cancelled is not None
    count_finished_run(ctx, project_slug, slugs.get(run.job_id, "?"), RunStatus.CANCELLED, values)
    return run_out(cancelled, slugs.get(run.job_id, "?"))

"""Healthchecks' Management API v3 over heartbeat jobs (DESIGN §3): the use cases.

The key's project is the project; a check is a heartbeat job, named by its ping UUID
(or, for read-only keys, by the `unique_key` derived from it). Reads are one read
transaction each. Every change goes through `service/jobs.py` — validated, audited with
the key's name as actor — after a read that resolves the check and its channels; the
answer is read afresh afterwards. The field mapping is `domain/healthchecks.py`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronkeeper.domain import healthchecks as hc
from cronkeeper.domain.jobs import TAG_PATTERN
from cronkeeper.domain.models import Actor, Job, Project
from cronkeeper.domain.states import JobStatus, KeyRole
from cronkeeper.errors import Conflict, FieldError, InvalidInput, NotFound
from cronkeeper.service import jobs as job_service
from cronkeeper.service.badges import job_badge_url, tag_badge_urls
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project, require_role
from cronkeeper.store import healthchecks as hc_store
from cronkeeper.store import jobs as job_store
from cronkeeper.store.engine import Connection

#: Pings listed per check (Healthchecks' default ping log limit), flips at most.
PING_LIMIT, FLIP_LIMIT = 100, 1000
_UNIQUE_KEY = re.compile(r"^[0-9a-f]{40}$")
_ALL_JOBS = 1_000_000


@dataclass(frozen=True)
class FlipQuery:
    seconds: int | None = None
    start: int | None = None  # UNIX time
    end: int | None = None


async def _project(conn: Connection, actor: Actor) -> Project:
    assert actor.project_slug is not None, "API keys always belong to a project"
    return await require_project(conn, actor, actor.project_slug)


async def _find(conn: Connection, project: Project, code: str) -> Job:
    """The heartbeat job a check's UUID or unique key names; NotFound otherwise."""
    slug = None
    if _UNIQUE_KEY.match(code):
        refs = await hc_store.heartbeat_refs(conn, project.id)
        slug = next((slug for ping, slug in refs if hc.unique_key(ping) == code), None)
    else:
        try:
            ping_uuid = uuid.UUID(code)
        except ValueError:
            raise NotFound("check", code[:64]) from None
        slug = await hc_store.slug_by_ping_uuid(conn, project.id, ping_uuid)
    job = await job_store.get_job(conn, project.id, slug) if slug else None
    if job is None:
        raise NotFound("check", code[:64])
    return job


async def _facts(conn: Connection, project: Project, jobs: list[Job]) -> list[hc.CheckFacts]:
    """What each job's check JSON needs, in a fixed number of queries."""
    ids = [job.id for job in jobs]
    stats = await hc_store.ping_stats(conn, ids)
    started = await hc_store.started_jobs(conn, ids)
    last_runs = await job_store.last_runs(conn, ids)
    channels = await hc_store.project_channels(conn, project.id)
    by_ref = {ref: str(c.id) for c in channels for ref in (str(c.id), c.name)}
    defaults = [str(c.id) for c in channels if c.is_default]
    result = []
    for job in jobs:
        spec, (n_pings, last_ping) = job.spec, stats.get(job.id, (0, None))
        listed = [by_ref[ref] for ref in spec.alerts.channels if ref in by_ref]
        last = last_runs.get(job.id)
        assert job.ping_uuid is not None
        result.append(
            hc.CheckFacts(
                ping_uuid=job.ping_uuid,
                spec=spec,
                monitor_state=job.monitor_state.value,
                started=job.id in started,
                n_pings=n_pings,
                last_ping=last_ping,
                last_duration_ms=last.duration_ms if last else None,
                channels=listed if spec.alerts.channels else defaults,
            )
        )
    return result


def _json(ctx: Context, project: Project, actor: Actor, facts: hc.CheckFacts) -> dict[str, Any]:
    readonly = not actor.role.allows(KeyRole.WRITE)
    badge = job_badge_url(ctx, project, facts.spec.slug)
    return hc.check_json(facts, ctx.base_url, badge, readonly=readonly)


async def _check(ctx: Context, actor: Actor, code: str) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        job = await _find(conn, project, code)
        (facts,) = await _facts(conn, project, [job])
    return _json(ctx, project, actor, facts)


async def list_checks(
    ctx: Context, actor: Actor, tags: list[str], slug: str | None
) -> list[dict[str, Any]]:
    """The project's checks, those carrying every tag in `tags` (and with `slug`)."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        if not all(re.match(TAG_PATTERN, tag) for tag in tags):
            return []  # no job can carry it; odd bytes would upset PostgreSQL
        where = job_store.JobFilter(
            project.id, tag=tags[0] if tags else None, kind="heartbeat", limit=_ALL_JOBS
        )
        jobs = [
            job
            for job in await job_store.list_jobs(conn, where)
            if set(tags) <= set(job.spec.tags) and slug in (None, job.slug)
        ]
        facts = await _facts(conn, project, jobs)
    return [_json(ctx, project, actor, one) for one in facts]


async def get_check(ctx: Context, actor: Actor, code: str) -> dict[str, Any]:
    """One check, by UUID or unique key."""
    return await _check(ctx, actor, code)


async def _resolve_channels(
    conn: Connection, project: Project, text: str | None
) -> list[str] | None:
    """A `channels` value as channel ids: "*" is every channel, "" none; None if not given.
    An id or name that names no channel of the project is a 400, as in Healthchecks."""
    if text is None:
        return None
    channels = await hc_store.project_channels(conn, project.id)
    refs = hc.parse_channels(text)
    if refs is None:
        return [str(channel.id) for channel in channels]
    resolved = []
    for ref in refs:
        found = [c for c in channels if ref in (str(c.id), c.name)]
        if not found:
            raise hc.invalid("channels", f"has an invalid channel identifier: {ref[:100]}")
        resolved.append(str(found[0].id))
    return resolved


async def _free_slug(conn: Connection, project: Project, name: str | None) -> str:
    """A slug for a new check: from its name, with `-2`, `-3`… if taken."""
    base = hc.slugify(name or "") or "check"
    taken = {slug for _, slug in await hc_store.heartbeat_refs(conn, project.id)}
    candidate, n = base, 1
    while candidate in taken or await job_store.get_job(conn, project.id, candidate):
        n += 1
        candidate = f"{base[: 64 - len(str(n)) - 1]}-{n}"
    return candidate


async def create_check(ctx: Context, actor: Actor, body: object) -> tuple[dict[str, Any], bool]:
    """Create a check, or with `unique` update the first one matching on those fields;
    (check, created)."""
    given = hc.parse_check_body(body)
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        channels = await _resolve_channels(conn, project, given.channels)
        existing = await _unique_match(conn, project, given)
        slug = given.slug or await _free_slug(conn, project, given.name)
    if existing is not None:
        return await _update(ctx, actor, project, existing, given, channels), False
    body_in = hc.new_job_body(slug, given, channels)
    try:
        await job_service.create_job(ctx, actor, project.slug, body_in)
    except InvalidInput as error:
        raise hc.as_hc_error(error) from None
    async with ctx.db.read() as conn:
        job = await job_store.get_job(conn, project.id, slug)
        if job is None:
            raise NotFound("check", slug)  # deleted in between
        (facts,) = await _facts(conn, project, [job])
    return _json(ctx, project, actor, facts), True


async def _unique_match(conn: Connection, project: Project, given: hc.CheckInput) -> Job | None:
    if not given.unique:
        return None
    where = job_store.JobFilter(project.id, kind="heartbeat", limit=_ALL_JOBS)
    jobs = await job_store.list_jobs(conn, where)
    for job, facts in zip(jobs, await _facts(conn, project, jobs), strict=True):
        if hc.matches_unique(facts, given):
            return job
    return None


async def _update(
    ctx: Context,
    actor: Actor,
    project: Project,
    job: Job,
    given: hc.CheckInput,
    channels: list[str] | None,
) -> dict[str, Any]:
    patch = hc.job_fields(given, channels)
    if patch:
        try:
            await job_service.update_job(ctx, actor, project.slug, job.slug, patch)
        except InvalidInput as error:
            raise hc.as_hc_error(error) from None
    assert job.ping_uuid is not None
    return await _check(ctx, actor, str(job.ping_uuid))


async def update_check(ctx: Context, actor: Actor, code: str, body: object) -> dict[str, Any]:
    """Change the fields the body gives; the others keep their values."""
    given = hc.parse_check_body(body)
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code)
        channels = await _resolve_channels(conn, project, given.channels)
    return await _update(ctx, actor, project, job, given, channels)


async def delete_check(ctx: Context, actor: Actor, code: str) -> dict[str, Any]:
    """Delete a check (its job and history); answers with the check as it was."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code)
        (facts,) = await _facts(conn, project, [job])
    await job_service.delete_job(ctx, actor, project.slug, job.slug)
    return _json(ctx, project, actor, facts)


async def set_paused(ctx: Context, actor: Actor, code: str, paused: bool) -> dict[str, Any]:
    """Pause a check, or resume a paused one (Conflict if it is not paused)."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code)
    if not paused and job.spec.status is not JobStatus.PAUSED:
        raise Conflict("check is not paused")
    await job_service.set_paused(ctx, actor, project.slug, job.slug, paused)
    return await _check(ctx, actor, code)


async def list_pings(ctx: Context, actor: Actor, code: str) -> list[dict[str, Any]]:
    """The check's last PING_LIMIT pings, newest first, numbered from its first kept one
    (`scheme` is that of the public URL: the ledger does not keep the request's)."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        job = await _find(conn, project, code)
        count = (await hc_store.ping_stats(conn, [job.id])).get(job.id, (0, None))[0]
        found = await hc_store.ping_events(conn, job.id, PING_LIMIT)
    scheme = ctx.base_url.split(":", 1)[0]
    return [hc.ping_json(event, count - index, scheme) for index, event in enumerate(found)]


def parse_flip_query(params: dict[str, str]) -> FlipQuery:
    """`seconds`, `start`, `end` as non-negative integers; InvalidInput otherwise."""
    values: dict[str, int] = {}
    for name in ("seconds", "start", "end"):
        text = params.get(name)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 11:
            raise InvalidInput(FieldError(name, "invalid"), f"invalid query: {name}")
        values[name] = int(text)
    if values.get("seconds", 0) > hc.MAX_SECONDS:
        raise InvalidInput(FieldError("seconds", "too large"), "invalid query: seconds")
    return FlipQuery(**values)


async def list_flips(
    ctx: Context, actor: Actor, code: str, query: FlipQuery
) -> list[dict[str, Any]]:
    """The check's flips to up/down/paused, newest first, within the query's window."""
    since = until = None
    if query.start is not None:
        since = datetime.fromtimestamp(query.start, UTC)
    if query.seconds is not None:
        window = ctx.clock.now() - timedelta(seconds=query.seconds)
        since = max(since, window) if since else window
    if query.end is not None:
        until = datetime.fromtimestamp(query.end, UTC)
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        job = await _find(conn, project, code)
        found = await hc_store.job_flips(conn, job.id, since, until, FLIP_LIMIT)
    return [hc.flip_json(at, state) for at, state in found]


async def list_channels(ctx: Context, actor: Actor) -> list[dict[str, str]]:
    """The project's channels: id, name, kind."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        channels = await hc_store.project_channels(conn, project.id)
    return [{"id": str(c.id), "name": c.name, "kind": c.kind} for c in channels]


async def list_badges(ctx: Context, actor: Actor) -> dict[str, dict[str, str]]:
    """Badge URLs per tag, plus `*` for every job."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        tags = await hc_store.project_tags(conn, project.id)
    return {tag: tag_badge_urls(ctx, project, tag) for tag in [*tags, "*"]}

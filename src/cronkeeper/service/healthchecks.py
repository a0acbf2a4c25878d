"""Healthchecks' Management API v3 over heartbeat jobs (DESIGN §3): the use cases.

The key's project is the project; a check is a heartbeat job, named by its ping UUID
(or, where Healthchecks allows it, by the `unique_key` derived from it); another
project's check is Forbidden, as Healthchecks answers 403 for it. Reads are one read
transaction each. Every change goes through `service/jobs.py` — validated, audited with
the key's name as actor — after a read that resolves the check and its channels; the
answer is read afresh afterwards. The field mapping is `domain/healthchecks.py` (answers)
and `domain/healthchecks_input.py` (requests).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from cronkeeper.domain import healthchecks as hc
from cronkeeper.domain import healthchecks_input as hc_input
from cronkeeper.domain.jobs import TAG_PATTERN
from cronkeeper.domain.models import Actor, Job, Project
from cronkeeper.domain.states import JobStatus, KeyRole
from cronkeeper.errors import Conflict, Forbidden, InvalidInput, NotFound
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


async def _project(conn: Connection, actor: Actor) -> Project:
    assert actor.project_slug is not None, "API keys always belong to a project"
    return await require_project(conn, actor, actor.project_slug)


async def _find(conn: Connection, project: Project, code: str, *, by_unique_key: bool) -> Job:
    """The heartbeat job a check's UUID (or, if `by_unique_key`, its unique key) names;
    NotFound if none does, Forbidden if it is another project's."""
    slug = None
    if by_unique_key and _UNIQUE_KEY.match(code):
        refs = await hc_store.heartbeat_refs(conn, project.id)
        slug = next((slug for ping, slug in refs if hc.unique_key(ping) == code), None)
    else:
        try:
            ping_uuid = uuid.UUID(code)
        except ValueError:
            raise NotFound("check", code[:64]) from None
        found = await hc_store.heartbeat_by_ping_uuid(conn, ping_uuid)
        if found is not None and found[0] != project.id:
            raise Forbidden("access denied, wrong api key")
        slug = found[1] if found else None
    job = await job_store.get_job(conn, project.id, slug) if slug else None
    if job is None:
        raise NotFound("check", code[:64])
    return job


async def _facts(conn: Connection, project: Project, jobs: list[Job]) -> list[hc.CheckFacts]:
    """What each job's check JSON needs, in a fixed number of queries."""
    ids = [job.id for job in jobs]
    stats = await hc_store.ping_stats(conn, ids)
    starts = await hc_store.open_run_starts(conn, ids)
    resets = await hc_store.last_resets(conn, ids)
    last_runs = await job_store.last_runs(conn, ids)
    channels = await hc_store.project_channels(conn, project.id)
    by_ref = {ref: str(c.id) for c in channels for ref in (str(c.id), c.name)}
    defaults = [str(c.id) for c in channels if c.is_default]
    result = []
    for job in jobs:
        spec, pings = job.spec, stats.get(job.id, hc_store.PingStats(0, None))
        listed = [by_ref[ref] for ref in spec.alerts.channels if ref in by_ref]
        last = last_runs.get(job.id)
        assert job.ping_uuid is not None
        result.append(
            hc.CheckFacts(
                ping_uuid=job.ping_uuid,
                spec=spec,
                monitor_state=job.monitor_state.value,
                n_pings=pings.count,
                last_finish=pings.last_finish,
                reset_at=resets.get(job.id),
                last_start=starts.get(job.id),
                last_duration_ms=last.duration_ms if last else None,
                channels=listed if spec.alerts.channels else defaults,
            )
        )
    return result


def _json(ctx: Context, project: Project, actor: Actor, facts: hc.CheckFacts) -> dict[str, Any]:
    readonly = not actor.role.allows(KeyRole.WRITE)
    badge = job_badge_url(ctx, project, facts.spec.slug) + "?states=2"  # two states, as theirs
    return hc.check_json(facts, ctx.base_url, badge, readonly=readonly)


async def _check(ctx: Context, actor: Actor, code: str, by_unique_key: bool) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        job = await _find(conn, project, code, by_unique_key=by_unique_key)
        (facts,) = await _facts(conn, project, [job])
    return _json(ctx, project, actor, facts)


async def list_checks(
    ctx: Context, actor: Actor, tags: list[str], slug: str | None
) -> list[dict[str, Any]]:
    """The project's checks, those carrying every tag in `tags` (and with `slug`, unless
    it is empty)."""
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
            if set(tags) <= set(job.spec.tags) and slug in (None, "", job.slug)
        ]
        facts = await _facts(conn, project, jobs)
    return [_json(ctx, project, actor, one) for one in facts]


async def get_check(ctx: Context, actor: Actor, code: str) -> dict[str, Any]:
    """One check, by UUID or unique key."""
    return await _check(ctx, actor, code, by_unique_key=True)


async def _resolve_channels(
    conn: Connection, project: Project, text: str | None
) -> list[str] | None:
    """A `channels` value as channel ids: "*" is every channel, "" none listed (so the
    project's default channels serve the job); None if not given. An id or name that
    names no channel of the project, or several, is a 400 in Healthchecks' words."""
    if text is None:
        return None
    refs = hc_input.parse_channels(text)
    channels = await hc_store.project_channels(conn, project.id)
    if refs is None:
        return [str(channel.id) for channel in channels]
    resolved: list[str] = []
    for ref in refs:
        found = [c for c in channels if ref in (str(c.id), c.name)]
        if len(found) != 1:
            problem = "invalid" if not found else "non-unique"
            raise hc_input.channel_error(f"{problem} channel identifier: {ref[:100]}")
        if str(found[0].id) not in resolved:
            resolved.append(str(found[0].id))
    return resolved


async def _free_slug(conn: Connection, project: Project, name: str | None) -> str:
    """A slug for a new check: from its name, with `-2`, `-3`… if taken."""
    base = hc_input.slugify(name or "") or "check"
    taken = {slug for _, slug in await hc_store.heartbeat_refs(conn, project.id)}
    candidate, n = base, 1
    while candidate in taken or await job_store.get_job(conn, project.id, candidate):
        n += 1
        candidate = f"{base[: 64 - len(str(n)) - 1]}-{n}"
    return candidate


async def create_check(ctx: Context, actor: Actor, body: object) -> tuple[dict[str, Any], bool]:
    """Create a check, or with `unique` update the first one matching on those fields;
    (check, created)."""
    given = hc_input.parse_check_body(body)
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        channels = await _resolve_channels(conn, project, given.channels)
        existing = await _unique_match(conn, project, given)
        slug = given.slug or await _free_slug(conn, project, given.name)
    if existing is not None:
        return await _update(ctx, actor, project, existing, given, channels), False
    body_in = hc_input.new_job_body(slug, given, channels)
    try:
        await job_service.create_job(ctx, actor, project.slug, body_in)
    except InvalidInput as error:
        raise hc_input.as_hc_error(error) from None
    async with ctx.db.read() as conn:
        job = await job_store.get_job(conn, project.id, slug)
        if job is None:
            raise NotFound("check", slug)  # deleted in between
        (facts,) = await _facts(conn, project, [job])
    return _json(ctx, project, actor, facts), True


async def _unique_match(
    conn: Connection, project: Project, given: hc_input.CheckInput
) -> Job | None:
    if not given.unique:
        return None
    where = job_store.JobFilter(project.id, kind="heartbeat", limit=_ALL_JOBS)
    jobs = await job_store.list_jobs(conn, where)
    for job, facts in zip(jobs, await _facts(conn, project, jobs), strict=True):
        if hc_input.matches_unique(facts, given):
            return job
    return None


async def _update(
    ctx: Context,
    actor: Actor,
    project: Project,
    job: Job,
    given: hc_input.CheckInput,
    channels: list[str] | None,
) -> dict[str, Any]:
    patch = hc_input.job_fields(given, channels)
    if patch:
        try:
            await job_service.update_job(ctx, actor, project.slug, job.slug, patch)
        except InvalidInput as error:
            raise hc_input.as_hc_error(error) from None
    assert job.ping_uuid is not None
    return await _check(ctx, actor, str(job.ping_uuid), by_unique_key=False)


async def update_check(ctx: Context, actor: Actor, code: str, body: object) -> dict[str, Any]:
    """Change the fields the body gives; the others keep their values."""
    given = hc_input.parse_check_body(body)
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code, by_unique_key=False)
        channels = await _resolve_channels(conn, project, given.channels)
    return await _update(ctx, actor, project, job, given, channels)


async def delete_check(ctx: Context, actor: Actor, code: str) -> dict[str, Any]:
    """Delete a check (its job and history); answers with the check as it was."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code, by_unique_key=False)
        (facts,) = await _facts(conn, project, [job])
    await job_service.delete_job(ctx, actor, project.slug, job.slug)
    return _json(ctx, project, actor, facts)


async def set_paused(ctx: Context, actor: Actor, code: str, paused: bool) -> dict[str, Any]:
    """Pause a check, or resume a paused one (Conflict if it is not paused)."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code, by_unique_key=False)
    if not paused and job.spec.status is not JobStatus.PAUSED:
        raise Conflict("check is not paused")
    await job_service.set_paused(ctx, actor, project.slug, job.slug, paused)
    return await _check(ctx, actor, code, by_unique_key=False)


async def _ping_count(conn: Connection, job: Job) -> int:
    """How many pings of the job the ledger keeps: they are numbered 1 to this, oldest first."""
    stats = await hc_store.ping_stats(conn, [job.id])
    return stats[job.id].count if job.id in stats else 0


async def list_pings(ctx: Context, actor: Actor, code: str) -> list[dict[str, Any]]:
    """The check's last PING_LIMIT pings, newest first, numbered from its first kept one
    (`scheme` is that of the public URL: the ledger does not keep the request's)."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code, by_unique_key=False)
        count = await _ping_count(conn, job)
        found = await hc_store.newest_ping_events(conn, job.id, PING_LIMIT)
    scheme = ctx.base_url.split(":", 1)[0]
    pings = f"{ctx.base_url}/api/v3/checks/{job.ping_uuid}/pings"
    result = []
    for index, event in enumerate(found):
        n = count - index
        result.append(hc.ping_json(event, n, scheme, f"{pings}/{n}/body"))
    return result


async def ping_body(ctx: Context, actor: Actor, code: str, n: int) -> str:
    """The logged body of the check's ping number `n`; NotFound if that ping is not among
    the last PING_LIMIT or had no body."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        job = await _find(conn, project, code, by_unique_key=False)
        count = await _ping_count(conn, job)
        event = None
        if max(1, count - PING_LIMIT + 1) <= n <= count:
            event = await hc_store.ping_event_number(conn, job.id, n)
    body = event.body if event else None
    if body is None:
        raise NotFound("ping body", str(n))
    return body


async def list_flips(
    ctx: Context, actor: Actor, code: str, query: hc_input.FlipQuery
) -> list[dict[str, Any]]:
    """The check's flips as Healthchecks records them, newest first, within the query's
    window."""
    since, until = query.window(ctx.clock.now())
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        job = await _find(conn, project, code, by_unique_key=True)
        found = await hc_store.job_flips(conn, job.id, since, until, FLIP_LIMIT)
    return [hc.flip_json(at, state) for at, state in found]


async def list_channels(ctx: Context, actor: Actor) -> list[dict[str, str]]:
    """The project's channels: id, name, kind."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        require_role(actor, KeyRole.WRITE)
        channels = await hc_store.project_channels(conn, project.id)
    return [{"id": str(c.id), "name": c.name, "kind": c.kind} for c in channels]


async def list_badges(ctx: Context, actor: Actor) -> dict[str, dict[str, str]]:
    """Badge URLs per tag, plus `*` for every job."""
    async with ctx.db.read() as conn:
        project = await _project(conn, actor)
        tags = await hc_store.project_tags(conn, project.id)
    return {tag: tag_badge_urls(ctx, project, tag) for tag in [*tags, "*"]}

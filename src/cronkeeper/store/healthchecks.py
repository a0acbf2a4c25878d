"""The reads behind the Healthchecks-compatible API and the badges: heartbeat jobs by
ping UUID, what their pings left in the ledger, flips, channels, tags, badge states.

Pings are not a table of their own: each one left an event in a heartbeat run, and only
those events carry the client's `method` in `data` (JSON, read with the dialect's JSON
operator). Counting them joins `events` to the job's runs through the run indexes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.healthchecks import PING_TYPES, PingEvent
from cronkeeper.store.tables import channels, events, flips, job_tags, jobs, projects, runs

#: Flips Healthchecks shows: to up, down or paused (`late` and `new` are ours only).
_HC_FLIP_STATES = ("up", "down", "paused")


@dataclass(frozen=True)
class ChannelRef:
    id: uuid.UUID
    name: str
    kind: str
    is_default: bool


def _ping_condition(job_ids: list[uuid.UUID]) -> list[ColumnElement[bool]]:
    """Events of these jobs' heartbeat runs that a ping left (they name its method)."""
    return [
        runs.c.job_id.in_(job_ids),
        runs.c.source == "heartbeat",
        events.c.type.in_(list(PING_TYPES)),
        events.c.data["method"].as_string().is_not(None),
    ]


async def heartbeat_refs(
    conn: AsyncConnection, project_id: uuid.UUID
) -> list[tuple[uuid.UUID, str]]:
    """(ping UUID, slug) of every heartbeat job of the project."""
    query = select(jobs.c.ping_uuid, jobs.c.slug).where(
        jobs.c.project_id == project_id, jobs.c.kind == "heartbeat", jobs.c.ping_uuid.is_not(None)
    )
    return [(row.ping_uuid, row.slug) for row in await conn.execute(query)]


async def slug_by_ping_uuid(
    conn: AsyncConnection, project_id: uuid.UUID, ping_uuid: uuid.UUID
) -> str | None:
    """The slug of the project's heartbeat job with this ping UUID, or None."""
    query = select(jobs.c.slug).where(
        jobs.c.ping_uuid == ping_uuid, jobs.c.project_id == project_id, jobs.c.kind == "heartbeat"
    )
    slug: str | None = (await conn.execute(query)).scalar_one_or_none()
    return slug


async def ping_stats(
    conn: AsyncConnection, job_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, datetime]]:
    """Per job with pings in the ledger: how many, and when the last one came."""
    if not job_ids:
        return {}
    query = (
        select(runs.c.job_id, func.count(events.c.id), func.max(events.c.at))
        .select_from(events.join(runs, runs.c.id == events.c.run_id))
        .where(*_ping_condition(job_ids))
        .group_by(runs.c.job_id)
    )
    return {job_id: (int(count), last) for job_id, count, last in await conn.execute(query)}


async def started_jobs(conn: AsyncConnection, job_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """The jobs among these with a running heartbeat run (a start with no finish yet)."""
    if not job_ids:
        return set()
    query = select(runs.c.job_id).where(
        runs.c.job_id.in_(job_ids), runs.c.status == "running", runs.c.source == "heartbeat"
    )
    return {row.job_id for row in await conn.execute(query)}


async def ping_events(conn: AsyncConnection, job_id: uuid.UUID, limit: int) -> list[PingEvent]:
    """The job's newest ping events, newest first, with their run's duration."""
    query = (
        select(events.c.type, events.c.at, events.c.data, runs.c.duration_ms)
        .select_from(events.join(runs, runs.c.id == events.c.run_id))
        .where(*_ping_condition([job_id]))
        .order_by(events.c.at.desc(), events.c.id.desc())
        .limit(limit)
    )
    return [
        PingEvent(row.type, row.at, row.data or {}, row.duration_ms)
        for row in await conn.execute(query)
    ]


async def job_flips(
    conn: AsyncConnection,
    job_id: uuid.UUID,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[tuple[datetime, str]]:
    """(created_at, new_state) of the job's flips to up/down/paused, newest first."""
    query = select(flips.c.created_at, flips.c.new_state).where(
        flips.c.job_id == job_id, flips.c.new_state.in_(_HC_FLIP_STATES)
    )
    if since is not None:
        query = query.where(flips.c.created_at >= since)
    if until is not None:
        query = query.where(flips.c.created_at < until)
    query = query.order_by(flips.c.created_at.desc(), flips.c.id.desc()).limit(limit)
    return [(row.created_at, row.new_state) for row in await conn.execute(query)]


async def project_channels(conn: AsyncConnection, project_id: uuid.UUID) -> list[ChannelRef]:
    """The project's channels by name (a read of its own; store/channels.py owns writes)."""
    query = (
        select(channels.c.id, channels.c.name, channels.c.kind, channels.c.is_default)
        .where(channels.c.project_id == project_id)
        .order_by(channels.c.name)
    )
    return [ChannelRef(r.id, r.name, r.kind, bool(r.is_default)) for r in await conn.execute(query)]


async def project_tags(conn: AsyncConnection, project_id: uuid.UUID) -> list[str]:
    """Every tag some job of the project carries, sorted."""
    query = (
        select(job_tags.c.tag)
        .join(jobs, jobs.c.id == job_tags.c.job_id)
        .where(jobs.c.project_id == project_id)
        .distinct()
        .order_by(job_tags.c.tag)
    )
    return [row.tag for row in await conn.execute(query)]


async def badge_states(
    conn: AsyncConnection, badge_key: str, *, slug: str | None = None, tag: str | None = None
) -> list[tuple[str, str, str]] | None:
    """(name, status, monitor_state) of one job (`slug`), of the jobs with `tag`, or of
    every job (both None), in the project with this badge key; None if no project has it.
    One statement (the project outer-joined to its jobs): a badge is a single round trip."""
    on = [jobs.c.project_id == projects.c.id]
    if slug is not None:
        on.append(jobs.c.slug == slug)
    if tag is not None:
        on.append(exists().where(job_tags.c.job_id == jobs.c.id, job_tags.c.tag == tag))
    query = (
        select(projects.c.id, jobs.c.name, jobs.c.status, jobs.c.monitor_state)
        .select_from(projects.outerjoin(jobs, and_(*on)))
        .where(projects.c.badge_key == badge_key)
    )
    rows = (await conn.execute(query)).all()
    if not rows:
        return None
    return [(r.name, r.status, r.monitor_state) for r in rows if r.status is not None]

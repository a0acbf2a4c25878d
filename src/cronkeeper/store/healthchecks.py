"""The reads behind the Healthchecks-compatible API and the badges: heartbeat jobs by
ping UUID, what their pings left in the ledger, flips, channels, tags, badge states.

Pings are not a table of their own: each one left an event in a heartbeat run, and only
those events carry the client's `method` in `data` (JSON, read with the dialect's JSON
operator). Counting them joins `events` to the job's runs through the run indexes. A
ping's body is where ingest kept it: a finish's in its run's attempt, a start's in the
log event written right after it, a log ping's in its own message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, not_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.healthchecks import FINISHING, PING_TYPES, PingEvent
from cronkeeper.store.tables import (
    attempts,
    channels,
    events,
    flips,
    job_tags,
    jobs,
    projects,
    runs,
)

#: Flips Healthchecks records: to up, down, paused, and to new on a resume.
_HC_FLIP_STATES = ("up", "down", "paused", "new")


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


async def heartbeat_by_ping_uuid(
    conn: AsyncConnection, ping_uuid: uuid.UUID
) -> tuple[uuid.UUID, str] | None:
    """(project id, slug) of the heartbeat job with this ping UUID in any project, or None."""
    query = select(jobs.c.project_id, jobs.c.slug).where(
        jobs.c.ping_uuid == ping_uuid, jobs.c.kind == "heartbeat"
    )
    row = (await conn.execute(query)).first()
    return None if row is None else (row.project_id, row.slug)


@dataclass(frozen=True)
class PingStats:
    count: int  # ping events in the ledger
    last_finish: datetime | None  # the newest success or fail ping


async def ping_stats(conn: AsyncConnection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, PingStats]:
    """Per job with pings in the ledger: how many, and when the last finishing one came."""
    if not job_ids:
        return {}
    last_finish = func.max(case((events.c.type.in_(FINISHING), events.c.at)))
    query = (
        select(runs.c.job_id, func.count(events.c.id), last_finish)
        .select_from(events.join(runs, runs.c.id == events.c.run_id))
        .where(*_ping_condition(job_ids))
        .group_by(runs.c.job_id)
    )
    rows = await conn.execute(query)
    return {job_id: PingStats(int(count), last) for job_id, count, last in rows}


async def open_run_starts(
    conn: AsyncConnection, job_ids: list[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """The start of the newest running heartbeat run (a start with no finish yet) of each
    job among these that has one."""
    if not job_ids:
        return {}
    query = (
        select(runs.c.job_id, func.max(runs.c.started_at))
        .where(runs.c.job_id.in_(job_ids), runs.c.status == "running", runs.c.source == "heartbeat")
        .group_by(runs.c.job_id)
    )
    return {row[0]: row[1] for row in await conn.execute(query)}


async def last_resets(conn: AsyncConnection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each job among these last flipped to `new` (a resume), if it ever did."""
    if not job_ids:
        return {}
    query = (
        select(flips.c.job_id, func.max(flips.c.created_at))
        .where(flips.c.job_id.in_(job_ids), flips.c.new_state == "new")
        .group_by(flips.c.job_id)
    )
    return {row[0]: row[1] for row in await conn.execute(query)}


def _ping_events(job_id: uuid.UUID) -> Select[tuple[object, ...]]:
    """The job's ping events with their run's duration and their bodies' places: the
    run's attempt for a finish, the method-less log event that follows a start."""
    follow = events.alias("start_log")
    after_start = and_(
        events.c.type == "attempt_started",
        follow.c.run_id == events.c.run_id,
        follow.c.sequence_num == events.c.sequence_num + 1,
        follow.c.type == "log",
        follow.c.at == events.c.at,
        follow.c.data["method"].as_string().is_(None),
    )
    of_finish = and_(
        events.c.type.in_(FINISHING), attempts.c.run_id == events.c.run_id, attempts.c.number == 1
    )
    return (
        select(
            events.c.type,
            events.c.at,
            events.c.data,
            runs.c.duration_ms,
            events.c.message,
            attempts.c.body_preview,
            follow.c.message.label("start_body"),
        )
        .select_from(
            events.join(runs, runs.c.id == events.c.run_id)
            .outerjoin(attempts, of_finish)
            .outerjoin(follow, after_start)
        )
        .where(*_ping_condition([job_id]))
    )


async def newest_ping_events(
    conn: AsyncConnection, job_id: uuid.UUID, limit: int
) -> list[PingEvent]:
    """The job's newest ping events, newest first."""
    query = _ping_events(job_id).order_by(events.c.at.desc(), events.c.id.desc()).limit(limit)
    return [_ping_event(row) for row in await conn.execute(query)]


async def ping_event_number(conn: AsyncConnection, job_id: uuid.UUID, n: int) -> PingEvent | None:
    """The job's `n`-th oldest ping event still in the ledger (from 1), or None."""
    query = _ping_events(job_id).order_by(events.c.at, events.c.id).offset(n - 1).limit(1)
    row = (await conn.execute(query)).first()
    return None if row is None else _ping_event(row)


def _ping_event(row: Any) -> PingEvent:
    return PingEvent(
        row.type,
        row.at,
        row.data or {},
        row.duration_ms,
        row.message,
        row.body_preview,
        row.start_body,
    )


async def job_flips(
    conn: AsyncConnection,
    job_id: uuid.UUID,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[tuple[datetime, str]]:
    """(created_at, new_state) of the job's flips Healthchecks would have recorded, newest
    first: to up, down, paused or new; not back up from `late` (Healthchecks' grace is
    no state of its own: such a check was `up` all along)."""
    query = select(flips.c.created_at, flips.c.new_state).where(
        flips.c.job_id == job_id,
        flips.c.new_state.in_(_HC_FLIP_STATES),
        not_(and_(flips.c.old_state == "late", flips.c.new_state == "up")),
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

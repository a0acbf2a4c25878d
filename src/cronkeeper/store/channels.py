"""Channels (where alerts go) and the notifier's statements on `alerts` and `notifications`.

Races prevented here:
- two notifiers taking one alert: `claim_alert` is `UPDATE … WHERE processed_at IS NULL`
  with a row-count check (and `due_alerts` skips rows another PostgreSQL transaction
  holds), so exactly one process turns an alert into notifications;
- two notifiers sending one notification: `claim_notification` moves `next_attempt_at`
  to a lease deadline only if it still holds the value read (`WHERE status = 'pending'
  AND next_attempt_at = :seen`); a process that dies mid-delivery leaves the lease to
  expire, and another process retries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    RowMapping,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.notifications import Channel, RunFacts
from cronkeeper.errors import Conflict
from cronkeeper.store.alert_facts import JobFacts, job_facts_of
from cronkeeper.store.errors import is_unique_violation
from cronkeeper.store.tables import (
    alerts,
    attempts,
    channels,
    flips,
    jobs,
    notifications,
    projects,
    runs,
)


def _channel(row: RowMapping) -> Channel:
    return Channel(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        kind=row["kind"],
        config=dict(row["config"]),
        is_default=bool(row["is_default"]),
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _skip_locked(conn: AsyncConnection, query: Select[Any]) -> Select[Any]:
    if conn.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def insert_channel(conn: AsyncConnection, channel: Channel) -> None:
    """Insert a channel; a name taken in the project raises Conflict (field `name`)."""
    await _guard_name(conn, channels.insert().values(**channel.__dict__), channel.name)


async def update_channel(conn: AsyncConnection, channel: Channel) -> None:
    """Replace a channel's name, config, default flag and disabled note."""
    values = {
        "name": channel.name,
        "config": channel.config,
        "is_default": channel.is_default,
        "disabled_reason": channel.disabled_reason,
        "updated_at": channel.updated_at,
    }
    statement = update(channels).where(channels.c.id == channel.id).values(**values)
    await _guard_name(conn, statement, channel.name)


async def _guard_name(conn: AsyncConnection, statement: Any, name: str) -> None:
    try:
        await conn.execute(statement)
    except IntegrityError as error:
        if is_unique_violation(error):
            raise Conflict(f"a channel named {name!r} already exists", field="name") from None
        raise


async def get_channel(conn: AsyncConnection, project_id: uuid.UUID, name: str) -> Channel | None:
    """The channel with this name in the project, or None."""
    query = select(channels).where(channels.c.project_id == project_id, channels.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else _channel(row)


async def list_channels(
    conn: AsyncConnection, project_id: uuid.UUID, after_name: str | None, limit: int
) -> list[Channel]:
    """Channels of a project by name, after `after_name` (keyset)."""
    query = select(channels).where(channels.c.project_id == project_id)
    if after_name is not None:
        query = query.where(channels.c.name > after_name)
    rows = await conn.execute(query.order_by(channels.c.name).limit(limit))
    return [_channel(row) for row in rows.mappings()]


async def delete_channel(conn: AsyncConnection, channel_id: uuid.UUID) -> None:
    """Delete a channel and its delivery history."""
    await conn.execute(delete(channels).where(channels.c.id == channel_id))


async def resolve_channels(
    conn: AsyncConnection, project_id: uuid.UUID, refs: Sequence[str]
) -> list[Channel]:
    """The channels a job names (by name or id), or the project's default channels when
    it names none. Names that match nothing are ignored."""
    query = select(channels).where(channels.c.project_id == project_id)
    if refs:
        ids = [uuid.UUID(ref) for ref in refs if _is_uuid(ref)]
        query = query.where(or_(channels.c.name.in_(list(refs)), channels.c.id.in_(ids)))
    else:
        query = query.where(channels.c.is_default.is_(True))
    rows = await conn.execute(query.order_by(channels.c.name))
    return [_channel(row) for row in rows.mappings()]


async def project_channels(
    conn: AsyncConnection, project_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Channel]]:
    """Every channel of the projects, by project, ordered by name (for `pick_channels`)."""
    if not project_ids:
        return {}
    query = select(channels).where(channels.c.project_id.in_(set(project_ids)))
    found: dict[uuid.UUID, list[Channel]] = {}
    for row in (await conn.execute(query.order_by(channels.c.name))).mappings():
        found.setdefault(row["project_id"], []).append(_channel(row))
    return found


def pick_channels(project: Sequence[Channel], refs: Sequence[str]) -> list[Channel]:
    """`resolve_channels` on a project's channels already read (`project_channels`)."""
    if not refs:
        return [channel for channel in project if channel.is_default]
    names = set(refs)
    ids = {uuid.UUID(ref) for ref in refs if _is_uuid(ref)}
    return [channel for channel in project if channel.name in names or channel.id in ids]


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def disable_channel(conn: AsyncConnection, channel_id: uuid.UUID, reason: str) -> None:
    """Mark a channel disabled (a permanent delivery error); an update re-enables it."""
    statement = update(channels).where(
        channels.c.id == channel_id, channels.c.disabled_reason.is_(None)
    )
    await conn.execute(statement.values(disabled_reason=reason))


# ---------------------------------------------------------------------------
# alerts: the monitor's queue


@dataclass(frozen=True)
class Alert:
    id: int
    project_id: uuid.UUID
    job_id: uuid.UUID
    flip_id: int | None
    run_id: uuid.UUID | None
    event: str
    reminder: bool
    reason: str | None
    created_at: datetime
    deliver_at: datetime
    processed_at: datetime | None
    outcome: str | None


def _alert(row: RowMapping) -> Alert:
    return Alert(**{key: row[key] for key in Alert.__dataclass_fields__})


async def due_alerts(conn: AsyncConnection, now: datetime, limit: int) -> list[Alert]:
    """Unprocessed alerts whose delivery time has come, oldest first (rows another
    PostgreSQL notifier holds are skipped)."""
    query = (
        select(alerts)
        .where(alerts.c.processed_at.is_(None), alerts.c.deliver_at <= now)
        .order_by(alerts.c.deliver_at, alerts.c.id)
        .limit(limit)
    )
    rows = await conn.execute(_skip_locked(conn, query))
    return [_alert(row) for row in rows.mappings()]


async def next_alert_at(conn: AsyncConnection) -> datetime | None:
    """When the next unprocessed alert falls due."""
    query = select(func.min(alerts.c.deliver_at)).where(alerts.c.processed_at.is_(None))
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


async def claim_alert(conn: AsyncConnection, alert_id: int, now: datetime, outcome: str) -> bool:
    """Mark an alert processed with its outcome; False if another notifier already did.

    Race: two notifiers on one alert — only the first conditional update changes a row."""
    statement = (
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.processed_at.is_(None))
        .values(processed_at=now, outcome=outcome)
    )
    return (await conn.execute(statement)).rowcount == 1


async def claim_alerts(
    conn: AsyncConnection, alert_ids: Sequence[int], now: datetime, outcome: str
) -> set[int]:
    """`claim_alert` for many alerts in one statement; returns the ids this call claimed.

    Race: as `claim_alert` — only rows still unprocessed change, and RETURNING names them."""
    if not alert_ids:
        return set()
    statement = (
        update(alerts)
        .where(alerts.c.id.in_(list(alert_ids)), alerts.c.processed_at.is_(None))
        .values(processed_at=now, outcome=outcome)
        .returning(alerts.c.id)
    )
    return set((await conn.execute(statement)).scalars())


async def previous_down_alert(conn: AsyncConnection, alert: Alert) -> Alert | None:
    """The job's latest first-time down alert queued before this one."""
    query = (
        select(alerts)
        .where(
            alerts.c.job_id == alert.job_id,
            alerts.c.id < alert.id,
            alerts.c.event == "down",
            alerts.c.reminder.is_(False),
        )
        .order_by(alerts.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else _alert(row)


async def pending_up_after(conn: AsyncConnection, alert: Alert) -> Alert | None:
    """The job's first unprocessed up alert queued after this (down) alert."""
    query = (
        select(alerts)
        .where(
            alerts.c.job_id == alert.job_id,
            alerts.c.id > alert.id,
            alerts.c.event == "up",
            alerts.c.processed_at.is_(None),
        )
        .order_by(alerts.c.id)
        .limit(1)
    )
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else _alert(row)


async def alert_deliver_times(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, datetime]:
    """`deliver_at` of each alert (the start of its dispatch latency)."""
    if not ids:
        return {}
    query = select(alerts.c.id, alerts.c.deliver_at).where(alerts.c.id.in_(set(ids)))
    return {row.id: row.deliver_at for row in await conn.execute(query)}


# ---------------------------------------------------------------------------
# notifications: one per alert × channel


@dataclass(frozen=True)
class Notification:
    id: uuid.UUID
    alert_id: int | None
    channel_id: uuid.UUID
    event: str
    payload: dict[str, Any] | None
    status: str  # pending | sent | failed
    attempts: int
    error: str | None
    latency_ms: int | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None


def _notification(row: RowMapping) -> Notification:
    return Notification(**{key: row[key] for key in Notification.__dataclass_fields__})


async def insert_notification(conn: AsyncConnection, notification: Notification) -> None:
    await conn.execute(notifications.insert().values(**notification.__dict__))


async def insert_notifications(conn: AsyncConnection, rows: Sequence[Notification]) -> None:
    """Insert many notifications with one executemany."""
    if rows:
        await conn.execute(notifications.insert(), [row.__dict__ for row in rows])


async def due_notifications(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[tuple[Notification, Channel]]:
    """Pending notifications whose next attempt is due, with their channel."""
    query = (
        select(notifications)
        .where(notifications.c.status == "pending", notifications.c.next_attempt_at <= now)
        .order_by(notifications.c.next_attempt_at)
        .limit(limit)
    )
    found = [
        _notification(row) for row in (await conn.execute(_skip_locked(conn, query))).mappings()
    ]
    if not found:
        return []
    ids = {item.channel_id for item in found}
    rows = await conn.execute(select(channels).where(channels.c.id.in_(ids)))
    by_id = {row["id"]: _channel(row) for row in rows.mappings()}
    return [(item, by_id[item.channel_id]) for item in found if item.channel_id in by_id]


async def claim_notification(
    conn: AsyncConnection, notification: Notification, lease_until: datetime
) -> bool:
    """Take a due notification for one delivery attempt (until `lease_until`).

    Race: two notifiers on one notification — the update holds only while
    `next_attempt_at` still has the value this process read."""
    statement = (
        update(notifications)
        .where(
            notifications.c.id == notification.id,
            notifications.c.status == "pending",
            notifications.c.next_attempt_at == notification.next_attempt_at,
        )
        .values(next_attempt_at=lease_until)
    )
    return (await conn.execute(statement)).rowcount == 1


async def claim_notifications(
    conn: AsyncConnection, due: Sequence[Notification], lease_until: datetime
) -> set[uuid.UUID]:
    """`claim_notification` for many notifications in one statement; returns the ids
    claimed. Race: as `claim_notification` — a row changes only while its
    `next_attempt_at` still has the value this process read."""
    return await _move_due(conn, due, lease_until)


async def put_off_notifications(
    conn: AsyncConnection, due: Sequence[Notification], until: datetime
) -> set[uuid.UUID]:
    """Make due notifications wait until `until` (their channel's rate limit has no room
    now); returns the ids put off. The same conditional statement as a claim: a row
    another notifier took meanwhile is left alone."""
    return await _move_due(conn, due, until)


async def _move_due(
    conn: AsyncConnection, due: Sequence[Notification], to: datetime
) -> set[uuid.UUID]:
    if not due:
        return set()
    seen = [(item.id, item.next_attempt_at) for item in due]
    statement = (
        update(notifications)
        .where(
            tuple_(notifications.c.id, notifications.c.next_attempt_at).in_(seen),
            notifications.c.status == "pending",
        )
        .values(next_attempt_at=to)
        .returning(notifications.c.id)
    )
    return set((await conn.execute(statement)).scalars())


async def record_attempt(
    conn: AsyncConnection, notification_id: uuid.UUID, values: dict[str, Any]
) -> None:
    """Write the result of a delivery attempt (status, attempts, error, latency, times)."""
    await conn.execute(
        update(notifications).where(notifications.c.id == notification_id).values(**values)
    )


async def record_attempts(
    conn: AsyncConnection, results: Sequence[tuple[uuid.UUID, dict[str, Any]]]
) -> None:
    """`record_attempt` for many notifications: one executemany per set of columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for notification_id, values in results:
        names = tuple(sorted(values))
        groups.setdefault(names, []).append(
            {"b_id": notification_id, **{f"b_{k}": v for k, v in values.items()}}
        )
    for names, params in groups.items():
        statement = (
            update(notifications)
            .where(notifications.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in names})
        )
        await conn.execute(statement, params)


async def next_notification_at(conn: AsyncConnection) -> datetime | None:
    """When the next pending notification falls due."""
    query = select(func.min(notifications.c.next_attempt_at)).where(
        notifications.c.status == "pending"
    )
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


async def list_notifications(
    conn: AsyncConnection,
    channel_id: uuid.UUID,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Notification]:
    """A channel's notifications, newest first, before the keyset position `before`."""
    query = select(notifications).where(notifications.c.channel_id == channel_id)
    if before is not None:
        at, last_id = before
        query = query.where(
            or_(
                notifications.c.created_at < at,
                and_(notifications.c.created_at == at, notifications.c.id < last_id),
            )
        )
    query = query.order_by(notifications.c.created_at.desc(), notifications.c.id.desc())
    rows = await conn.execute(query.limit(limit))
    return [_notification(row) for row in rows.mappings()]


# ---------------------------------------------------------------------------
# the facts a batch of alerts needs, read with a few statements for the whole batch
# (the notifier's `process_due_alerts`; store.alert_facts reads them one alert at a time)


async def jobs_facts(
    conn: AsyncConnection, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, JobFacts]:
    """The jobs alerts are about, by id (deleted jobs are absent)."""
    if not job_ids:
        return {}
    query = (
        select(
            jobs.c.id,
            jobs.c.project_id,
            jobs.c.slug,
            jobs.c.name,
            jobs.c.spec,
            jobs.c.monitor_state,
            jobs.c.state_since,
            projects.c.slug.label("project_slug"),
        )
        .join(projects, projects.c.id == jobs.c.project_id)
        .where(jobs.c.id.in_(set(job_ids)))
    )
    return {row["id"]: job_facts_of(row) for row in (await conn.execute(query)).mappings()}


async def flip_times(conn: AsyncConnection, flip_ids: Sequence[int]) -> dict[int, datetime]:
    """When each flip happened (back-dated to its deadline)."""
    if not flip_ids:
        return {}
    query = select(flips.c.id, flips.c.created_at).where(flips.c.id.in_(set(flip_ids)))
    return {row.id: row.created_at for row in await conn.execute(query)}


async def went_down_by(
    conn: AsyncConnection, job_ids: Sequence[uuid.UUID], before: datetime
) -> dict[uuid.UUID, datetime]:
    """When each job last flipped to down, at or before `before` (jobs that never did are
    absent)."""
    if not job_ids:
        return {}
    query = (
        select(flips.c.job_id, func.max(flips.c.created_at).label("at"))
        .where(
            flips.c.job_id.in_(set(job_ids)),
            flips.c.new_state == "down",
            flips.c.created_at <= before,
        )
        .group_by(flips.c.job_id)
    )
    return {row.job_id: row.at for row in await conn.execute(query)}


async def down_jobs(
    conn: AsyncConnection, project_id: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, str, str, datetime | None]]:
    """(id, slug, name, down since) of the project's first `limit` down jobs by slug."""
    query = (
        select(jobs.c.id, jobs.c.slug, jobs.c.name, jobs.c.state_since)
        .where(jobs.c.project_id == project_id, jobs.c.monitor_state == "down")
        .order_by(jobs.c.slug)
        .limit(limit)
    )
    return [(r.id, r.slug, r.name, r.state_since) for r in await conn.execute(query)]


async def runs_facts(
    conn: AsyncConnection, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, RunFacts]:
    """The runs alerts name, each with the output (body preview) of its last attempt."""
    if not run_ids:
        return {}
    wanted = set(run_ids)
    last = (
        select(attempts.c.run_id, func.max(attempts.c.number).label("number"))
        .where(attempts.c.run_id.in_(wanted))
        .group_by(attempts.c.run_id)
    )
    outputs = {
        row.run_id: row.body_preview
        for row in await conn.execute(
            select(attempts.c.run_id, attempts.c.body_preview).where(
                tuple_(attempts.c.run_id, attempts.c.number).in_(last)
            )
        )
    }
    query = select(
        runs.c.id,
        runs.c.status,
        runs.c.failure_reason,
        runs.c.error,
        runs.c.scheduled_for,
        runs.c.started_at,
        runs.c.finished_at,
        runs.c.duration_ms,
    ).where(runs.c.id.in_(wanted))
    return {
        row.id: RunFacts(
            id=str(row.id),
            status=row.status,
            failure_reason=row.failure_reason,
            error=row.error,
            output_tail=outputs.get(row.id),
            scheduled_for=row.scheduled_for,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_ms=row.duration_ms,
        )
        for row in await conn.execute(query)
    }

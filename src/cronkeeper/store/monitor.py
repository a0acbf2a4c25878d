"""The monitor's statements: due jobs, the runs its rules look at, flips, alerts, and the
small shared facts (`system_values`) that reveal Cronkeeper's own outages.

Race: two monitors (PostgreSQL) checking the same job — `lock_due_jobs` locks the due
rows (`FOR UPDATE SKIP LOCKED`), so each job is checked by one process at a time; the
other takes different jobs. SQLite has one writer at a time.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.monitor import COUNTED, Anchor, FinishedRun, MaintenanceWindow
from cronkeeper.domain.states import MonitorState, RunStatus
from cronkeeper.store.bulk import SQLITE, reader
from cronkeeper.store.claims import insert_into, skip_locked
from cronkeeper.store.specs import SPEC_TEXT, spec_of
from cronkeeper.store.tables import (
    alerts,
    flips,
    jobs,
    maintenance_windows,
    runs,
    system_values,
)


@dataclass(frozen=True)
class MonitoredJob:
    """A job as the monitor sees it."""

    id: uuid.UUID
    project_id: uuid.UUID
    spec: JobSpec
    state: MonitorState
    state_since: datetime | None
    realert_at: datetime | None
    flapping_since: datetime | None
    deadline_at: datetime | None
    created_at: datetime


_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.project_id,
    SPEC_TEXT,
    jobs.c.monitor_state,
    jobs.c.state_since,
    jobs.c.realert_at,
    jobs.c.flapping_since,
    jobs.c.deadline_at,
    jobs.c.created_at,
)


def _monitored(row: RowMapping) -> MonitoredJob:
    return MonitoredJob(
        id=row["id"],
        project_id=row["project_id"],
        spec=spec_of(row["id"], row["spec_text"]),
        state=MonitorState(row["monitor_state"]),
        state_since=row["state_since"],
        realert_at=row["realert_at"],
        flapping_since=row["flapping_since"],
        deadline_at=row["deadline_at"],
        created_at=row["created_at"],
    )


async def lock_due_jobs(conn: AsyncConnection, now: datetime, limit: int) -> list[MonitoredJob]:
    """Active jobs whose monitor deadline has come, earliest (pokes) first, locked."""
    query = (
        select(*_JOB_COLUMNS)
        .where(jobs.c.status == "active", jobs.c.deadline_at <= now)
        .order_by(jobs.c.deadline_at)
        .limit(limit)
    )
    rows = (await conn.execute(skip_locked(conn, query))).mappings()
    return [_monitored(row) for row in rows]


async def next_deadline(conn: AsyncConnection) -> datetime | None:
    """The earliest monitor deadline of any active job (the monitor sleeps until then)."""
    query = select(func.min(jobs.c.deadline_at)).where(jobs.c.status == "active")
    value: datetime | None = (await conn.execute(query)).scalar_one()
    return value


async def recent_counted_runs(
    conn: AsyncConnection, job_ids: Collection[uuid.UUID], per_job: int
) -> dict[uuid.UUID, list[FinishedRun]]:
    """The newest `per_job` counted runs (succeeded, failed, missed — not those missed
    during our own outage) of each job, newest first: one query over the job/slot index."""
    if not job_ids:
        return {}
    ranked = (
        select(
            runs.c.id,
            runs.c.job_id,
            runs.c.status,
            runs.c.finished_at,
            runs.c.ordered_at,
            runs.c.failure_reason,
            func.row_number()
            .over(
                partition_by=runs.c.job_id,
                order_by=(runs.c.ordered_at.desc(), runs.c.id.desc()),
            )
            .label("position"),
        )
        .where(
            runs.c.job_id.in_(list(job_ids)),
            runs.c.status.in_([status.value for status in COUNTED]),
            runs.c.during_outage.is_(False),
        )
        .subquery()
    )
    query = (
        select(ranked)
        .where(ranked.c.position <= per_job)
        .order_by(ranked.c.job_id, ranked.c.position)
    )
    found: dict[uuid.UUID, list[FinishedRun]] = {}
    for row in await conn.execute(query):
        at = row.finished_at or row.ordered_at
        run = FinishedRun(row.id, RunStatus(row.status), at, row.failure_reason)
        found.setdefault(row.job_id, []).append(run)
    return found


async def anchors(conn: AsyncConnection, job_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Anchor]:
    """Each heartbeat job's last sign: its newest run by time — a ping (the run's start)
    or a slot already recorded (a missed or skipped run carries `scheduled_for`)."""
    if not job_ids:
        return {}
    ranked = (
        select(
            runs.c.job_id,
            runs.c.ordered_at,
            runs.c.scheduled_for,
            func.row_number()
            .over(
                partition_by=runs.c.job_id,
                order_by=(runs.c.ordered_at.desc(), runs.c.id.desc()),
            )
            .label("position"),
        )
        .where(runs.c.job_id.in_(list(job_ids)))
        .subquery()
    )
    query = select(ranked).where(ranked.c.position == 1)
    return {
        row.job_id: Anchor(row.ordered_at, is_slot=row.scheduled_for is not None)
        for row in await conn.execute(query)
    }


async def open_heartbeat_runs(
    conn: AsyncConnection, job_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, datetime]]]:
    """(run id, started_at) of the running heartbeat runs of these jobs."""
    if not job_ids:
        return {}
    query = select(runs.c.id, runs.c.job_id, runs.c.started_at).where(
        runs.c.job_id.in_(list(job_ids)),
        runs.c.status == "running",
        runs.c.source == "heartbeat",
    )
    found: dict[uuid.UUID, list[tuple[uuid.UUID, datetime]]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.job_id, []).append((row.id, row.started_at))
    return found


async def fail_running_runs(conn: AsyncConnection, closings: Sequence[dict[str, Any]]) -> None:
    """Close running runs as failed (`id`, `finished_at`, `duration_ms`, `failure_reason`,
    `error` per row); a run that stopped running meanwhile is left alone."""
    if not closings:
        return
    statement = (
        update(runs)
        .where(runs.c.id == bindparam("b_id"), runs.c.status == "running")
        .values(
            status="failed",
            finished_at=bindparam("b_finished_at"),
            duration_ms=bindparam("b_duration_ms"),
            failure_reason=bindparam("b_failure_reason"),
            error=bindparam("b_error"),
        )
    )
    await conn.execute(statement, [{f"b_{k}": v for k, v in row.items()} for row in closings])


async def insert_flip(conn: AsyncConnection, row: dict[str, Any]) -> int:
    """Record a flip; returns its id."""
    result = await conn.execute(flips.insert().returning(flips.c.id), row)
    flip_id: int = result.scalar_one()
    return flip_id


async def insert_alerts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue messages for the notifier."""
    if rows:
        await conn.execute(alerts.insert(), list(rows))


#: The job columns a check writes back, every row carrying all of them.
JOB_FIELDS = (
    "monitor_state",
    "state_since",
    "fail_streak",
    "ok_streak",
    "realert_at",
    "flapping_since",
    "deadline_at",
)


async def update_jobs(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Write each checked job's monitor fields (`id` plus JOB_FIELDS per row)."""
    if not rows:
        return
    statement = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in JOB_FIELDS})
    )
    await conn.execute(statement, [{f"b_{k}": v for k, v in row.items()} for row in rows])


async def flip_times(conn: AsyncConnection, job_id: uuid.UUID, since: datetime) -> list[datetime]:
    """When the job flipped between up and down since `since` (flapping)."""
    query = select(flips.c.created_at).where(
        flips.c.job_id == job_id,
        flips.c.created_at > since,
        flips.c.new_state.in_(["up", "down"]),
        flips.c.old_state != "new",
    )
    return list((await conn.execute(query)).scalars())


async def down_alert_since(conn: AsyncConnection, job_id: uuid.UUID, since: datetime) -> bool:
    """Whether a (non-reminder) down alert about the job was queued since `since`."""
    query = (
        select(alerts.c.id)
        .where(
            alerts.c.job_id == job_id,
            alerts.c.event == "down",
            alerts.c.created_at >= since,
        )
        .limit(1)
    )
    return (await conn.execute(query)).first() is not None


async def states_by_slug(
    conn: AsyncConnection, project_id: uuid.UUID, slugs: Collection[str]
) -> dict[str, str]:
    """monitor_state of the project's jobs with these slugs (depends_on)."""
    if not slugs:
        return {}
    query = select(jobs.c.slug, jobs.c.monitor_state).where(
        jobs.c.project_id == project_id, jobs.c.slug.in_(list(slugs))
    )
    return {row.slug: row.monitor_state for row in await conn.execute(query)}


async def set_state(
    conn: AsyncConnection,
    job_id: uuid.UUID,
    old: str,
    new: str,
    at: datetime,
    reason: str,
) -> bool:
    """Move a job's monitor state from `old` to `new` with a flip (pause, resume)."""
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.monitor_state == old)
        .values(
            monitor_state=new,
            state_since=at,
            fail_streak=0,
            ok_streak=0,
            realert_at=None,
            flapping_since=None,
            deadline_at=None,
        )
    )
    if result.rowcount == 0:
        return False
    await insert_flip(
        conn,
        {"job_id": job_id, "old_state": old, "new_state": new, "reason": reason, "created_at": at},
    )
    return True


# -- maintenance windows --------------------------------------------------------------


def _window(row: RowMapping | Mapping[str, Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        mode=row["mode"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        schedule=row["schedule"],
        duration_s=row["duration_s"],
        timezone=row["timezone"],
        job_slugs=tuple(row["job_slugs"]),
        tags=tuple(row["tags"]),
    )


#: The maintenance windows of some projects (`project_ids`), by name: `windows_of` runs it
#: through SQLAlchemy, `sqlite_windows_of` as its SQLite text (`_sqlite_windows_of`).
_WINDOWS_OF = (
    select(maintenance_windows)
    .where(maintenance_windows.c.project_id.in_(bindparam("project_ids", expanding=True)))
    .order_by(maintenance_windows.c.name)
)


async def windows_of(
    conn: AsyncConnection, project_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[MaintenanceWindow]]:
    """The maintenance windows of these projects, by name."""
    if not project_ids:
        return {}
    found: dict[uuid.UUID, list[MaintenanceWindow]] = {}
    rows = await conn.execute(_WINDOWS_OF, {"project_ids": list(project_ids)})
    for row in rows.mappings():
        found.setdefault(row["project_id"], []).append(_window(row))
    return found


def sqlite_windows_of(
    db: sqlite3.Connection, project_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[MaintenanceWindow]]:
    """`windows_of` on the SQLite connection's thread, inside its write transaction (read
    for the slot pass; each column read as SQLAlchemy reads it)."""
    if not project_ids:
        return {}
    query = _sqlite_windows_of(len(project_ids))
    found: dict[uuid.UUID, list[MaintenanceWindow]] = {}
    for row in db.execute(query, [project_id.hex for project_id in project_ids]):
        window = _window(
            {
                name: value if value is None or read is None else read(value)
                for name, read, value in zip(_WINDOW_COLUMNS, _WINDOW_READERS, row, strict=True)
            }
        )
        found.setdefault(window.project_id, []).append(window)
    return found


_WINDOW_COLUMNS = tuple(column.name for column in _WINDOWS_OF.selected_columns)
_WINDOW_READERS = tuple(reader(column.type, SQLITE) for column in _WINDOWS_OF.selected_columns)


@functools.lru_cache(maxsize=256)
def _sqlite_windows_of(count: int) -> str:
    """`_WINDOWS_OF` as SQLite's driver runs it for `count` projects (`IN (?, …)`)."""
    compiled = _WINDOWS_OF.compile(dialect=SQLITE)
    return compiled.construct_expanded_state({"project_ids": [None] * count}).statement


async def insert_window(conn: AsyncConnection, row: dict[str, Any]) -> MaintenanceWindow:
    await conn.execute(maintenance_windows.insert(), row)
    query = select(maintenance_windows).where(maintenance_windows.c.id == row["id"])
    return _window((await conn.execute(query)).mappings().one())


async def get_window(
    conn: AsyncConnection, project_id: uuid.UUID, name: str
) -> MaintenanceWindow | None:
    query = select(maintenance_windows).where(
        maintenance_windows.c.project_id == project_id, maintenance_windows.c.name == name
    )
    row = (await conn.execute(query)).mappings().first()
    return _window(row) if row else None


async def delete_window(conn: AsyncConnection, window_id: uuid.UUID) -> None:
    await conn.execute(maintenance_windows.delete().where(maintenance_windows.c.id == window_id))


# -- system values ---------------------------------------------------------------------


async def get_value(conn: AsyncConnection, key: str) -> str | None:
    query = select(system_values.c.value).where(system_values.c.key == key)
    value: str | None = (await conn.execute(query)).scalar_one_or_none()
    return value


async def set_value(conn: AsyncConnection, key: str, value: str, now: datetime) -> None:
    """Insert or replace a shared value.

    Race: two processes storing the same key for the first time (two monitors ticking on
    PostgreSQL) — one statement with ON CONFLICT lets both through; the later write wins."""
    statement = insert_into(conn, system_values).values(key=key, value=value, updated_at=now)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[system_values.c.key],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )


async def get_json(conn: AsyncConnection, key: str) -> Any:
    raw = await get_value(conn, key)
    return None if raw is None else json.loads(raw)


async def flip_log(
    conn: AsyncConnection, job_ids: Collection[uuid.UUID], since: datetime
) -> dict[uuid.UUID, list[datetime]]:
    """`flip_times` of many jobs at once (one statement for a batch of checks)."""
    if not job_ids:
        return {}
    query = select(flips.c.job_id, flips.c.created_at).where(
        flips.c.job_id.in_(list(job_ids)),
        flips.c.created_at > since,
        flips.c.new_state.in_(["up", "down"]),
        flips.c.old_state != "new",
    )
    found: dict[uuid.UUID, list[datetime]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.job_id, []).append(row.created_at)
    return found


async def insert_flips(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Record many flips with one executemany; returns their ids, in the order given."""
    if not rows:
        return []
    statement = flips.insert().returning(flips.c.id, sort_by_parameter_order=True)
    return list((await conn.execute(statement, list(rows))).scalars())


async def delete_old_monitor_history(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Delete up to `limit` flips, then processed alerts, created before `before` (their
    notifications go with them by cascade); returns how many rows were deleted."""
    oldest_flips = select(flips.c.id).where(flips.c.created_at < before).limit(limit)
    flip_ids = [row.id for row in await conn.execute(oldest_flips)]
    if flip_ids:
        await conn.execute(flips.delete().where(flips.c.id.in_(flip_ids)))
        return len(flip_ids)
    oldest_alerts = (
        select(alerts.c.id)
        .where(alerts.c.created_at < before, alerts.c.processed_at.is_not(None))
        .limit(limit)
    )
    alert_ids = [row.id for row in await conn.execute(oldest_alerts)]
    if alert_ids:
        await conn.execute(alerts.delete().where(alerts.c.id.in_(alert_ids)))
    return len(alert_ids)

"""Runs, attempts and events: reads, keyset pages, and the plain inserts.

The state changes that can race (claims, leases, finishing, cancelling) are in claims.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, delete, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import Attempt, Event, Run
from cronkeeper.store.tables import attempts, events, jobs, runs


@dataclass(frozen=True)
class RunFilter:
    project_id: uuid.UUID
    job_id: uuid.UUID | None = None
    status: str | None = None
    source: str | None = None
    job_text: str | None = None  # case-insensitive substring of the job's slug or name
    since: datetime | None = None
    until: datetime | None = None
    sort: str = "created_at"  # or "scheduled_for" (runs without a slot sort by creation)
    descending: bool = True
    after: tuple[datetime, uuid.UUID] | None = None  # keyset: (sort value, id) of the last row
    limit: int = 50


def run_from_row(row: RowMapping) -> Run:
    """A Run from a `runs` row."""
    return Run(**{name: row[name] for name in Run.__dataclass_fields__})


def _attempt(row: RowMapping) -> Attempt:
    return Attempt(**{name: row[name] for name in Attempt.__dataclass_fields__})


def _event(row: RowMapping) -> Event:
    return Event(**{name: row[name] for name in Event.__dataclass_fields__})


async def insert_run(conn: AsyncConnection, values: dict[str, Any]) -> Run:
    """Insert one run (manual, replay, trigger…); `values` are `runs` columns."""
    values = {"ordered_at": values.get("scheduled_for") or values["created_at"], **values}
    await conn.execute(runs.insert().values(**values))
    run = await get_run(conn, values["id"])
    assert run is not None
    return run


async def get_run(conn: AsyncConnection, run_id: uuid.UUID) -> Run | None:
    """The run with this id, or None."""
    row = (await conn.execute(select(runs).where(runs.c.id == run_id))).mappings().first()
    return run_from_row(row) if row else None


def _sort_column(where: RunFilter) -> ColumnElement[datetime]:
    return runs.c.ordered_at if where.sort == "scheduled_for" else runs.c.created_at


async def list_runs(conn: AsyncConnection, where: RunFilter) -> list[Run]:
    """One page of runs in the requested order (index-backed keyset pagination)."""
    column = _sort_column(where)
    query = select(runs).where(*_conditions(where, column))
    if where.after is not None:
        # A row-value comparison, so the (job_id | project_id, column, id) index serves
        # deep pages with a range scan instead of filtering every earlier row.
        position = tuple_(column, runs.c.id)
        after = tuple_(
            literal(where.after[0], type_=column.type),
            literal(where.after[1], type_=runs.c.id.type),
        )
        query = query.where(position < after if where.descending else position > after)
    order = (column.desc(), runs.c.id.desc()) if where.descending else (column, runs.c.id)
    rows = (await conn.execute(query.order_by(*order).limit(where.limit))).mappings()
    return [run_from_row(row) for row in rows]


def _conditions(where: RunFilter, column: ColumnElement[datetime]) -> list[ColumnElement[bool]]:
    # One job's runs are all in its project: filtering on both would steer SQLite to the
    # project index instead of the job's.
    if where.job_id is not None:
        conditions = [runs.c.job_id == where.job_id]
    else:
        conditions = [runs.c.project_id == where.project_id]
    if where.status:
        conditions.append(runs.c.status == where.status)
    if where.source:
        conditions.append(runs.c.source == where.source)
    if where.since:
        conditions.append(column >= where.since)
    if where.until:
        conditions.append(column < where.until)
    if where.job_text:
        pattern = f"%{where.job_text.lower()}%"
        matching = select(jobs.c.id).where(
            jobs.c.project_id == where.project_id,
            or_(func.lower(jobs.c.slug).like(pattern), func.lower(jobs.c.name).like(pattern)),
        )
        conditions.append(runs.c.job_id.in_(matching))
    return conditions


async def list_attempts(conn: AsyncConnection, run_id: uuid.UUID) -> list[Attempt]:
    """Attempts of a run, first to last."""
    query = select(attempts).where(attempts.c.run_id == run_id).order_by(attempts.c.number)
    return [_attempt(row) for row in (await conn.execute(query)).mappings()]


async def list_events(
    conn: AsyncConnection, run_id: uuid.UUID, after_sequence: int = 0, limit: int = 1000
) -> list[Event]:
    """Events of a run in `sequence_num` order, after the given sequence number."""
    query = (
        select(events)
        .where(events.c.run_id == run_id, events.c.sequence_num > after_sequence)
        .order_by(events.c.sequence_num)
        .limit(limit)
    )
    return [_event(row) for row in (await conn.execute(query)).mappings()]


async def append_events_many(
    conn: AsyncConnection,
    entries: Sequence[tuple[uuid.UUID, str, datetime, str | None, dict[str, Any] | None]],
) -> None:
    """Append (run id, type, at, message, data) events to several runs at once, each after
    its run's last sequence number (same single-writer argument as `append_events`)."""
    if not entries:
        return
    run_ids = list({entry[0] for entry in entries})
    query = (
        select(events.c.run_id, func.max(events.c.sequence_num))
        .where(events.c.run_id.in_(run_ids))
        .group_by(events.c.run_id)
    )
    last = {run_id: int(n) for run_id, n in (await conn.execute(query)).all()}
    rows = []
    for run_id, kind, at, message, data in entries:
        last[run_id] = last.get(run_id, 0) + 1
        rows.append(
            {
                "run_id": run_id,
                "sequence_num": last[run_id],
                "type": kind,
                "at": at,
                "message": message,
                "data": data,
            }
        )
    await conn.execute(events.insert(), rows)


async def append_events(
    conn: AsyncConnection,
    run_id: uuid.UUID,
    entries: Sequence[tuple[str, datetime, str | None, dict[str, Any] | None]],
) -> None:
    """Append (type, at, message, data) events after the run's last sequence number.

    Only the lease holder (or the one transaction that changes the run) appends, so
    reading the maximum inside the transaction cannot hand out a number twice.
    """
    await append_events_many(conn, [(run_id, *entry) for entry in entries])


async def insert_attempts(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Record finished attempts (`attempts` columns), in one statement."""
    if rows:
        await conn.execute(attempts.insert(), [{"id": uuid.uuid4(), **row} for row in rows])


async def insert_opening_events(
    conn: AsyncConnection, entries: Sequence[tuple[uuid.UUID, str, datetime, str]]
) -> None:
    """The first event (sequence 1) of each of many brand-new runs, in one statement."""
    if entries:
        rows = [
            {"run_id": run_id, "sequence_num": 1, "type": kind, "at": at, "message": message}
            for run_id, kind, at, message in entries
        ]
        await conn.execute(events.insert(), rows)


async def queue_summary(conn: AsyncConnection) -> dict[str, tuple[int, datetime | None]]:
    """Per queue: how many runs wait, and when the oldest of them was queued."""
    query = (
        select(runs.c.queue, func.count(), func.min(runs.c.queued_at))
        .where(runs.c.status == "queued")
        .group_by(runs.c.queue)
    )
    return {queue: (int(count), oldest) for queue, count, oldest in await conn.execute(query)}


async def delete_old_runs(
    conn: AsyncConnection, project_id: uuid.UUID, before: datetime, limit: int
) -> int:
    """Delete up to `limit` final runs created before `before` (attempts, events and steps
    go with them by cascade); returns how many were deleted."""
    oldest = (
        select(runs.c.id)
        .where(
            runs.c.project_id == project_id,
            runs.c.created_at < before,
            runs.c.status.notin_(("queued", "running", "suspended")),
        )
        .order_by(runs.c.created_at)
        .limit(limit)
    )
    ids = [row.id for row in await conn.execute(oldest)]
    if not ids:
        return 0
    await conn.execute(delete(runs).where(runs.c.id.in_(ids)))
    return len(ids)

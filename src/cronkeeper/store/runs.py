"""Runs, attempts and events: reads, keyset pages, and the plain inserts.

The state changes that can race (claims, leases, finishing, cancelling) are in claims.py.
The `sqlite_*` functions are inserts as plain `sqlite3` calls on the SQLite connection's
own thread, inside a transaction `Database.write_on_thread` holds (store/bulk.py).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Integer,
    RowMapping,
    Select,
    String,
    bindparam,
    delete,
    func,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import Attempt, Event, Run
from cronkeeper.store.bulk import SQLITE, BulkStatement
from cronkeeper.store.sqlite_driver import execute_all
from cronkeeper.store.tables import attempts, events, jobs, projects, runs


@dataclass(frozen=True)
class JobRef:
    """A job named by slugs, looked up inside the statement that reads its runs: a page
    of one job's runs is then one round trip instead of three (project, job, runs)."""

    project_slug: str
    slug: str


@dataclass(frozen=True)
class RunFilter:
    project_id: uuid.UUID | None  # None only with a JobRef
    job_id: uuid.UUID | JobRef | None = None
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


class ListedRun(NamedTuple):
    """A run as a history page shows it: only the columns the page needs (a page reads
    no lease, queue or slot-order column and converts no value it will not show). A named
    tuple: made 50 times per page, a frozen dataclass took 8x longer to build."""

    id: uuid.UUID
    job_id: uuid.UUID | None  # None on a page of a JobRef: every run is that job's
    source: str
    status: str
    scheduled_for: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    drift_ms: int | None
    attempts: int
    max_attempts: int
    failure_reason: str | None
    error: str | None
    payload: Any
    trace_id: str | None
    replay_of: uuid.UUID | None
    node: str | None
    during_outage: bool
    created_at: datetime


#: `ListedRun`'s columns, in its field order (rows become ListedRun positionally).
_LISTED = tuple(runs.c[name] for name in ListedRun._fields)


async def list_runs(conn: AsyncConnection, where: RunFilter) -> list[Run]:
    """One page of whole runs in the requested order (index-backed keyset pagination)."""
    rows = await conn.execute(_page_statement(True, _Shape.of(where)), _values(where))
    return [run_from_row(row) for row in rows.mappings()]


async def list_run_page(conn: AsyncConnection, where: RunFilter) -> list[ListedRun]:
    """One page of runs as lists show them, in the requested order (as `list_runs`)."""
    rows = await conn.execute(_page_statement(False, _Shape.of(where)), _values(where))
    return [ListedRun(*row) for row in rows]


@dataclass(frozen=True)
class _Shape:
    """Which conditions a page's statement has. The statement is built once per shape,
    with a bound parameter for every value (`_values`): building it anew for every
    request cost more than SQLite spends on the page."""

    job: str  # "ref" (a JobRef), "id" or "project" (the whole project's runs)
    status: bool
    source: bool
    since: bool
    until: bool
    job_text: bool
    sort: str
    descending: bool
    after: bool

    @classmethod
    def of(cls, where: RunFilter) -> _Shape:
        job = where.job_id
        assert where.project_id is not None or not where.job_text, "job text needs the project"
        return cls(
            "ref" if isinstance(job, JobRef) else "project" if job is None else "id",
            bool(where.status),
            bool(where.source),
            bool(where.since),
            bool(where.until),
            bool(where.job_text),
            where.sort,
            where.descending,
            where.after is not None,
        )


def _values(where: RunFilter) -> dict[str, Any]:
    """The bound values of `where`'s page statement."""
    values: dict[str, Any] = {"limit": where.limit, "project_id": where.project_id}
    if isinstance(where.job_id, JobRef):
        values.update(project_slug=where.job_id.project_slug, job_slug=where.job_id.slug)
    else:
        values["job_id"] = where.job_id
    values.update(status=where.status, source=where.source, since=where.since)
    values.update(until=where.until, pattern=f"%{(where.job_text or '').lower()}%")
    if where.after is not None:
        values.update(after_at=where.after[0], after_id=where.after[1])
    return values


@functools.lru_cache(maxsize=256)
def _page_statement(whole: bool, shape: _Shape) -> Select[Any]:
    """The page's statement: all of `runs` (`whole`) or the listed columns."""
    column = runs.c.ordered_at if shape.sort == "scheduled_for" else runs.c.created_at
    if whole:
        query = select(runs)
    elif shape.job == "ref":  # the job is named: its id would be read and parsed 50 times
        query = select(*(null().label("job_id") if c is runs.c.job_id else c for c in _LISTED))
    else:
        query = select(*_LISTED)
    query = query.where(*_conditions(shape, column))
    if shape.after:
        # A row-value comparison, so the (job_id | project_id, column, id) index serves
        # deep pages with a range scan instead of filtering every earlier row.
        position = tuple_(column, runs.c.id)
        after = tuple_(
            bindparam("after_at", type_=column.type), bindparam("after_id", type_=runs.c.id.type)
        )
        query = query.where(position < after if shape.descending else position > after)
    order = (column.desc(), runs.c.id.desc()) if shape.descending else (column, runs.c.id)
    return query.order_by(*order).limit(bindparam("limit", type_=Integer))


def _conditions(shape: _Shape, column: ColumnElement[datetime]) -> list[ColumnElement[bool]]:
    # One job's runs are all in its project: filtering on both would steer SQLite to the
    # project index instead of the job's.
    if shape.job == "ref":
        conditions = [runs.c.job_id == _job_id_of_slugs()]
    elif shape.job == "id":
        conditions = [runs.c.job_id == bindparam("job_id", type_=runs.c.job_id.type)]
    else:
        conditions = [runs.c.project_id == bindparam("project_id", type_=runs.c.project_id.type)]
    if shape.status:
        conditions.append(runs.c.status == bindparam("status"))
    if shape.source:
        conditions.append(runs.c.source == bindparam("source"))
    if shape.since:
        conditions.append(column >= bindparam("since", type_=column.type))
    if shape.until:
        conditions.append(column < bindparam("until", type_=column.type))
    if shape.job_text:
        pattern = bindparam("pattern", type_=String)
        matching = select(jobs.c.id).where(
            jobs.c.project_id == bindparam("project_id", type_=runs.c.project_id.type),
            or_(func.lower(jobs.c.slug).like(pattern), func.lower(jobs.c.name).like(pattern)),
        )
        conditions.append(runs.c.job_id.in_(matching))
    return conditions


def _job_id_of_slugs() -> ColumnElement[uuid.UUID]:
    """The job's id as a scalar subquery (NULL, matching no run, when there is no such job)."""
    return (
        select(jobs.c.id)
        .join(projects, projects.c.id == jobs.c.project_id)
        .where(projects.c.slug == bindparam("project_slug"), jobs.c.slug == bindparam("job_slug"))
        .scalar_subquery()
    )


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
    rows = [dict(zip(_EVENT_COLUMNS, row, strict=True)) for row in _numbered(entries, last)]
    await conn.execute(events.insert(), rows)


def sqlite_append_events_many(
    db: sqlite3.Connection,
    entries: Sequence[tuple[uuid.UUID, str, datetime, str | None, dict[str, Any] | None]],
) -> None:
    """`append_events_many` on the SQLite connection's thread, inside its write transaction."""
    if not entries:
        return
    asked = {entry[0].hex: entry[0] for entry in entries}
    found = db.execute(_SQLITE_LAST_EVENTS, (json.dumps(list(asked)),)).fetchall()
    last = {asked[run_hex]: int(n) for run_hex, n in found}
    execute_all(db, [_INSERT_EVENTS.prepared(SQLITE, _numbered(entries, last))])


_EVENT_COLUMNS = ("run_id", "sequence_num", "type", "at", "message", "data")
_INSERT_EVENTS = BulkStatement(events.insert(), _EVENT_COLUMNS)
_SQLITE_LAST_EVENTS = (
    "SELECT run_id, max(sequence_num) FROM events "
    "WHERE run_id IN (SELECT value FROM json_each(?)) GROUP BY run_id"
)


def _numbered(
    entries: Sequence[tuple[uuid.UUID, str, datetime, str | None, dict[str, Any] | None]],
    last: dict[uuid.UUID, int],
) -> list[tuple[Any, ...]]:
    """The entries as `_EVENT_COLUMNS` rows, numbered on from each run's `last` (updated)."""
    rows = []
    for run_id, kind, at, message, data in entries:
        last[run_id] = last.get(run_id, 0) + 1
        rows.append((run_id, last[run_id], kind, at, message, data))
    return rows


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


def sqlite_insert_attempts(db: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """`insert_attempts` on the SQLite connection's thread, inside its write transaction
    (each row has every column but the id)."""
    values = [(uuid.uuid4(), *(row[name] for name in _ATTEMPT_COLUMNS[1:])) for row in rows]
    execute_all(db, [_INSERT_ATTEMPTS.prepared(SQLITE, values)])


_ATTEMPT_COLUMNS = tuple(column.name for column in attempts.c)  # "id" first
_INSERT_ATTEMPTS = BulkStatement(attempts.insert(), _ATTEMPT_COLUMNS)


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


def sqlite_insert_opening_events(
    db: sqlite3.Connection, entries: Sequence[tuple[uuid.UUID, str, datetime, str]]
) -> None:
    """`insert_opening_events` on the SQLite connection's thread, inside its write
    transaction."""
    rows = [(run_id, 1, kind, at, message) for run_id, kind, at, message in entries]
    execute_all(db, [_INSERT_OPENING_EVENTS.prepared(SQLITE, rows)])


_INSERT_OPENING_EVENTS = BulkStatement(events.insert(), _EVENT_COLUMNS[:-1])  # no data


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

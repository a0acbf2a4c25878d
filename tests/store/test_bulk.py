"""The hot-path statements on SQLite and PostgreSQL: rows written by a BulkStatement read
back exactly as rows written by the equivalent Core statement, literals of the statement
itself apply, and SQLite's one-hop cursor reports rows, counts and errors as the driver
does. Values given already as SQLite stores them (`SQLITE_VALUES`) are the very text the
column types make, and `arranged` puts them where `prepared` puts converted ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store.bulk import (
    PYTHON_VALUES,
    SQLITE,
    SQLITE_VALUES,
    BulkStatement,
    sqlite_json,
    sqlite_time,
    sqlite_uuid,
    sqlite_uuid7,
)
from cronkeeper.store.tables import events, jobs, runs

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
RUN_KEYS = (
    "id",
    "project_id",
    "job_id",
    "source",
    "status",
    "started_at",
    "created_at",
    "ordered_at",
)


async def a_job(ctx: Context) -> tuple[uuid.UUID, uuid.UUID]:
    async with ctx.db.write() as conn:
        project = await ensure_project(conn, "default", AT)
        job_id = uuid.uuid4()
        await conn.execute(
            jobs.insert().values(
                id=job_id,
                project_id=project.id,
                slug="hb",
                name="hb",
                kind="heartbeat",
                status="active",
                timezone="UTC",
                spec={"slug": "hb"},
                created_at=AT,
                updated_at=AT,
            )
        )
    return project.id, job_id


async def test_bulk_rows_read_back_like_core_rows(ctx: Context) -> None:
    project_id, job_id = await a_job(ctx)
    core_id, bulk_id = uuid.uuid4(), uuid.uuid4()
    values = ("heartbeat", "running", AT, AT, AT)
    async with ctx.db.write() as conn:
        await conn.execute(
            runs.insert(),
            [dict(zip(RUN_KEYS, (core_id, project_id, job_id, *values), strict=True))],
        )
        await BulkStatement(runs.insert(), RUN_KEYS).execute(
            conn, [(bulk_id, project_id, job_id, *values)]
        )
        await BulkStatement(
            events.insert(), ("run_id", "sequence_num", "type", "at", "data")
        ).execute(
            conn, [(bulk_id, 1, "log", AT, {"rid": "x", "n": 1}), (bulk_id, 2, "log", AT, None)]
        )
    async with ctx.db.read() as conn:
        rows = {row.id: row for row in await conn.execute(select(runs))}
        logged = (await conn.execute(select(events.c.data).order_by(events.c.sequence_num))).all()

    columns = [column.name for column in runs.c if column.name != "id"]
    assert [getattr(rows[bulk_id], c) for c in columns] == [
        getattr(rows[core_id], c) for c in columns
    ]
    assert rows[bulk_id].started_at == AT
    assert [row.data for row in logged] == [{"rid": "x", "n": 1}, None]


async def test_literals_of_the_statement_itself_still_apply(ctx: Context) -> None:
    project_id, job_id = await a_job(ctx)
    running, done = uuid.uuid4(), uuid.uuid4()
    insert = BulkStatement(runs.insert(), RUN_KEYS)
    close = BulkStatement(
        update(runs)
        .where(runs.c.id == bindparam("b_id"), runs.c.status == "running")
        .values(status=bindparam("b_status"), finished_at=bindparam("b_at")),
        ("b_status", "b_at", "b_id"),
    )
    async with ctx.db.write() as conn:
        await insert.execute(
            conn,
            [
                (running, project_id, job_id, "heartbeat", "running", AT, AT, AT),
                (done, project_id, job_id, "heartbeat", "cancelled", AT, AT, AT),
            ],
        )
        later = AT + timedelta(seconds=5)
        await close.execute(conn, [("succeeded", later, running), ("succeeded", later, done)])
    async with ctx.db.read() as conn:
        found = dict((await conn.execute(select(runs.c.id, runs.c.status))).all())

    assert found == {running: "succeeded", done: "cancelled"}  # `status = 'running'` held


async def test_sqlite_one_hop_cursor_reports_rows_counts_and_errors(sqlite_url: str) -> None:
    from cronkeeper.service.setup import open_context

    ctx = await open_context(sqlite_url)
    try:
        project_id, _ = await a_job(ctx)
        async with ctx.db.write() as conn:
            changed = await conn.execute(
                update(jobs).where(jobs.c.kind == "heartbeat").values(status="paused")
            )
            assert changed.rowcount == 1
            rows = (await conn.execute(text("SELECT slug, status FROM jobs"))).all()
            assert [tuple(row) for row in rows] == [("hb", "paused")]
        with pytest.raises(IntegrityError):
            async with ctx.db.write() as conn:
                await conn.execute(
                    runs.insert().values(
                        dict(
                            zip(
                                RUN_KEYS,
                                (
                                    uuid.uuid4(),
                                    project_id,
                                    uuid.uuid4(),
                                    "heartbeat",
                                    "running",
                                    AT,
                                    AT,
                                    AT,
                                ),
                                strict=True,
                            )
                        )
                    )
                )  # no such job: the foreign key refuses it
        async with ctx.db.read() as conn:
            assert (await conn.execute(select(runs.c.id))).all() == []
    finally:
        await ctx.db.dispose()


@pytest.mark.parametrize(
    "value",
    [
        None,
        AT,
        AT.replace(microsecond=0),
        AT.astimezone(timezone(timedelta(hours=5, minutes=30))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_sqlite_time_stores_the_text_utc_datetime_stores(value: datetime | None) -> None:
    dialect = sqlite.dialect()
    stored = runs.c.started_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert stored is not None
    assert sqlite_time(value) == stored(value)
    assert sqlite_time(value) == stored(value)  # remembered, still the same


def test_sqlite_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        sqlite_time(datetime(2026, 3, 1, 12, 0))


def test_sqlite_uuid_stores_the_text_uuid_stores() -> None:
    dialect = sqlite.dialect()
    stored = runs.c.id.type.dialect_impl(dialect).bind_processor(dialect)
    value = uuid.uuid4()
    assert stored is not None and sqlite_uuid(value) == stored(value)
    assert sqlite_uuid(None) is None


async def test_deferred_sqlite_work_that_fails_fails_the_commit_and_writes_nothing(
    ctx: Context,
) -> None:
    if ctx.db.features.name != "sqlite":
        pytest.skip("SQLite's driver only")
    from cronkeeper.store.sqlite_driver import defer, execute_all

    project_id, job_id = await a_job(ctx)
    sql, rows = BulkStatement(runs.insert(), RUN_KEYS).prepared(
        ctx.db.engine.dialect,
        [(uuid.uuid4(), project_id, job_id, "heartbeat", "running", AT, AT, AT)],
    )
    with pytest.raises(IntegrityError):
        async with ctx.db.write() as conn:
            await defer(conn, execute_all, [(sql, rows), (sql, rows)])  # the same id twice
    async with ctx.db.write() as conn:  # the connection is clean again
        await defer(conn, execute_all, [(sql, rows)])
    async with ctx.db.read() as conn:
        assert (await conn.execute(select(runs.c.id))).scalars().all() == [
            uuid.UUID(hex=rows[0][0])
        ]


JSON_VALUES: list[Any] = [
    None,
    {},
    {"method": "GET", "remote_addr": "127.0.0.1", "user_agent": "curl/8.1"},
    {"user_agent": 'naïve "q" \\ \U0001f680\n\x00\u2028 100% %s', "rid": "r1"},
    {"level": "info"},
    {"a": 1, "b": None, "c": True, "d": 1.5, "e": [1, "x"], "f": {"g": "h"}},
    {1: "int key"},
    [1, "two"],
    "text",
]


@pytest.mark.parametrize("value", JSON_VALUES)
def test_sqlite_json_stores_the_text_json_stores(value: Any) -> None:
    dialect = sqlite.dialect()
    stored = events.c.data.type.dialect_impl(dialect).bind_processor(dialect)
    assert stored is not None
    assert sqlite_json(value) == stored(value)


def test_sqlite_uuid7_is_the_hex_uuid_stores_of_a_uuid7(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronkeeper.domain import ids

    monkeypatch.setattr(ids, "os", SimpleNamespace(urandom=lambda n: bytes(range(7, 7 + n))))
    dialect = sqlite.dialect()
    stored = runs.c.id.type.dialect_impl(dialect).bind_processor(dialect)
    assert stored is not None
    assert sqlite_uuid7(AT) == stored(ids.uuid7(AT)) == SQLITE_VALUES.new_id(AT)
    assert uuid.UUID(hex=sqlite_uuid7(AT)).version == 7


def test_sqlite_values_are_what_the_column_types_store() -> None:
    value = uuid.uuid4()
    assert SQLITE_VALUES.id(value) == sqlite_uuid(value)
    assert SQLITE_VALUES.time(AT) == sqlite_time(AT)
    assert SQLITE_VALUES.json({"rid": "x"}) == sqlite_json({"rid": "x"})
    assert (PYTHON_VALUES.id(value), PYTHON_VALUES.time(AT)) == (value, AT)
    assert PYTHON_VALUES.json(None) is None  # the JSON type makes it "null" on execute
    assert isinstance(PYTHON_VALUES.new_id(AT), uuid.UUID)
    assert not PYTHON_VALUES.stored and SQLITE_VALUES.stored


ARRANGED = [
    # an INSERT of its keys: the rows go as they are
    BulkStatement(runs.insert(), RUN_KEYS),
    # literals of the statement itself, parameters out of the rows' order
    BulkStatement(
        update(runs)
        .where(runs.c.id == bindparam("b_id"), runs.c.status == "running")
        .values(status=bindparam("b_status"), finished_at=bindparam("b_at")),
        ("b_at", "b_id", "b_status"),
    ),
    # one parameter used twice, one statement parameter only
    BulkStatement(
        update(jobs)
        .where(jobs.c.id == bindparam("b_job"), jobs.c.deadline_at > bindparam("b_at"))
        .values(deadline_at=bindparam("b_at")),
        ("b_job", "b_at"),
    ),
    BulkStatement(update(jobs).where(jobs.c.id == bindparam("b_job")).values(slug="x"), ["b_job"]),
]


@pytest.mark.parametrize("statement", ARRANGED)
def test_arranged_stored_rows_are_the_prepared_python_rows(statement: BulkStatement) -> None:
    sample = {
        "id": uuid.uuid4(),
        "project_id": uuid.uuid4(),
        "job_id": uuid.uuid4(),
        "source": "heartbeat",
        "status": "running",
        "started_at": AT,
        "created_at": AT,
        "ordered_at": AT + timedelta(seconds=1),
        "b_id": uuid.uuid4(),
        "b_job": uuid.uuid4(),
        "b_status": "succeeded",
        "b_at": AT + timedelta(seconds=2),
    }
    rows = [tuple(sample[key] for key in statement.keys)] * 2
    stored = [
        tuple(
            SQLITE_VALUES.id(value)
            if isinstance(value, uuid.UUID)
            else SQLITE_VALUES.time(value)
            if isinstance(value, datetime)
            else value
            for value in row
        )
        for row in rows
    ]
    sql, prepared = statement.prepared(SQLITE, rows)
    assert statement.arranged(SQLITE, stored) == (sql, prepared)

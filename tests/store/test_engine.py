"""The engine: SQLite pragmas, transaction discipline, concurrent writers, UTC times."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from cronkeeper.service.context import Context
from cronkeeper.store import projects as project_store
from cronkeeper.store import sqlite_connection
from cronkeeper.store.engine import Database, create_database, normalise_db_url
from cronkeeper.store.migrate import upgrade
from cronkeeper.store.tables import jobs, projects

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Boom(Exception):
    """An error raised on purpose inside a transaction."""


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated SQLite ledger (for the tests that are about SQLite only)."""
    db = create_database(sqlite_url)
    await upgrade(db)
    yield db
    await db.dispose()


async def _project_slugs(db: Database) -> list[str]:
    async with db.read() as conn:
        return [project.slug for project in await project_store.list_projects(conn)]


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_on(sqlite_db: Database) -> None:
    async with sqlite_db.read() as conn:
        journal_mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
        busy_timeout = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
    assert journal_mode == "wal"
    assert foreign_keys == 1
    assert busy_timeout >= 1000


async def test_sqlite_write_connections_also_enforce_foreign_keys(sqlite_db: Database) -> None:
    async with sqlite_db.write() as conn:
        foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
    assert foreign_keys == 1


async def test_a_row_pointing_at_a_missing_project_is_refused(ctx: Context) -> None:
    with pytest.raises(IntegrityError):
        async with ctx.db.write() as conn:
            await conn.execute(
                jobs.insert().values(
                    id=uuid.uuid4(),
                    project_id=uuid.uuid4(),
                    slug="orphan",
                    name="Orphan",
                    kind="http",
                    status="active",
                    timezone="UTC",
                    spec={},
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    async with ctx.db.read() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
    assert count == 0


async def test_a_write_transaction_commits_when_its_block_ends(ctx: Context) -> None:
    async with ctx.db.write() as conn:
        await project_store.insert_project(conn, "alpha", "Alpha", "key-alpha", NOW)
        await project_store.insert_project(conn, "beta", "Beta", "key-beta", NOW)
    assert await _project_slugs(ctx.db) == ["alpha", "beta"]


async def test_an_exception_rolls_the_whole_write_back(ctx: Context) -> None:
    async with ctx.db.write() as conn:
        await project_store.insert_project(conn, "kept", "Kept", "key-kept", NOW)
    with pytest.raises(Boom):
        async with ctx.db.write() as conn:
            await project_store.insert_project(conn, "alpha", "Alpha", "key-alpha", NOW)
            await project_store.insert_project(conn, "beta", "Beta", "key-beta", NOW)
            raise Boom
    assert await _project_slugs(ctx.db) == ["kept"]
    # The failed transaction released everything: the next write goes through.
    async with asyncio.timeout(5), ctx.db.write() as conn:
        await project_store.insert_project(conn, "gamma", "Gamma", "key-gamma", NOW)
    assert await _project_slugs(ctx.db) == ["gamma", "kept"]


async def test_a_reader_does_not_see_a_write_before_it_commits(ctx: Context) -> None:
    async with ctx.db.write() as writer:
        await project_store.insert_project(writer, "pending", "Pending", "key-pending", NOW)
        async with asyncio.timeout(5), ctx.db.read() as reader:
            assert await project_store.get_project(reader, "pending") is None
    async with ctx.db.read() as reader:
        assert await project_store.get_project(reader, "pending") is not None


async def test_many_concurrent_sqlite_writes_all_commit_one_after_another(
    sqlite_db: Database,
) -> None:
    seen: list[int] = []

    async def add(number: int) -> None:
        async with sqlite_db.write() as conn:
            # Read, then write: the pattern that upgrades a lock and used to fail as
            # "database is locked" under deferred transactions.
            seen.append(len(await project_store.list_projects(conn)))
            await project_store.insert_project(conn, f"p{number:03d}", "P", f"k{number}", NOW)

    results = await asyncio.gather(*(add(n) for n in range(60)), return_exceptions=True)

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(await _project_slugs(sqlite_db)) == 60
    # Each transaction saw every one committed before it: writers took turns.
    assert sorted(seen) == list(range(60))


async def test_two_sqlite_databases_on_one_file_write_concurrently_without_lock_errors(
    sqlite_url: str, sqlite_db: Database
) -> None:
    other = create_database(sqlite_url)  # as a second process (e.g. the CLI) would
    try:

        async def add(db: Database, number: int) -> None:
            async with db.write() as conn:
                await project_store.list_projects(conn)
                await project_store.insert_project(conn, f"p{number:03d}", "P", f"k{number}", NOW)

        writes = [add(sqlite_db if n % 2 else other, n) for n in range(40)]
        results = await asyncio.gather(*writes, return_exceptions=True)
    finally:
        await other.dispose()

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(await _project_slugs(sqlite_db)) == 40


async def _fill_wal(db: Database) -> None:
    """Five write transactions of 80 projects of 4 KB each: ~500 pages (2 MB) of WAL."""
    for number in range(1, 6):
        async with db.write() as conn:
            for row in range(80):
                name = f"p{number}-{row}"
                await project_store.insert_project(conn, name, "x" * 4000, name, NOW)


async def test_the_wal_is_copied_back_in_the_background_not_by_the_commits(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits leave the WAL alone (autocheckpoint far off); the checkpointer copies it
    back into the database file after a write, so the file grows without any commit
    having done it."""
    monkeypatch.setattr(sqlite_connection, "CHECKPOINT_EVERY", 3600.0)
    db = create_database(sqlite_url)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    try:
        async with db.read() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
        assert pages == sqlite_connection.WAL_AUTOCHECKPOINT
        size = path.stat().st_size
        await _fill_wal(db)  # none copied back: CHECKPOINT_EVERY
        assert path.stat().st_size == size  # all of it still in the WAL
        monkeypatch.setattr(sqlite_connection, "CHECKPOINT_EVERY", 0.0)
        async with db.write() as conn:
            await project_store.insert_project(conn, "last", "P", "k-last", NOW)
        for _ in range(100):  # while the connections stay open (closing one copies too)
            if path.stat().st_size > size + 1_000_000:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size > size + 1_000_000
    finally:
        await db.dispose()


async def test_a_wal_grown_by_a_burst_of_writes_is_cut_back_once_copied(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of writes grows the WAL file; once the checkpointer has copied it back, the
    next write starts it over and cuts the file back to WAL_SIZE_LIMIT instead of keeping
    its largest size on disk."""
    monkeypatch.setattr(sqlite_connection, "CHECKPOINT_EVERY", 3600.0)
    monkeypatch.setattr(sqlite_connection, "WAL_SIZE_LIMIT", 100_000)
    db = create_database(sqlite_url)
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    try:
        await _fill_wal(db)
        assert wal.stat().st_size > 1_000_000
        monkeypatch.setattr(sqlite_connection, "CHECKPOINT_EVERY", 0.0)
        for number in range(100):
            async with db.write() as conn:
                await project_store.insert_project(conn, f"n{number}", "P", f"k{number}", NOW)
            if wal.stat().st_size <= 100_000:
                break
            await asyncio.sleep(0.05)
        assert wal.stat().st_size <= 100_000
    finally:
        await db.dispose()


async def test_under_a_steady_write_load_the_wal_starts_over(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes one after another for a second, checkpoints in the background every 50 ms:
    the WAL keeps starting over, so its file stays a fraction of all that was written
    (without the writer finishing the checkpoints, no checkpoint ever finds the WAL
    copied back whole, and the file holds every write)."""
    monkeypatch.setattr(sqlite_connection, "CHECKPOINT_EVERY", 0.05)
    db = create_database(sqlite_url)
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    written = 0

    def insert(connection: sqlite3.Connection, number: int) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, v TEXT)")
        connection.executemany(
            "INSERT INTO scratch (v) VALUES (?)", [(f"{number}" + "x" * 4000,)] * 10
        )

    try:
        started = time.monotonic()
        number = 0
        while time.monotonic() - started < 1.0:
            await db.write_on_thread(partial(insert, number=number))
            number += 1
            written += 10 * 4096
        assert written > 4_000_000
        assert wal.stat().st_size < written / 3
    finally:
        await db.dispose()


async def test_ping_answers_when_the_database_is_reachable(ctx: Context) -> None:
    await ctx.db.ping()  # raising is the failure


async def test_ping_raises_when_the_database_cannot_be_used(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        not_a_database = tmp_path / "notes.txt"
        not_a_database.write_bytes(b"these are my notes, not a ledger\n" * 200)
        unusable = str(not_a_database)
    else:
        unusable = db_url.rsplit("/", 1)[0] + "/ck_no_such_database"
    db = create_database(unusable)
    try:
        with pytest.raises(Exception, match=r"(?i)not a database|does not exist"):
            await db.ping()
    finally:
        await db.dispose()


async def test_stored_times_come_back_as_the_same_instant_in_utc(ctx: Context) -> None:
    berlin = datetime(2026, 7, 1, 14, 30, 15, 123456, tzinfo=ZoneInfo("Europe/Berlin"))
    async with ctx.db.write() as conn:
        await project_store.insert_project(conn, "tz", "Tz", "key-tz", berlin)
    async with ctx.db.read() as conn:
        project = await project_store.get_project(conn, "tz")
    assert project is not None
    assert project.created_at == berlin
    assert project.created_at.tzinfo is UTC
    assert project.created_at == datetime(2026, 7, 1, 12, 30, 15, 123456, tzinfo=UTC)


async def test_stored_times_compare_as_instants_whatever_the_offset_given(ctx: Context) -> None:
    async with ctx.db.write() as conn:
        await project_store.insert_project(conn, "early", "Early", "key-early", NOW)
        later = NOW + timedelta(microseconds=1)
        await project_store.insert_project(conn, "late", "Late", "key-late", later)
    in_tokyo = NOW.astimezone(ZoneInfo("Asia/Tokyo"))  # 21:00 local: the same instant
    query = select(projects.c.slug).where(projects.c.created_at > in_tokyo)
    async with ctx.db.read() as conn:
        assert list((await conn.execute(query)).scalars()) == ["late"]


async def test_a_naive_datetime_is_refused_and_nothing_is_written(ctx: Context) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with ctx.db.write() as conn:
            await project_store.insert_project(
                conn, "naive", "Naive", "key-naive", datetime(2026, 3, 1, 12)
            )
    assert await _project_slugs(ctx.db) == []


async def test_the_dialect_decides_skip_locked_and_listen_notify(ctx: Context) -> None:
    is_postgres = ctx.db.features.name == "postgresql"
    assert ctx.db.features.name in ("sqlite", "postgresql")
    assert ctx.db.features.skip_locked is is_postgres
    assert ctx.db.features.listen_notify is is_postgres


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("./cronkeeper.db", "sqlite+aiosqlite:///./cronkeeper.db"),
        ("/var/lib/ck.db", "sqlite+aiosqlite:////var/lib/ck.db"),
        ("sqlite:///ck.db", "sqlite+aiosqlite:///ck.db"),
        ("postgresql://u@h:5432/ck", "postgresql+asyncpg://u@h:5432/ck"),
        ("postgres://u@h/ck", "postgresql+asyncpg://u@h/ck"),
        ("postgresql+asyncpg://u@h/ck", "postgresql+asyncpg://u@h/ck"),
    ],
)
def test_database_urls_as_users_type_them_become_async_urls(typed: str, expected: str) -> None:
    assert normalise_db_url(typed) == expected

"""Write transactions of several processes on one SQLite ledger take turns on the
`<database>-lock` file (sqlite_connection.WriteLock): held from BEGIN IMMEDIATE to COMMIT
or ROLLBACK on every path a write takes, never by a read."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial

import pytest

from cronkeeper.store import projects as project_store
from cronkeeper.store.engine import Database, create_database

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = create_database(sqlite_url)
    yield database
    await database.dispose()


def held_elsewhere(db: Database) -> bool:
    """Whether another process (a descriptor of its own) would have to wait for the turn."""
    assert db.path is not None
    fd = os.open(db.path + "-lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextmanager
def turn_taken_elsewhere(db: Database) -> Iterator[threading.Event]:
    """Another 'process' holds the turn until the event is set."""
    assert db.path is not None
    fd = os.open(db.path + "-lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    release = threading.Event()

    def hold() -> None:
        release.wait(10)
        fcntl.flock(fd, fcntl.LOCK_UN)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        yield release
    finally:
        release.set()
        holder.join()
        os.close(fd)


async def test_a_write_holds_the_turn_until_it_commits(db: Database) -> None:
    async with db.write() as conn:
        await project_store.insert_project(conn, "a", "A", "key-a", NOW)
        assert held_elsewhere(db)
    assert not held_elsewhere(db)


async def test_a_failed_write_gives_the_turn_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await project_store.insert_project(conn, "b", "B", "key-b", NOW)
            raise RuntimeError("changed my mind")
    assert not held_elsewhere(db)


async def test_a_read_never_takes_the_turn(db: Database) -> None:
    async def read() -> None:
        async with db.read() as conn:
            assert await project_store.get_project(conn, "default") is None

    with turn_taken_elsewhere(db):
        await asyncio.wait_for(read(), timeout=2)  # would wait for the turn otherwise


async def test_a_whole_transaction_on_the_thread_takes_and_gives_back_the_turn(
    db: Database,
) -> None:
    seen: list[bool] = []

    def write(connection: sqlite3.Connection) -> None:
        seen.append(held_elsewhere(db))
        connection.execute("CREATE TABLE IF NOT EXISTS scratch (v TEXT)")

    await db.write_on_thread(write)
    assert seen == [True]
    assert not held_elsewhere(db)

    def fail(connection: sqlite3.Connection) -> None:
        raise ValueError("rolled back")

    with pytest.raises(ValueError):
        await db.write_on_thread(fail)
    assert not held_elsewhere(db)


async def test_a_write_waits_for_the_other_process_then_goes_at_once(db: Database) -> None:
    """While another process holds the turn our write waits (SQLite would have let it
    begin: no SQLite lock is held); once given back, the write goes through."""
    with turn_taken_elsewhere(db) as release:
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        await db.write_on_thread(partial(_insert, value="after the other"))
        waited = time.monotonic() - started
    assert waited >= 0.25
    assert not held_elsewhere(db)


def _insert(connection: sqlite3.Connection, value: str) -> None:
    connection.execute("CREATE TABLE IF NOT EXISTS scratch (v TEXT)")
    connection.execute("INSERT INTO scratch VALUES (?)", (value,))

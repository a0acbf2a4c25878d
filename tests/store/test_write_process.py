"""The ping writer process (store/write_process.py): it writes the group writer's batches
for the server, fails them cleanly, is replaced when it dies, and never leaves a batch
written twice. (tests/service/test_pings.py runs every ping use case through it too.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from cronkeeper.store import write_process
from cronkeeper.store.engine import Database, create_database
from cronkeeper.store.writer import BatchFunction, OutcomeUnknown, thread_form

# -- batch functions and their thread forms (the process imports this module) ----------


def _thread_only() -> BatchFunction[str, Any]:
    """A batch function that is only ever written through its thread form."""

    async def apply(conn: Any, items: list[str]) -> Sequence[Any]:
        raise AssertionError("only ever written through its thread form")

    return apply


def _write_notes(db: sqlite3.Connection, items: list[str]) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT NOT NULL)")
    db.executemany("INSERT INTO notes (text) VALUES (?)", [(item,) for item in items])


_note, _crash, _broken, _odd = (_thread_only() for _ in range(4))


@thread_form(_note)
def _note_on_thread(db: sqlite3.Connection, items: list[str]) -> list[Any]:
    """Writes each item as a row; answers the process that wrote it, or an error for
    an item named 'bad' (nothing written for it)."""
    _write_notes(db, [item for item in items if item != "bad"])
    return [ValueError("bad item") if item == "bad" else os.getpid() for item in items]


@thread_form(_crash)
def _crash_on_thread(db: sqlite3.Connection, items: list[str]) -> list[Any]:
    _write_notes(db, items)
    os._exit(3)  # dies holding the batch: the server cannot tell if it was committed


@thread_form(_broken)
def _broken_on_thread(db: sqlite3.Connection, items: list[str]) -> list[Any]:
    _write_notes(db, items)
    raise sqlite3.OperationalError("disk I/O error")


@thread_form(_odd)
def _odd_on_thread(db: sqlite3.Connection, items: list[str]) -> list[Any]:
    _write_notes(db, items)
    return [lambda: None for _ in items]  # committed, but no answer can be pickled


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
async def db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Database]:
    """A SQLite ledger whose writer process is ready; the process can import this module."""
    here = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(write_process, "RESTART_AFTER", 0.05)
    database = create_database(sqlite_url)
    assert database.start_write_process()
    assert database.write_process is not None
    assert await database.write_process.wait_ready()
    yield database
    await database.dispose()


def notes(db: Database) -> list[str]:
    assert db.path is not None
    with sqlite3.connect(db.path) as connection:
        try:
            return [row[0] for row in connection.execute("SELECT text FROM notes ORDER BY rowid")]
        except sqlite3.OperationalError:
            return []


async def until_ready(db: Database) -> None:
    process = db.write_process
    assert process is not None
    for _ in range(400):
        if process.ready:
            return
        await process.wait_ready()
        await asyncio.sleep(0.025)
    raise AssertionError("no writer process became ready")


# -- tests -------------------------------------------------------------------------------


async def test_batches_are_written_and_committed_by_the_writer_process(db: Database) -> None:
    assert db.write_process is not None
    child = db.write_process.pid
    answers = await asyncio.gather(*(db.writer.submit(_note, f"n{i}") for i in range(20)))
    assert set(answers) == {child} and child != os.getpid()
    assert sorted(notes(db)) == sorted(f"n{i}" for i in range(20))  # committed: seen here


async def test_batches_sent_while_others_are_written_land_in_the_order_submitted(
    db: Database,
) -> None:
    """Two batches are in flight at once; the process writes them one after another, so
    the ledger holds the items in the order they were submitted (a start ping before its
    finish)."""
    submitted = [f"n{i:03d}" for i in range(300)]
    writes = []
    for text in submitted:
        writes.append(asyncio.ensure_future(db.writer.submit(_note, text)))
        if len(writes) % 7 == 0:
            await asyncio.sleep(0)  # let batches go out while more arrive
    await asyncio.gather(*writes)
    assert notes(db) == submitted
    assert db.write_process is not None and db.write_process.transactions > 1


def test_batches_written_together_get_their_own_answers_back() -> None:
    """The process merges the batches that arrived meanwhile into one transaction (a
    form's items together where that form comes next) and hands each batch its answers."""
    a, b = _note_on_thread, _crash_on_thread
    works = [[(a, ["a1", "a2"])], [(a, ["a3"]), (b, ["b1"])], [(b, ["b2"]), (a, ["a4"])]]
    merged, places = write_process._merge(works)  # type: ignore[arg-type]
    assert merged == [(a, ["a1", "a2", "a3"]), (b, ["b1", "b2"]), (a, ["a4"])]
    answers = [["A1", "A2", "A3"], ["B1", "B2"], ["A4"]]
    assert write_process._split(answers, places) == [
        [["A1", "A2"]],
        [["A3"], ["B1"]],
        [["B2"], ["A4"]],
    ]


async def test_a_batch_declined_or_failing_in_a_group_is_then_written_alone(
    db: Database,
) -> None:
    """Several batches written together, one of them failing: the group is rolled back and
    each batch written alone, so only the failing one fails."""
    results = await asyncio.gather(
        *(db.writer.submit(_note, f"ok{i}") for i in range(5)),
        db.writer.submit(_broken, "x"),
        *(db.writer.submit(_note, f"ok{i}") for i in range(5, 10)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], sqlite3.OperationalError)
    assert notes(db) == [f"ok{i}" for i in range(10)]


async def test_an_item_refused_by_its_form_fails_alone(db: Database) -> None:
    good, bad = await asyncio.gather(
        db.writer.submit(_note, "good"),
        db.writer.submit(_note, "bad"),
        return_exceptions=True,
    )
    assert isinstance(bad, ValueError) and str(bad) == "bad item"
    assert isinstance(good, int)
    assert notes(db) == ["good"]


async def test_a_failed_transaction_is_rolled_back_in_the_process(db: Database) -> None:
    """The error that rolled the batch back comes back to the caller; nothing of the batch
    is written, and the process goes on with the next batch."""
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await db.writer.submit(_broken, "lost")
    assert notes(db) == []
    assert db.write_process is not None and db.write_process.ready
    assert await db.writer.submit(_note, "after") == db.write_process.pid
    assert notes(db) == ["after"]


async def test_a_committed_batch_whose_answers_cannot_be_sent_is_not_written_twice(
    db: Database,
) -> None:
    with pytest.raises(OutcomeUnknown, match="could not be sent"):
        await db.writer.submit(_odd, "once")
    assert notes(db) == ["once"]
    assert db.write_process is not None and db.write_process.ready  # it goes on
    assert await db.writer.submit(_note, "next") == db.write_process.pid


async def test_a_process_lost_while_writing_fails_its_batch_once_and_is_replaced(
    db: Database,
) -> None:
    """The server cannot know whether the lost batch committed, so it answers an error and
    does not write it again; later batches are written (in the server until a new
    process is ready, then there)."""
    assert db.write_process is not None
    first = db.write_process.pid
    with pytest.raises(OutcomeUnknown):
        await db.writer.submit(_crash, "maybe")
    assert notes(db) == []  # it died before COMMIT: rolled back by SQLite
    assert isinstance(await db.writer.submit(_note, "meanwhile"), int)
    await until_ready(db)
    assert db.write_process.pid not in (None, first)
    assert await db.writer.submit(_note, "later") == db.write_process.pid
    assert notes(db)[-1] == "later" and "meanwhile" in notes(db)


async def test_a_process_killed_while_idle_loses_nothing(db: Database) -> None:
    """Killed between batches: noticed before the next batch, which the server writes
    itself; a new process takes over."""
    assert db.write_process is not None and db.write_process.pid is not None
    first = db.write_process.pid
    os.kill(first, signal.SIGKILL)
    for _ in range(200):
        if not db.write_process.ready:
            break
        await asyncio.sleep(0.01)
    assert await db.writer.submit(_note, "in the server") == os.getpid()
    await until_ready(db)
    assert db.write_process.pid != first
    assert await db.writer.submit(_note, "in the new process") == db.write_process.pid
    assert notes(db) == ["in the server", "in the new process"]


async def test_the_process_ends_when_the_server_closes_the_ledger(sqlite_url: str) -> None:
    database = create_database(sqlite_url)
    assert database.start_write_process()
    assert database.write_process is not None and await database.write_process.wait_ready()
    pid = database.write_process.pid
    assert pid is not None
    await database.dispose()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped


async def test_an_in_memory_ledger_has_no_writer_process() -> None:
    memory = create_database("sqlite+aiosqlite:///:memory:")
    try:
        assert not memory.start_write_process()
    finally:
        await memory.dispose()


@pytest.mark.postgres
async def test_postgresql_has_no_writer_process(postgres_url: str) -> None:
    database = create_database(postgres_url)
    try:
        assert not database.start_write_process()
    finally:
        await database.dispose()

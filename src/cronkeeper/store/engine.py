"""Create the engine, apply SQLite pragmas, and hand out read and write transactions.

On SQLite every write transaction starts with `BEGIN IMMEDIATE` and writers inside one
process take turns on an asyncio lock, so a transaction never fails half-way with
"database is locked" when it upgrades from reading to writing. PostgreSQL needs neither.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from cronkeeper.store.sqlite_connection import Checkpointer, configure_connection, is_file
from cronkeeper.store.sqlite_driver import dbapi, end_read, transaction_on_thread
from cronkeeper.store.write_process import WriteProcess
from cronkeeper.store.writer import Declined, FormWork, GroupWriter, run_forms

T = TypeVar("T")

#: The connection type services pass to store functions (they never import sqlalchemy).
Connection = AsyncConnection
log = logging.getLogger("cronkeeper.store")
#: Group writer batches on their way to the writer process at once.
BATCHES_TO_WRITE_PROCESS = 4


@dataclass(frozen=True)
class Features:
    """What the dialect can do; the only place dialect differences are decided."""

    name: str
    skip_locked: bool
    listen_notify: bool
    #: SQLite through store/sqlite_driver.py: a whole write transaction can run as one
    #: call on the connection's thread (`Database.write_on_thread`).
    writes_on_thread: bool = False


class Database:
    """An engine plus the transaction discipline every service uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        name = engine.dialect.name
        self.features = Features(
            name=name,
            skip_locked=name == "postgresql",
            listen_notify=name == "postgresql",
            writes_on_thread=name == "sqlite" and engine.dialect.driver == "aiosqlite",
        )
        self._write_lock = asyncio.Lock() if name == "sqlite" else None
        path = engine.url.database if name == "sqlite" else None
        self.path = path if path and is_file(path) else None
        self._checkpointer = Checkpointer(self.path) if self.path else None
        #: The ping writer process, once `start_write_process` was called (SQLite file only).
        self.write_process: WriteProcess | None = None
        #: Group commit for the hot write paths (pings): many writes, one transaction.
        self.writer = GroupWriter(
            self.write,
            run_forms=self.run_forms if self.features.writes_on_thread else None,
            in_flight=self._batches_in_flight,
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot on both dialects). On SQLite its
        end is queued, not waited for (sqlite_driver.end_read): one thread hop less per read."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn
            if self.features.writes_on_thread:
                await end_read(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on normal exit, rolled back on any exception."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
            async with conn.begin():
                yield conn
        if self._checkpointer is not None:
            self._checkpointer.poke()

    async def write_on_thread(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite: `function(sqlite3_connection)` as one whole write transaction (BEGIN
        IMMEDIATE … COMMIT) in one call on the connection's thread, under the same write
        lock as `write`; rolled back if it raises (the group writer's thread forms)."""
        assert self._write_lock is not None, "SQLite only"
        after = None if self._checkpointer is None else self._checkpointer.finish()
        async with self._write_lock, self.engine.connect() as conn:
            result = await transaction_on_thread(conn, "BEGIN IMMEDIATE", function, after=after)
        if self._checkpointer is not None:
            self._checkpointer.poke()
        return result

    async def run_forms(self, work: FormWork) -> list[Sequence[Any]] | None:
        """SQLite: the group writer's thread forms as one write transaction (writer.py
        `run_forms`): in the writer process when it is ready, else on the connection's
        thread. Their answers, or None when a form declined (nothing written)."""
        process = self.write_process
        if process is not None and process.ready:
            return await process.run(work)
        try:
            return await self.write_on_thread(partial(run_forms, work=work))
        except Declined:
            return None

    def _batches_in_flight(self) -> int:
        """Group writer batches on their way at once: while the writer process is ready,
        several (it writes all that arrived meanwhile as one transaction: write_process.py),
        else one."""
        process = self.write_process
        return BATCHES_TO_WRITE_PROCESS if process is not None and process.ready else 1

    def start_write_process(self) -> bool:
        """SQLite file: start the writer process that takes the group writer's batches
        (store/write_process.py); until it is ready they are written here. False where
        there is none to start (PostgreSQL, an in-memory database)."""
        if not (self.features.writes_on_thread and self.path):
            return False
        if self.write_process is None:
            self.write_process = WriteProcess(self.path)
        self.write_process.start()
        return True

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Write what the group writer still holds, then close every connection."""
        await self.writer.close()
        if self.write_process is not None:
            await self.write_process.close()
        await self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.close()


def normalise_db_url(url: str) -> str:
    """Turn the URLs users type into SQLAlchemy async URLs.

    `./x.db`, `sqlite:///x.db` → aiosqlite; `postgresql://…`/`postgres://…` → asyncpg.
    """
    if "://" not in url:
        return f"sqlite+aiosqlite:///{url}"
    scheme, rest = url.split("://", 1)
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+asyncpg://{rest}"
    return url


def create_database(url: str, *, echo: bool = False) -> Database:
    """A `Database` for a path or URL as users type it (see `normalise_db_url`)."""
    url = normalise_db_url(url)
    options: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite+aiosqlite"):
        options.update(connect_args={"timeout": 30}, module=dbapi())
    elif url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    else:
        options.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return Database(engine)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        configure_connection(dbapi_connection)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

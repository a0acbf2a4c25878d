"""Create the engine, apply SQLite pragmas, and hand out read and write transactions.

On SQLite every write transaction starts with `BEGIN IMMEDIATE` and writers inside one
process take turns on an asyncio lock, so a transaction never fails half-way with
"database is locked" when it upgrades from reading to writing. PostgreSQL needs neither.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from cronkeeper.store.sqlite_driver import dbapi, end_read, transaction_on_thread
from cronkeeper.store.writer import GroupWriter

T = TypeVar("T")

#: The connection type services pass to store functions (they never import sqlalchemy).
Connection = AsyncConnection
log = logging.getLogger("cronkeeper.store")
#: SQLite: WAL pages after which a commit copies the WAL back itself, syncing the database
#: file, while every writer waits (SQLite's default is 1,000). Large, because the server's
#: checkpointer does that work off the write path; this is the backstop for processes
#: without one. At 10,000 pings wrote that many pages several times a second, and those
#: commits (35–60 ms each) set the ping p99.
WAL_AUTOCHECKPOINT = 100_000
#: Seconds between the server's background checkpoints. After each, the next commit
#: copies back what was written meanwhile and syncs the file (see `_Checkpointer`): the
#: more often, the less each of those commits carries. Pings, 64 clients: 0.25 s → p99
#: 33–36 ms at ~6,200/s; 0.1 s → p99 28 ms at ~5,400/s; 0.05 s → p99 36 ms, 4,900/s.
CHECKPOINT_EVERY = 0.1
#: Bytes a WAL file is cut back to when it starts over (it keeps its largest size otherwise).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


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
        self._checkpointer = _Checkpointer(path) if path and path != ":memory:" else None
        #: Group commit for the hot write paths (pings): many writes, one transaction.
        self.writer = GroupWriter(
            self.write, on_thread=self.write_on_thread if self.features.writes_on_thread else None
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

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Write what the group writer still holds, then close every connection."""
        await self.writer.close()
        await self.engine.dispose()
        if self._checkpointer is not None:
            await self._checkpointer.close()


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
        # Take transaction control away from the driver so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA busy_timeout=30000",
            f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}",
            f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def _copy_back(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").close()


class _Checkpointer:
    """Copies SQLite's write-ahead log back into the database file in a thread of its own,
    at most once a CHECKPOINT_EVERY after a write, so that commits do not.

    Why: with SQLite's default, the commit that grows the WAL past 1,000 pages copies it
    back and syncs the file inside the write transaction, while every writer waits
    (measured on the ping path: half of the commit time, and the p99). A PASSIVE
    checkpoint on its own connection waits for nobody: it copies what no reader still
    needs, and writers go on appending meanwhile.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = time.monotonic()
        self._running: asyncio.Future[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._unfinished = False

    def poke(self) -> None:
        """After a write: start a checkpoint if none ran for CHECKPOINT_EVERY."""
        now = time.monotonic()
        if self._running is not None or now - self._last < CHECKPOINT_EVERY:
            return
        self._last = now
        try:
            running = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        except RuntimeError:  # the loop is closing: its last commits stay in the WAL
            return
        running.add_done_callback(self._done)
        self._running = running

    def finish(self) -> Callable[[sqlite3.Connection], None] | None:
        """What the next write transaction should do once committed: copy back the rest of
        the WAL after a background checkpoint (see `_checkpoint`), else None."""
        if not self._unfinished:
            return None
        self._unfinished = False
        return _copy_back

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        cursor = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        _, logged, _ = cursor.fetchone()
        cursor.close()
        # The WAL starts over only when a write transaction begins with all of it copied
        # back. Under a steady write load a commit lands while this copies, so that never
        # happens: the WAL grows until a commit reaches WAL_AUTOCHECKPOINT and copies
        # 100,000 pages itself. So the writer, right after its next commit, copies back
        # the few pages written meanwhile; the write transaction after it starts over.
        self._unfinished = logged > 0

    def _done(self, running: asyncio.Future[None]) -> None:
        self._running = None
        if not running.cancelled() and running.exception() is not None:
            log.warning("WAL checkpoint failed: %s", running.exception())

    async def close(self) -> None:
        running = self._running
        if running is not None and running.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(running, return_exceptions=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

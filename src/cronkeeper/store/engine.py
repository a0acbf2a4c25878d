"""Create the engine, apply SQLite pragmas, and hand out read and write transactions.

On SQLite every write transaction starts with `BEGIN IMMEDIATE` and writers inside one
process take turns on an asyncio lock, so a transaction never fails half-way with
"database is locked" when it upgrades from reading to writing. PostgreSQL needs neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from cronkeeper.store.writer import GroupWriter

#: The connection type services pass to store functions (they never import sqlalchemy).
Connection = AsyncConnection


@dataclass(frozen=True)
class Features:
    """What the dialect can do; the only place dialect differences are decided."""

    name: str
    skip_locked: bool
    listen_notify: bool


class Database:
    """An engine plus the transaction discipline every service uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        name = engine.dialect.name
        self.features = Features(
            name=name, skip_locked=name == "postgresql", listen_notify=name == "postgresql"
        )
        self._write_lock = asyncio.Lock() if name == "sqlite" else None
        #: Group commit for the hot write paths (pings): many writes, one transaction.
        self.writer = GroupWriter(self.write)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot on both dialects)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

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

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Write what the group writer still holds, then close every connection."""
        await self.writer.close()
        await self.engine.dispose()


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
        from cronkeeper.store.sqlite_driver import dbapi  # one thread hop per statement

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
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

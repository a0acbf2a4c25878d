"""SQLAlchemy's aiosqlite adapter with one thread hop per statement instead of four.

aiosqlite runs every call on its connection's own thread; SQLAlchemy's adapter makes a
separate call (and event-loop round trip) to open a cursor, execute, fetch the rows and
close the cursor. Each hop wakes the thread, hands the GIL over and back and costs the
event loop ~50 µs of CPU and ~100-300 µs of latency on a busy 2-core machine: more than
SQLite spends on a typical statement. Here the whole sequence runs as one function on
the connection's thread, and the cursor keeps the rows, description and counts it got.

Everything else (transactions, `BEGIN IMMEDIATE`, pragmas, errors, server-side cursors)
is SQLAlchemy's adapter unchanged. Handed to `create_async_engine(module=dbapi())`.

Fewer hops per transaction, too: `BEGIN` is not sent alone but ahead of the
transaction's first statement, in its hop (a transaction that runs nothing sends
neither BEGIN nor COMMIT); a rollback when no transaction is open (the pool's reset
of every connection it gets back) needs no hop; work handed to `defer` rides with the
transaction's next hop, often its COMMIT. An error of deferred work is raised by that
hop (the commit then fails and the transaction is rolled back, as for any error).

`run_on_thread` goes one step further for a hot path that knows its SQL: a whole sequence
of plain `sqlite3` calls as one function on the connection's thread, inside the
transaction the SQLAlchemy connection has open (one hop, no SQLAlchemy per statement).
"""

from __future__ import annotations

import collections
import logging
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from cronkeeper.store.sqlite_connection import WriteLock, is_file

log = logging.getLogger("cronkeeper.store")

T = TypeVar("T")
Outcome = tuple[Any, list[Any] | None, int, int | None]
#: Work waiting for the connection's next hop, each a function of the sqlite3 connection.
Work = Callable[[sqlite3.Connection], Any]


def _then(work: list[Work], function: Callable[..., T], *args: Any) -> Callable[[], T]:
    """On the connection's thread: the waiting work, then `function(*args)`."""
    if not work:
        return partial(function, *args)

    def call() -> T:
        connection = args[0] if isinstance(args[0], sqlite3.Connection) else args[0]._conn
        for done in work:
            done(connection)
        return function(*args)

    return call


def _run(connection: Any, operation: str, parameters: Any, many: bool) -> Outcome:
    """On the connection's thread: execute, fetch everything, close; what the cursor saw."""
    cursor = connection._conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _begin(sql: str, lock: WriteLock | None) -> Work:
    """The work that opens a transaction; a write transaction waits for `lock` first."""

    def begin(connection: sqlite3.Connection) -> None:
        if lock is not None:
            lock.acquire()
        try:
            connection.execute(sql).close()
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    return begin


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute is one call on the aiosqlite thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no aiosqlite cursor: no hop
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount, self._lastrowid, self._arraysize = -1, None, 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # nothing is open on the thread

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._call(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        return await self._call(operation, seq_of_parameters, many=True)

    async def _call(self, operation: str, parameters: Any, many: bool) -> None:
        adapted = self._adapt_connection
        assert isinstance(adapted, OneHopConnection)
        self._description, self._rowcount, self._lastrowid = None, -1, None
        self._rows = collections.deque()
        if not many and operation.lstrip()[:5].upper() == "BEGIN":
            adapted.begin_later(operation)
            return
        async with adapted._execute_mutex:
            work = adapted.take_waiting()
            description, rows, rowcount, lastrowid = await self._connection._execute(
                _then(work, _run, self._connection, operation, parameters, many)
            )
        self._description, self._rowcount, self._lastrowid = description, rowcount, lastrowid
        self._rows = collections.deque(rows or ())


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The adapted connection. State, kept on the event loop's side: `_begin`, a BEGIN not
    sent yet; `_open`, a transaction may be open in SQLite (from a BEGIN, sent or not,
    until COMMIT or ROLLBACK: the only way one opens, with the driver's
    `isolation_level = None`, engine.py); `_waiting`, deferred work."""

    __slots__ = ("_begin", "_lock", "_open", "_waiting")
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any, lock: WriteLock | None = None) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None
        self._open = False
        self._waiting: list[Work] = []
        #: The ledger's cross-process turn to write (sqlite_connection.py), for BEGIN
        #: IMMEDIATE: taken on the thread with the BEGIN, given back after COMMIT/ROLLBACK.
        self._lock = lock

    def begin_later(self, sql: str) -> None:
        """A BEGIN: sent with the transaction's first hop, if it has one."""
        self._begin, self._open = sql, True

    def defer(self, work: Work) -> None:
        """Run `work` on the thread with the transaction's next hop (inside it)."""
        assert self._open, "deferred work belongs to a transaction"
        self._waiting.append(work)

    def take_waiting(self) -> list[Work]:
        """The work the next hop must do first (the BEGIN first), now handed over."""
        work = []
        if self._begin is not None:
            writes = "IMMEDIATE" in self._begin.upper()
            work.append(_begin(self._begin, self._lock if writes else None))
        work += self._waiting
        self._begin, self._waiting = None, []
        return work

    def commit(self) -> None:
        if self._begin is not None and not self._waiting:
            self._begin, self._open = None, False  # BEGIN alone: nothing ran
            return
        if not self._open:
            return  # no transaction: sqlite3's commit would do nothing
        work = self.take_waiting()
        driver = self._connection
        try:
            await_(driver._execute(_then(work, _commit, driver._conn)))
        except Exception as error:
            self._handle_exception(error)  # still open: the caller rolls back
        self._open = False
        self.release_lock()

    def release_lock(self) -> None:
        """Give the turn to write back, if this connection's transaction took it."""
        if self._lock is not None:
            self._lock.release()

    def end_later(self) -> None:
        """End a read-only transaction without waiting for it: its ROLLBACK is queued on
        the connection's thread, where it runs before anything the connection is asked
        next (the queue is first in, first out), so no caller waits a hop for it. Only for
        reads: a writer must not let the write lock go before its transaction ended."""
        if self._waiting or not self._open:
            return  # deferred work must run (or nothing is open): the usual way
        if self._begin is not None:  # BEGIN alone, never sent: nothing to end
            self._begin, self._open = None, False
            return
        self._connection._tx.put_nowait((None, self._connection._conn.rollback))
        self._open = False

    def rollback(self) -> None:
        never_sent = self._begin is not None
        self._begin, self._waiting = None, []
        try:
            if self._open and not never_sent:
                super().rollback()
        finally:
            self._open = False
            self.release_lock()

    def close(self) -> None:
        super().close()
        if self._lock is not None:
            self._lock.close()


def _commit(connection: sqlite3.Connection) -> None:
    connection.commit()


class OneHopDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI shim whose connections hand out one-hop cursors."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        connection = super().connect(*arg, **kw)
        database = arg[0] if arg else kw.get("database")
        lock = WriteLock(database) if isinstance(database, str) and is_file(database) else None
        return OneHopConnection(self, connection._connection, lock)


def _adapted(raw: Any) -> OneHopConnection:
    adapted = raw.dbapi_connection
    assert isinstance(adapted, OneHopConnection), "SQLite through store/sqlite_driver only"
    return adapted


async def run_on_thread(conn: AsyncConnection, function: Callable[..., T], *args: Any) -> T:
    """`function(sqlite3_connection, *args)` on the thread of `conn`'s aiosqlite connection,
    in one hop and inside `conn`'s open transaction (its statements are part of it). The
    function must not commit, roll back or keep cursors open."""
    adapted = _adapted(await conn.get_raw_connection())
    driver = adapted._connection
    async with adapted._execute_mutex:
        work = adapted.take_waiting()
        result: T = await driver._execute(_then(work, function, driver._conn, *args))
    return result


async def transaction_on_thread(
    conn: AsyncConnection,
    begin: str,
    function: Callable[..., T],
    *args: Any,
    after: Callable[[sqlite3.Connection], None] | None = None,
) -> T:
    """A whole write transaction in one hop: `begin` (e.g. `BEGIN IMMEDIATE`), then
    `function(sqlite3_connection, *args)`, then COMMIT — or ROLLBACK if it raised, and the
    error raised here. `after(sqlite3_connection)` runs in the same hop once committed; its
    error is logged, never raised (the transaction stands). `conn` must have no
    transaction open (none is, for SQLAlchemy)."""
    adapted = _adapted(await conn.get_raw_connection())
    assert not adapted._open, "transaction_on_thread opens its own transaction"
    driver = adapted._connection
    async with adapted._execute_mutex:
        result: T = await driver._execute(
            partial(transaction, driver._conn, begin, function, args, after, adapted._lock)
        )
    return result


def transaction(
    connection: sqlite3.Connection,
    begin: str,
    function: Callable[..., T],
    args: Sequence[Any],
    after: Callable[[sqlite3.Connection], None] | None,
    lock: WriteLock | None = None,
) -> T:
    """On `connection`'s own thread: wait for `lock`, `begin`, `function(connection,
    *args)`, COMMIT (or ROLLBACK and raise), then `after(connection)`, whose sqlite3 error
    is only logged; then give `lock` back."""
    _begin(begin, lock)(connection)  # gives the turn back itself if BEGIN fails
    try:
        try:
            result = function(connection, *args)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        if after is not None:
            try:
                after(connection)
            except sqlite3.Error as error:
                log.warning("after a commit: %s", error)
        return result
    finally:
        if lock is not None:
            lock.release()


async def end_read(conn: AsyncConnection) -> None:
    """End `conn`'s read-only transaction without a hop of its own (`end_later`); the
    transaction's COMMIT that SQLAlchemy then sends finds nothing open and costs nothing."""
    _adapted(await conn.get_raw_connection()).end_later()


async def defer(conn: AsyncConnection, function: Callable[..., Any], *args: Any) -> None:
    """`function(sqlite3_connection, *args)` with the next hop of `conn`'s transaction (at
    the latest its COMMIT), no hop of its own. Its error fails that hop: a deferred
    write that breaks a constraint fails the commit, and the transaction rolls back."""
    adapted = _adapted(await conn.get_raw_connection())
    adapted.defer(lambda connection: function(connection, *args))


def execute_all(
    connection: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]
) -> None:
    """On the connection's thread: each (SQL, rows) as one `executemany`, in order."""
    cursor = connection.cursor()
    try:
        for sql, rows in statements:
            if rows:
                cursor.executemany(sql, rows)
    finally:
        cursor.close()


def dbapi() -> OneHopDbapi:
    """The `module=` for `create_async_engine` on SQLite."""
    return OneHopDbapi(aiosqlite, sqlite3)


__all__: Sequence[str] = (
    "OneHopCursor",
    "dbapi",
    "defer",
    "end_read",
    "execute_all",
    "run_on_thread",
    "transaction",
    "transaction_on_thread",
)

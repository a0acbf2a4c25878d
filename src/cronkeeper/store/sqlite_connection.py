"""How every SQLite connection of Cronkeeper is set up, how write transactions of
several processes take turns (`WriteLock`), and how the write-ahead log is copied back
into the database file off the write path (`Checkpointer`).

Shared by the server's connections (engine.py, sqlite_driver.py) and the ping writer
process (write_process.py), which write the same file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("cronkeeper.store")

#: WAL pages after which a commit copies the WAL back itself, syncing the database
#: file, while every writer waits (SQLite's default is 1,000). Large, because the server's
#: checkpointer does that work off the write path; this is the backstop for processes
#: without one. At 10,000 pings wrote that many pages several times a second, and those
#: commits (35–60 ms each) set the ping p99.
WAL_AUTOCHECKPOINT = 100_000
#: Seconds between background checkpoints. After each, the next commit copies back what
#: was written meanwhile and syncs the file (see `Checkpointer`): the more often, the
#: less each of those commits carries. Pings, 64 clients: 0.25 s → p99 33–36 ms at
#: ~6,200/s; 0.1 s → p99 28 ms at ~5,400/s; 0.05 s → p99 36 ms, 4,900/s.
CHECKPOINT_EVERY = 0.1
#: Bytes a WAL file is cut back to when it starts over (it keeps its largest size otherwise).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def pragmas() -> tuple[str, ...]:
    """The pragmas every connection runs first (read when called: tests change the sizes)."""
    return (
        "PRAGMA journal_mode=WAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=30000",
        f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}",
        f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
    )


def configure_connection(connection: Any) -> None:
    """Set a new `sqlite3` connection up: BEGIN is ours to send (no implicit transactions),
    WAL, foreign keys, the sync level, busy timeout and WAL sizes."""
    connection.isolation_level = None
    cursor = connection.cursor()
    for pragma in pragmas():
        cursor.execute(pragma)
    cursor.close()


def is_file(database: str) -> bool:
    """Whether a SQLite database name is a file of its own (not in memory)."""
    return bool(database) and database != ":memory:" and "mode=memory" not in database


class WriteLock:
    """The turn to write one ledger, across processes: an exclusive `flock` on the file
    `<database>-lock`, taken before `BEGIN IMMEDIATE` and given back after COMMIT or
    ROLLBACK, on the thread that runs the transaction.

    Why: SQLite itself lets a writer that finds the database locked sleep and try again
    (1, 2, 5, 10 … ms, busy timeout): a writer that keeps writing, such as the ping writer
    process under load, leaves the other process's writers sleeping through turn after
    turn (measured: ping p99 338 ms). A waiter on this lock is woken the moment it is
    given back. (A lock on the database file itself would do, but closing any descriptor
    of that file drops SQLite's own POSIX locks of the process.)
    Where `fcntl` is missing (Windows), SQLite's own waiting is all there is.
    """

    def __init__(self, database: str) -> None:
        self.path = database + "-lock"
        self._fd: int | None = None
        self.held = False

    def acquire(self) -> None:
        """Wait for the turn (blocking: call it on the transaction's own thread)."""
        if fcntl is None:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        """Give the turn back (never blocks); nothing if it is not held."""
        if self.held and self._fd is not None and fcntl is not None:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def copy_back(connection: sqlite3.Connection) -> None:
    """Copy back what of the WAL no reader still needs, waiting for nobody."""
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").close()


class Checkpointer:
    """Copies SQLite's write-ahead log back into the database file in a thread of its own,
    at most once a CHECKPOINT_EVERY after a write, so that commits do not.

    Why: with SQLite's default, the commit that grows the WAL past 1,000 pages copies it
    back and syncs the file inside the write transaction, while every writer waits
    (measured on the ping path: half of the commit time, and the p99). A PASSIVE
    checkpoint on its own connection waits for nobody: it copies what no reader still
    needs, and writers go on appending meanwhile.

    The WAL starts over only when a write transaction begins with all of it copied back.
    Under a steady write load a commit lands while a checkpoint copies, so that never
    happens: the WAL would grow until a commit reached WAL_AUTOCHECKPOINT and copied
    100,000 pages itself. So the writer, right after its next commit, copies back the few
    pages written meanwhile (`finish`); the write transaction after it starts over.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-checkpoint")
        self._running: Future[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._unfinished = False

    def poke(self) -> None:
        """After a write: start a checkpoint if none ran for CHECKPOINT_EVERY."""
        now = time.monotonic()
        if self._running is not None or now - self._last < CHECKPOINT_EVERY:
            return
        self._last = now
        try:
            running = self._pool.submit(self._checkpoint)
        except RuntimeError:  # closed: the last commits stay in the WAL
            return
        self._running = running
        running.add_done_callback(self._done)

    def finish(self) -> Callable[[sqlite3.Connection], None] | None:
        """What the next write transaction should do once committed: copy back the rest of
        the WAL after a background checkpoint, else None."""
        if not self._unfinished:
            return None
        self._unfinished = False
        return copy_back

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        cursor = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        _, logged, _ = cursor.fetchone()
        cursor.close()
        self._unfinished = logged > 0

    def _done(self, running: Future[None]) -> None:
        self._running = None
        error = None if running.cancelled() else running.exception()
        if error is not None:
            log.warning("WAL checkpoint failed: %s", error)

    def close(self) -> None:
        """Wait for a checkpoint under way, then close its connection."""
        self._pool.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

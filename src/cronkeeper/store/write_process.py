"""The group writer's SQLite transactions in a process of their own (DESIGN §4 "Writes").

Why: in one process, the ping path and its SQLite writes share one interpreter lock. The
writer's thread releases it for every row SQLite steps through and then waits for it
while the event loop answers requests, and the other way round; measured under 64
concurrent ping clients on a 2-core machine, a batch of 32 pings spent 3.8 ms waiting
before it started and half its 5.8 ms of work waiting between statements. Here the
batches run in a second process with an interpreter of its own, on the second core;
the server's process only parses requests and answers them.

What runs here: the thread forms of the group writer (store/writer.py `run_forms`), one
whole transaction per batch, `BEGIN IMMEDIATE` … COMMIT, with the same pragmas as every
connection of the server and a WAL checkpointer of its own (engine.py). A form that
declines (a ping that creates or resumes its job) rolls back; the server then writes
that batch itself, the ordinary way. Write transactions of both processes take turns
on the ledger's write lock file (sqlite_connection.py `WriteLock`).

Group commit happens here: the server sends each batch as soon as it has it (several
may be on their way), and this process writes every batch that arrived while it wrote
the previous ones as ONE transaction, then answers each. So it never waits for the
server between transactions, and the batches grow with the load.

Protocol, over a socket pair; every message is a 4-byte big-endian length and a pickle:
  server → here: a FormWork (thread forms with their items), one batch;
  here → server: ("ready", pid) once the ledger is open, then per batch, in order
  ("done", answers) | ("declined",) | ("failed", error: rolled back, nothing written) |
  ("unknown", why: committed, but its answers could not be pickled).
The process ends when the server closes its end (or dies: the socket reports it).
If this process dies while it holds a batch, the server cannot know whether the batch
committed: its pings are answered with an error (writer.py `OutcomeUnknown`), and the
server writes later batches itself until a new process is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import pickle
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from cronkeeper.store.sqlite_connection import Checkpointer, WriteLock, configure_connection
from cronkeeper.store.sqlite_driver import transaction
from cronkeeper.store.writer import (
    Declined,
    FormWork,
    OutcomeUnknown,
    run_forms,
    thread_form_modules,
)

log = logging.getLogger("cronkeeper.store.write_process")

_LENGTH = struct.Struct(">I")
#: Seconds to wait for a new process to open the ledger before writing without it.
START_TIMEOUT = 30.0
#: Seconds before a lost process is started again.
RESTART_AFTER = 1.0


class WriteProcess:
    """The server's handle on the writer process: `start` it, `run` transactions in it,
    `close` it. Transactions may be sent while earlier ones are still being written: the
    process runs them one after another in the order sent and answers in that order. Not
    ready (`ready` False) until the process has opened the ledger, and again after it
    was lost: callers then write themselves."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: deque[asyncio.Future[Any]] = deque()  # one per transaction sent
        self._starting: asyncio.Task[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._closed = False
        #: Transactions the process committed (observability, tests).
        self.transactions = 0

    @property
    def ready(self) -> bool:
        return self._writer is not None and not self._closed

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.ready else None

    def start(self) -> None:
        """Start the process in the background; `ready` once it has opened the ledger."""
        if self._starting is None or self._starting.done():
            self._starting = asyncio.get_running_loop().create_task(
                self._start(), name="write-process-start"
            )

    async def wait_ready(self) -> bool:
        """Wait for a start under way; whether the process is ready."""
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        return self.ready

    async def run(self, work: FormWork) -> list[Sequence[Any]] | None:
        """One transaction in the process: the forms' answers, None if one declined. Raises
        the error that rolled it back, or OutcomeUnknown if the process was lost before
        it answered."""
        writer = self._writer
        if writer is None or self._closed:
            raise OutcomeUnknown("the writer process is not running")  # nothing was sent
        payload = pickle.dumps(work, pickle.HIGHEST_PROTOCOL)  # may raise: nothing sent
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies.append(reply)
        writer.write(_LENGTH.pack(len(payload)) + payload)
        kind, *rest = await reply
        if kind == "done":
            self.transactions += 1
            answers: list[Sequence[Any]] = rest[0]
            return answers
        if kind == "declined":
            return None
        if kind == "unknown":  # committed, but its answers could not be sent back
            raise OutcomeUnknown(f"the writer process: {rest[0]}")
        raise rest[0]

    async def close(self) -> None:
        """End the process once it has answered what it holds; wait for it to exit."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._replies:  # the group writer has waited for them: only after a loss
            await asyncio.gather(*self._replies, return_exceptions=True)
        writer, process = self._writer, self._process
        self._writer = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if process is not None:
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)

    async def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "cronkeeper.store.write_process",
                str(theirs.fileno()),
                self.path,
                *thread_form_modules(),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            ours.close()
            log.warning("writer process could not start (%s); writing in-process", error)
            return
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        try:
            hello = _load(await asyncio.wait_for(_read_frame(reader), START_TIMEOUT))
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as error:
            writer.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            log.warning("writer process did not start (%r); writing in-process", error)
            return
        if self._closed:
            writer.close()
            return
        assert hello[0] == "ready"
        self._process, self._writer = process, writer
        self._reading = asyncio.get_running_loop().create_task(
            self._read_replies(reader, writer, process), name="write-process-replies"
        )
        log.info("ping writer process %d ready", process.pid)

    async def _read_replies(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        process: asyncio.subprocess.Process,
    ) -> None:
        """Hand each reply to the oldest transaction waiting; until the process ends."""
        try:
            while True:
                reply = _load(await _read_frame(reader))
                waiting = self._replies.popleft()
                if not waiting.done():
                    waiting.set_result(reply)
        except (OSError, EOFError, asyncio.IncompleteReadError) as error:
            why = repr(error)
        code = await process.wait()
        if self._writer is writer:
            self._lost(f"ended (exit code {code}, {why})")

    def _lost(self, why: str) -> None:
        """Forget the process (the server writes itself meanwhile), fail what it held, and
        start a new one soon."""
        if not self._closed:
            log.error("writer process %s %s", self.pid, why)
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        while self._replies:
            waiting = self._replies.popleft()
            if not waiting.done():
                waiting.set_exception(OutcomeUnknown(f"the writer process {why}"))
        if not self._closed:
            asyncio.get_running_loop().call_later(RESTART_AFTER, self._restart)

    def _restart(self) -> None:
        if not self._closed and not self.ready:
            self.start()


def _load(payload: bytes) -> Any:
    # Only ever from the other end of our own socket pair: this process and its server.
    return pickle.loads(payload)  # noqa: S301


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(length)


# -- the process ---------------------------------------------------------------------


def serve(channel: socket.socket, path: str, modules: Sequence[str] = ()) -> None:
    """The process: import the thread forms' modules, open the ledger, say so, then write
    what is sent until the server closes its end: each time, every transaction that has
    arrived meanwhile together, as one (`_write_together`)."""
    for module in modules:
        try:
            importlib.import_module(module)  # ~1 s: not while the first batch waits
        except ImportError as error:  # its batches will fail, not the process
            log.warning("writer process cannot import %s: %s", module, error)
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    configure_connection(db)
    checkpointer = Checkpointer(path)
    lock = WriteLock(path)
    inbox = _Inbox(channel)
    _send(channel, ("ready", os.getpid()))
    gc.collect()
    gc.freeze()
    try:
        while (payloads := inbox.take()) is not None:
            for reply in _write_together(db, payloads, checkpointer, lock):
                _send(channel, reply)
    finally:
        lock.close()
        checkpointer.close()
        db.close()


def _write_together(
    db: sqlite3.Connection, payloads: list[bytes], checkpointer: Checkpointer, lock: WriteLock
) -> list[Any]:
    """The transactions sent, as ONE transaction (group commit: the server sends each
    batch as soon as it has it, and what arrives while this process writes is written
    together next); a reply for each, in order. If the whole cannot be written together
    (a form declined, or an error), each is written alone, so each gets its own answer."""
    works: list[Any] = []
    for payload in payloads:
        try:
            works.append(_load(payload))
        except Exception as error:
            works.append(("failed", error))
    loaded = [work for work in works if isinstance(work, list)]
    if len(loaded) > 1:
        merged, places = _merge(loaded)
        reply = _transact(db, merged, checkpointer, lock)
        if reply[0] == "done":
            split = iter(_split(reply[1], places))
            return [("done", next(split)) if isinstance(w, list) else w for w in works]
    return [_transact(db, w, checkpointer, lock) if isinstance(w, list) else w for w in works]


def _merge(works: list[FormWork]) -> tuple[FormWork, list[list[tuple[int, int, int]]]]:
    """Several transactions' work as one, in order (a form's items run together where the
    same form comes next), and where each transaction's answers will be: per transaction,
    (merged position, offset, count) of each of its forms."""
    merged: FormWork = []
    places: list[list[tuple[int, int, int]]] = []
    for work in works:
        mine = []
        for form, items in work:
            if merged and merged[-1][0] is form:
                offset = len(merged[-1][1])
                merged[-1][1].extend(items)  # our own list (made below)
            else:
                offset = 0
                merged.append((form, list(items)))
            mine.append((len(merged) - 1, offset, len(items)))
        places.append(mine)
    return merged, places


def _split(
    answers: list[Sequence[Any]], places: list[list[tuple[int, int, int]]]
) -> list[list[Sequence[Any]]]:
    """The merged transaction's answers, handed back per transaction (`_merge`)."""
    return [[answers[at][offset : offset + count] for at, offset, count in mine] for mine in places]


def _transact(
    db: sqlite3.Connection, work: FormWork, checkpointer: Checkpointer, lock: WriteLock
) -> Any:
    """One transaction: BEGIN IMMEDIATE, the forms, COMMIT (the reply says how it went)."""
    try:
        after = checkpointer.finish()
        answers = transaction(db, "BEGIN IMMEDIATE", run_forms, (work,), after, lock)
    except Declined:
        return ("declined",)
    except Exception as error:
        return ("failed", error)
    checkpointer.poke()
    return ("done", answers)


class _Inbox:
    """The frames the server sends, taken all at once: `take` waits for one, then takes
    every other one already arrived, without waiting."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.buffer = bytearray()
        self.ended = False

    def take(self) -> list[bytes] | None:
        """The payloads arrived (at least one); None once the server has closed its end."""
        while not self.ended and not self._complete():
            self._receive(wait=True)
        while not self.ended and self._receive(wait=False):
            pass
        payloads = []
        while self._complete():
            (length,) = _LENGTH.unpack_from(self.buffer)
            payloads.append(bytes(self.buffer[_LENGTH.size : _LENGTH.size + length]))
            del self.buffer[: _LENGTH.size + length]
        return payloads or None

    def _complete(self) -> bool:
        if len(self.buffer) < _LENGTH.size:
            return False
        length: int = _LENGTH.unpack_from(self.buffer)[0]
        return len(self.buffer) >= _LENGTH.size + length

    def _receive(self, *, wait: bool) -> bool:
        try:
            chunk = self.channel.recv(1 << 20, 0 if wait else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.ended = True
        self.buffer += chunk
        return len(chunk) > 0


def _send(channel: socket.socket, message: Any) -> None:
    try:
        payload = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # an answer that cannot cross: say what is known
        said = f"its reply could not be sent ({error!r})"
        fallback = ("unknown", said) if message[0] == "done" else ("failed", RuntimeError(said))
        payload = pickle.dumps(fallback, pickle.HIGHEST_PROTOCOL)
    channel.sendall(_LENGTH.pack(len(payload)) + payload)


def main(argv: list[str]) -> int:
    """`python -m cronkeeper.store.write_process FD PATH [MODULE …]` (started by
    `WriteProcess`)."""
    # The server drains and then closes the socket; a Ctrl-C or SIGTERM sent to the whole
    # process group must not end this process before that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    fd, path, modules = int(argv[0]), argv[1], argv[2:]
    with socket.socket(fileno=fd) as channel:
        serve(channel, path, modules)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

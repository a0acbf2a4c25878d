"""Group commit for the hot write paths (pings, events): DESIGN §4 "Writes".

Callers `submit` an item together with the batch function that writes it. One writer
task per process takes everything queued (up to `max_batch` items), runs the batch
functions in ONE write transaction, commits, and only then resolves each caller: an
answer means the write is durable. Under load, the items that arrive while a
transaction commits form the next batch, so the cost of a commit is shared without
waiting on a timer.

Contract of a batch function `apply(conn, items) -> results`: one result per item, in
order; a result that is an exception is raised to that item's caller, and the function
must have written nothing for that item. If `apply` (or the commit) raises, nothing of
the batch was written: each item is then retried alone in its own transaction, so only
the item at fault fails.

A batch function may also have a *thread form* (`thread_form`), a plain function of a
`sqlite3` connection: on SQLite, when every batch function of a transaction has one, the
whole transaction — BEGIN, their statements and decisions, COMMIT — is one call
(`run_forms`) where a `sqlite3` connection lives: the ping writer process
(store/write_process.py) or the connection's thread (`Database.write_on_thread`), instead
of SQLAlchemy statements that each cross to that thread and back. A thread form answers
None when it cannot do its items there (it must have written nothing); the transaction
is then rolled back and the batch written the ordinary way. Thread forms are
module-level functions and their items and results pickle (they may cross to the
writer process).

If the writer process is lost while it holds a batch (`OutcomeUnknown`), nobody knows
whether that batch committed: its callers get the error, and nothing is retried (a retry
could write the batch twice).

The task is started by the first `submit` (the HTTP tests run the app without its
lifespan) and stopped by `close`, which first writes whatever is queued.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("cronkeeper.writer")

Item = TypeVar("Item")
Result = TypeVar("Result")
#: Writes a batch of items on one connection; see the module docstring for the contract.
BatchFunction = Callable[[AsyncConnection, list[Item]], Awaitable[Sequence[Result | Exception]]]
#: The same on a `sqlite3` connection's own thread; None: "not here, take the usual way".
ThreadForm = Callable[[sqlite3.Connection, list[Item]], Sequence[Result | Exception] | None]
#: Thread forms with their items, in the order a transaction runs them.
FormWork = list[tuple[ThreadForm[Any, Any], list[Any]]]
#: Runs `run_forms` as one whole write transaction: each form's answers, or None when a
#: form declined (rolled back, nothing written).
RunForms = Callable[[FormWork], Awaitable[list[Sequence[Any]] | None]]
_thread_forms: dict[Any, Any] = {}


def thread_form(
    apply: BatchFunction[Item, Result],
) -> Callable[[ThreadForm[Item, Result]], ThreadForm[Item, Result]]:
    """Decorator: the function is `apply`'s thread form (module docstring)."""

    def register(form: ThreadForm[Item, Result]) -> ThreadForm[Item, Result]:
        _thread_forms[apply] = form
        return form

    return register


def thread_form_modules() -> list[str]:
    """The modules that define the thread forms known here (a writer process imports them
    before it says it is ready, not while it holds the first batch)."""
    return sorted({form.__module__ for form in _thread_forms.values()})


class Declined(Exception):
    """A thread form declined its items: roll back, write the batch the usual way."""


class OutcomeUnknown(Exception):
    """The batch's transaction may or may not have committed (its writer process was lost
    before it answered): the callers are told, the items are not written again."""


def run_forms(db: sqlite3.Connection, work: FormWork) -> list[Sequence[Any]]:
    """Inside a write transaction on `db`: every thread form on its items, their answers
    in order; Declined if one declined (the caller rolls back)."""
    answers = []
    for form, items in work:
        answered = form(db, items)
        if answered is None:
            raise Declined
        if len(answered) != len(items):
            raise RuntimeError(f"{form!r} answered {len(answered)} of {len(items)}")
        answers.append(answered)
    return answers


@dataclass(frozen=True)
class _Pending:
    apply: BatchFunction[Any, Any]
    item: Any
    waiter: asyncio.Future[Any]


class GroupWriter:
    """The single writer task of a process: batches submitted writes into shared
    transactions opened with `begin_write` (the Database's write discipline)."""

    def __init__(
        self,
        begin_write: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        max_batch: int = 500,
        run_forms: RunForms | None = None,
        in_flight: Callable[[], int] = lambda: 1,
    ) -> None:
        self._begin_write = begin_write
        self._run_forms = run_forms
        self._in_flight = in_flight
        self.max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        #: Committed write transactions and the items they acknowledged (observability, tests).
        self.transactions = 0
        self.items = 0

    async def submit(self, apply: BatchFunction[Item, Result], item: Item) -> Result:
        """Queue `item` and wait until the transaction that wrote it has committed.

        Raises what `apply` reported for the item, or the error that rolled it back. A
        caller cancelled before its batch started is dropped, never written.
        """
        return await self.enqueue(apply, item)

    def enqueue(self, apply: BatchFunction[Item, Result], item: Item) -> asyncio.Future[Result]:
        """`submit` without a coroutine, for callers that answer from a callback (the ping
        fast path): the future resolves once the item's transaction committed; cancelling
        it before its batch starts drops the item."""
        waiter: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(apply, item, waiter))
        self._ensure_started()
        self._wakeup.set()
        return waiter

    async def close(self) -> None:
        """Write everything queued, then stop the task (a later `submit` starts it again)."""
        task = self._task
        if task is None:
            return
        if task.get_loop() is not asyncio.get_running_loop():
            self._task = None  # its loop is gone (a test's loop); nothing can be waiting
            return
        self._closing = True
        self._wakeup.set()
        try:
            await task
        finally:
            if self._task is task:
                self._task, self._closing = None, False

    def _ensure_started(self) -> None:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return
        self._wakeup, self._closing = asyncio.Event(), False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-writer")

    async def _run(self) -> None:
        """Take what is queued as the next batch whenever fewer than `in_flight()` batches
        are being written (1: one after another; several with the writer process, which
        writes them in the order sent: engine.py `BATCHES_TO_WRITE_PROCESS`)."""
        writing: set[asyncio.Task[None]] = set()
        while True:
            while self._queue and len(writing) < self._in_flight():
                count = min(len(self._queue), self.max_batch)
                batch = [self._queue.popleft() for _ in range(count)]
                live = [entry for entry in batch if not entry.waiter.done()]
                task = asyncio.get_running_loop().create_task(self._write(live))
                writing.add(task)
                task.add_done_callback(partial(self._written, writing))
            if self._closing and not self._queue:
                await asyncio.gather(*writing)
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    def _written(self, writing: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        writing.discard(task)
        self._wakeup.set()  # room for the next batch

    async def _write(self, batch: list[_Pending]) -> None:
        """Write a batch in one transaction and answer its callers; on failure, retry each
        item alone so that one bad item cannot fail the others."""
        if not batch:
            return
        try:
            results = await self._transaction(batch)
        except OutcomeUnknown as error:
            log.error("%d writes may not have been committed: %s", len(batch), error)
            for entry in batch:
                _answer(entry, error)
            return
        except Exception as error:
            if len(batch) == 1:
                _answer(batch[0], error)
                return
            log.warning("group commit of %d writes failed (%s); retrying each", len(batch), error)
            for entry in batch:
                await self._write([entry])
            return
        self.transactions += 1
        self.items += len(batch)
        for entry, result in zip(batch, results, strict=True):
            _answer(entry, result)

    async def _transaction(self, batch: list[_Pending]) -> list[Any]:
        groups: dict[BatchFunction[Any, Any], list[int]] = {}
        for position, entry in enumerate(batch):
            groups.setdefault(entry.apply, []).append(position)
        results: list[Any] = [None] * len(batch)
        forms = [_thread_forms.get(apply) for apply in groups]
        if self._run_forms is not None and all(forms):
            work: FormWork = [
                (form, [batch[p].item for p in positions])
                for form, positions in zip(forms, groups.values(), strict=True)
                if form is not None
            ]
            answered = await self._run_forms(work)
            if answered is not None:
                for positions, answers in zip(groups.values(), answered, strict=True):
                    for position, answer in zip(positions, answers, strict=True):
                        results[position] = answer
                return results
        async with self._begin_write() as conn:
            for apply, positions in groups.items():
                answers = await apply(conn, [batch[p].item for p in positions])
                if len(answers) != len(positions):
                    raise RuntimeError(f"{apply!r} answered {len(answers)} of {len(positions)}")
                for position, answer in zip(positions, answers, strict=True):
                    results[position] = answer
        return results


def _answer(entry: _Pending, result: Any) -> None:
    if entry.waiter.done():  # the caller gave up (cancelled) meanwhile
        return
    if isinstance(result, Exception):
        entry.waiter.set_exception(result)
    else:
        entry.waiter.set_result(result)

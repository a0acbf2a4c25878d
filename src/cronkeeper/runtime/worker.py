"""The worker: claims queued runs, executes their attempts, records the outcomes.

One loop claims while there is capacity, including runs due within `claim_ahead`
seconds: the database work of claiming is done before the slot, and so is the executor's
shaping of the request where it can (`Preparing`); each claimed run waits in its own task
(runs due at one moment share one sleep) to start at its exact time, then executes;
finished attempts are recorded by one recorder task, many per transaction (group
commit); one lease loop renews every lease of this node at once and cancels attempts
whose run was cancelled (or reaped) meanwhile.
On stop: claim nothing more, let in-flight runs finish for up to `drain_timeout`, then
release the rest back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import AttemptRequest, Executor, Outcome
from cronkeeper.domain.settlement import Settlement
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.runtime.tracing import Tracing
from cronkeeper.runtime.waiting import wait_for_any
from cronkeeper.service import execution
from cronkeeper.service.context import Context
from cronkeeper.service.execution import ClaimedRun, Finished

log = logging.getLogger("cronkeeper.worker")
RECORD_BATCH = 100
#: How long before its slot a run may be claimed (seconds). Enough to do every claim's
#: database work before 10,000 runs due in one second start; short, because each claim
#: passes over the not-yet-due runs of busy jobs within this window (1,000 jobs running
#: every second: 4,000 such runs at 5 s, a third of the server's CPU).
CLAIM_AHEAD = 2.0
CLAIM_BATCH = 250
CLAIM_GAP = 0.05  # seconds between claims woken by ending runs (not by new runs)


@runtime_checkable
class Preparing(Protocol):
    """An executor that can work out a target's request ahead of the run (HttpExecutor)."""

    def prepare(self, target: dict[str, Any]) -> None: ...


class Worker:
    def __init__(
        self,
        ctx: Context,
        executors: Mapping[str, Executor],
        *,
        node: str,
        queues: tuple[str, ...] = ("default",),
        capacity: int = 10_000,
        claim_ahead: float = CLAIM_AHEAD,
        lease: float = 30.0,
        poll: float = 0.5,
        drain_timeout: float = 30.0,
        rng: Callable[[], float] = random.random,
        tracing: Tracing | None = None,
    ) -> None:
        self.ctx, self.executors, self.node = ctx, executors, node
        self.queues, self.capacity, self.lease = list(queues), capacity, lease
        self.claim_ahead = claim_ahead
        self.poll, self.drain_timeout, self.rng = poll, drain_timeout, rng
        self.tracing = tracing or Tracing()
        self.active: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._preparers = {
            kind: executor.prepare
            for kind, executor in executors.items()
            if isinstance(executor, Preparing)
        }
        self._done = asyncio.Event()
        # runs claimed ahead wait for their start moment, one sleeping waker per moment
        self._starts: dict[datetime, asyncio.Event] = {}
        self._wakers: set[asyncio.Task[None]] = set()
        self._finished: asyncio.Queue[tuple[Finished, asyncio.Future[Settlement | None]]] = (
            asyncio.Queue()
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and execute runs until `stopping` is set, then drain."""
        helpers = [asyncio.create_task(self._renew_leases()), asyncio.create_task(self._record())]
        try:
            while not stopping.is_set():
                claimed = await self._claim()
                if not claimed:
                    await self._idle(stopping)
        finally:
            await self._drain()
            helpers += self._wakers  # whoever waited for them has been drained
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _claim(self) -> int:
        free = self.capacity - len(self.active)
        if free <= 0:
            return 0
        try:
            claimed = await execution.claim_runs(
                self.ctx,
                node=self.node,
                queues=self.queues,
                limit=min(free, CLAIM_BATCH),
                lease=self.lease,
                ahead=self.claim_ahead,
            )
        except Exception:
            log.exception("claiming runs failed; retrying")
            return 0
        for item in claimed:
            self.active[item.run.id] = asyncio.create_task(self._execute(item))
        return len(claimed)

    async def _idle(self, stopping: asyncio.Event) -> None:
        """After a claim that took nothing: sleep until the next queued run can be claimed
        (`claim_ahead` before it is due) — or, if it is already that close and still was
        not taken (its job is busy), until it is due, when its overlap policy decides
        (at most `poll`); or until a run is queued in this process or a running one ends
        (capacity freed, a job no longer busy). Runs already due but waiting for their
        busy job are woken by that job's run ending, not polled for."""
        queued = self.ctx.wakeups.runs_queued
        queued.clear()
        self._done.clear()
        delay = self.poll
        with contextlib.suppress(Exception):
            now = self.ctx.clock.now()
            due = await execution.next_queued_at(self.ctx, self.queues, after=now)
            if due is not None:
                until = (due - now).total_seconds()
                wait = until - self.claim_ahead if until > self.claim_ahead else until
                delay = min(delay, max(0.0, wait))
        await wait_for_any(self.ctx.clock, delay, stopping, queued, self._done)
        if self._done.is_set() and not queued.is_set():
            # Runs end by the hundred a second under load: claim for many of them at once.
            await wait_for_any(self.ctx.clock, CLAIM_GAP, stopping, queued)

    async def _execute(self, claimed: ClaimedRun) -> None:
        self._prepare(claimed)
        try:
            await self._until_start(claimed)
        except asyncio.CancelledError:  # cancelled, or released at shutdown, before starting
            self.active.pop(claimed.run.id, None)
            self._done.set()
            return
        started = self.ctx.clock.now()
        try:
            with self.tracing.attempt(claimed) as attempt:
                outcome = await self._attempt(claimed, attempt.request)
                attempt.ended(outcome)
            recorded: asyncio.Future[Settlement | None] = asyncio.get_running_loop().create_future()
            ended = self.ctx.clock.now()
            self._finished.put_nowait((Finished(claimed, outcome, started, ended), recorded))
            decision = await recorded
            if decision is not None:
                self.tracing.run_ended(claimed, decision, self.ctx.clock.now())
        except asyncio.CancelledError:
            pass  # cancelled by the API, reaped, or released at shutdown: recorded elsewhere
        except Exception:
            log.exception("recording run %s failed", claimed.run.id)
        finally:
            self.active.pop(claimed.run.id, None)
            self._done.set()

    def _prepare(self, claimed: ClaimedRun) -> None:
        """Let the executor work out the run's request now, while the run waits for its
        slot: 10,000 runs due at once each start that much sooner."""
        prepare = self._preparers.get(claimed.spec.kind.value)
        if prepare is None or claimed.spec.target is None:
            return
        try:
            prepare(claimed.spec.target)
        except Exception:  # the attempt meets the same problem and reports it
            log.exception("preparing run %s failed", claimed.run.id)

    async def _until_start(self, claimed: ClaimedRun) -> None:
        """Wait for the start of a run claimed ahead of its time. Runs due at the same
        moment share one sleep: 10,000 timers coming due at once would each hold up the
        start of every run."""
        starts_at = claimed.starts_at
        if starts_at is None:
            return
        delay = (starts_at - self.ctx.clock.now()).total_seconds()
        if delay <= 0:
            return
        start = self._starts.get(starts_at)
        if start is None:
            start = self._starts[starts_at] = asyncio.Event()
            waker = asyncio.create_task(self._wake(starts_at, delay, start))
            self._wakers.add(waker)
            waker.add_done_callback(self._wakers.discard)
        await start.wait()

    async def _wake(self, moment: datetime, delay: float, start: asyncio.Event) -> None:
        """Start the runs due at `moment` after `delay` seconds."""
        await self.ctx.clock.sleep(delay)
        del self._starts[moment]
        start.set()

    async def _attempt(self, claimed: ClaimedRun, request: AttemptRequest) -> Outcome:
        executor = self.executors.get(claimed.spec.kind.value)
        if executor is None:
            return Outcome(
                status=AttemptStatus.EXCEPTION,
                failure_reason=FailureReason.UNKNOWN,
                error=f"no executor for {claimed.spec.kind.value} jobs on this node",
            )
        try:
            return await executor.execute(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # an executor bug must not lose the run
            log.exception("executor failed on run %s", claimed.run.id)
            return Outcome(
                status=AttemptStatus.EXCEPTION,
                failure_reason=FailureReason.UNKNOWN,
                error_class=type(error).__qualname__,
                error=str(error)[:2000],
            )

    async def _record(self) -> None:
        """Record finished attempts, everything waiting at once in one transaction."""
        while True:
            batch = [await self._finished.get()]
            # Up to RECORD_BATCH per transaction: one commit for many, yet short enough not
            # to hold up runs due to start meanwhile on this event loop.
            while not self._finished.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._finished.get_nowait())
            futures = [future for _, future in batch]
            try:
                decisions = await execution.record_outcomes(
                    self.ctx, [item for item, _ in batch], node=self.node, random=self.rng
                )
            except Exception as error:
                log.exception("recording %d outcomes failed", len(batch))
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
                continue
            for future, decision in zip(futures, decisions, strict=True):
                if not future.done():
                    future.set_result(decision)

    async def _renew_leases(self) -> None:
        interval = min(2.0, self.lease / 3)
        while True:
            await wait_for_any(self.ctx.clock, interval)
            ids = list(self.active)
            if not ids:
                continue
            try:
                ours = await execution.renew_leases(
                    self.ctx, node=self.node, run_ids=ids, lease=self.lease
                )
            except Exception:
                log.exception("renewing leases failed; retrying")
                continue
            for run_id in set(ids) - ours:
                task = self.active.get(run_id)
                if task is not None:
                    task.cancel()

    async def _drain(self) -> None:
        if self.active:
            _, pending = await asyncio.wait(list(self.active.values()), timeout=self.drain_timeout)
            if pending:
                ids = [run_id for run_id, task in self.active.items() if task in pending]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await execution.release_runs(self.ctx, node=self.node, run_ids=ids)

"""The scheduler loop: one loop over the due-time index, no timer per job.

Each pass turns every due slot into a run (`service.execution.fire_due_slots`), then
sleeps until the earliest next fire (at most `max_sleep`), or until a job changes.
"""

from __future__ import annotations

import asyncio
import logging

from cronkeeper.runtime.waiting import wait_for_any
from cronkeeper.service import execution
from cronkeeper.service.context import Context

log = logging.getLogger("cronkeeper.scheduler")


class Scheduler:
    """`batch`: slots per transaction. Small batches keep the event loop responsive (a
    transaction's statement building runs on it), so runs start on time meanwhile."""

    def __init__(self, ctx: Context, *, batch: int = 250, max_sleep: float = 1.0) -> None:
        self.ctx = ctx
        self.batch = batch
        self.max_sleep = max_sleep
        self.fired = 0

    async def run_once(self) -> int:
        """Fire everything due now; returns how many runs were created."""
        created = 0
        while True:
            count = await execution.fire_due_slots(self.ctx, self.batch)
            created += count
            if count < self.batch:
                break
        if created:
            self.fired += created
            self.ctx.wakeups.runs_queued.set()
        return created

    async def run(self, stopping: asyncio.Event) -> None:
        """Fire due slots until `stopping` is set."""
        changed = self.ctx.wakeups.jobs_changed
        while not stopping.is_set():
            changed.clear()
            try:
                await self.run_once()
                delay = await self._until_next_due()
            except Exception:  # a passing database error must not stop scheduling
                log.exception("scheduler pass failed; retrying")
                delay = self.max_sleep
            await wait_for_any(self.ctx.clock, delay, stopping, changed)

    async def _until_next_due(self) -> float:
        due = await execution.next_due_at(self.ctx)
        if due is None:
            return self.max_sleep
        seconds = (due - self.ctx.clock.now()).total_seconds()
        return min(self.max_sleep, max(0.0, seconds))

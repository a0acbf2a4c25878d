"""The scheduler loop: one loop over the due-time index, no timer per job.

Each pass turns every slot due within the look-ahead into a run
(`service.execution.fire_due_slots`), then sleeps until the earliest next slot enters
the look-ahead (at most `max_sleep`), or until a job changes. Passes fall on the half
second (`PASS_PHASE`): slots fall on whole seconds, so a pass creating a thousand runs
never competes with the starts of the runs due at a whole second.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from cronkeeper.runtime.waiting import wait_for_any
from cronkeeper.service import execution
from cronkeeper.service.context import Context

log = logging.getLogger("cronkeeper.scheduler")

#: The fraction of a second at which passes begin.
PASS_PHASE = 0.5


def next_pass_in(
    now: datetime, due: datetime | None, lookahead: timedelta, max_sleep: float
) -> float:
    """Seconds until the next pass: when the earliest next slot `due` enters the
    look-ahead, at most `max_sleep` from now, then on to the next `PASS_PHASE`."""
    latest = now + timedelta(seconds=max_sleep)
    target = latest if due is None else max(now, min(latest, due - lookahead))
    shift = (PASS_PHASE - target.timestamp()) % 1.0
    return (target - now).total_seconds() + shift


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
        return next_pass_in(self.ctx.clock.now(), due, execution.LOOKAHEAD, self.max_sleep)

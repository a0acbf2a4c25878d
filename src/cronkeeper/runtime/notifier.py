"""The notifier loop: due alerts → notifications → deliveries, on the injected clock.

Each pass turns due alerts into notifications, then claims due notifications (leased,
so another process does not send them too) as the messages their channels' rate limits
allow now — `window`, counted per channel across every process, which also paces a
channel's sends so that a burst goes out as a few digests — and sends each message in
its own task, at most `concurrency` in flight. Between passes it sleeps until the next
alert, retry or put-off notification falls due (a channel's next send), at most `poll`
seconds, and wakes early when the monitor of this process queues an alert
(`ctx.wakeups.alerts_pending`) or a delivery ends. An error is logged and the loop
carries on. On stop, deliveries in flight finish (each is bounded by its channel's
timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cronkeeper.channels import Dispatcher
from cronkeeper.domain.notifications import SendWindow
from cronkeeper.runtime.waiting import wait_for_any
from cronkeeper.service import notifier
from cronkeeper.service.context import Context
from cronkeeper.service.notifier import Send

log = logging.getLogger("cronkeeper.notifier")


class Notifier:
    def __init__(
        self,
        ctx: Context,
        *,
        poll: float = 0.5,
        concurrency: int = 200,
        window: SendWindow | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.ctx, self.poll, self.concurrency = ctx, poll, concurrency
        self.window = window or SendWindow(limit=30, window=60.0)
        self.dispatcher = dispatcher or Dispatcher(ctx.ssrf)
        self.active: set[asyncio.Task[None]] = set()
        self._done = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver alerts until `stopping` is set; then let deliveries in flight finish."""
        try:
            while not stopping.is_set():
                if not await self.tick():
                    await self._idle(stopping)
        finally:
            await self.drain()
            await self.dispatcher.close()

    async def tick(self) -> int:
        """One pass: process due alerts, start due deliveries; returns how many notifications
        they carry."""
        try:
            await notifier.process_due_alerts(self.ctx)
        except Exception:
            log.exception("processing due alerts failed; retrying")
        free = self.concurrency - len(self.active)
        if free <= 0:
            return 0
        try:
            sends = await notifier.claim_deliveries(self.ctx, self.window, limit=free)
        except Exception:
            log.exception("claiming notifications failed; retrying")
            return 0
        for send in sends:
            task = asyncio.create_task(self._deliver(send))
            self.active.add(task)
            task.add_done_callback(self._finished)
        return sum(len(send.items) for send in sends)

    async def drain(self) -> None:
        """Wait for every delivery in flight."""
        if self.active:
            await asyncio.gather(*self.active, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.active.discard(task)
        self._done.set()

    async def _deliver(self, send: Send) -> None:
        """Send one claimed message (a notification, or a digest of several)."""
        try:
            statuses = await notifier.deliver_send(self.ctx, self.dispatcher, send)
        except Exception:
            log.exception("delivering %d notifications failed", len(send.items))
            return
        for item, status in zip(send.items, statuses, strict=False):
            if status == "failed":
                log.warning(
                    "notification %s to channel %s failed for good",
                    item.notification.id,
                    item.channel.name,
                )

    async def _idle(self, stopping: asyncio.Event) -> None:
        """Sleep until the next alert or retry is due (at most `poll`), or a nudge."""
        pending = self.ctx.wakeups.alerts_pending
        pending.clear()
        self._done.clear()
        delay = self.poll
        with contextlib.suppress(Exception):
            due = await notifier.next_due_at(self.ctx)
            if due is not None:
                # never a busy loop: something due but not taken (all slots busy, or an
                # error) is looked at again shortly
                delay = min(delay, max(0.05, (due - self.ctx.clock.now()).total_seconds()))
        await wait_for_any(self.ctx.clock, delay, stopping, pending, self._done)

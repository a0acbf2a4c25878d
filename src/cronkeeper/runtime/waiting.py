"""Waiting that a stop request or a nudge can cut short."""

from __future__ import annotations

import asyncio
import contextlib

from cronkeeper.clock import Clock


async def wait_for_any(clock: Clock, seconds: float, *events: asyncio.Event) -> None:
    """Return after `seconds` of the clock's time, or as soon as any event is set."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    sleeper = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    try:
        await asyncio.wait([sleeper, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, *waiters):
            task.cancel()
        for task in (sleeper, *waiters):
            with contextlib.suppress(asyncio.CancelledError):
                await task

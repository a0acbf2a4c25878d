"""A channel's rate limit is the channel's, not each process's: two notifiers on one
database (PostgreSQL, or one SQLite file) together send it no more messages per window
than the limit, the rest going out as digests or later — none lost, none sent twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from cronkeeper.domain.models import Actor
from cronkeeper.domain.notifications import SendWindow
from cronkeeper.runtime.notifier import Notifier
from cronkeeper.service import channels as channel_service
from cronkeeper.service.context import Context
from cronkeeper.service.setup import open_context
from cronkeeper.testing import FakeClock

from .conftest import (
    ALLOW_LOOPBACK,
    add_alert,
    make_channel,
    make_job,
    notification_rows,
    pass_once,
)
from .peers import Receiver

LIMIT = 5
JOBS = 20


def told(body: str) -> list[str]:
    """The jobs one received message tells about (a digest stands for several)."""
    message: dict[str, Any] = json.loads(body)
    if message["event"] == "digest":
        return [part["job"]["slug"] for part in message["alerts"]]
    return [message["job"]["slug"]]


async def pass_together(first: Notifier, second: Notifier) -> None:
    """Both notifiers tick at the same moment until neither finds anything to send now."""
    for _ in range(200):
        started = await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick())
        if not any(started) and not (first.active or second.active):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the notifiers kept finding work")


async def test_two_notifiers_share_one_channels_rate_limit_and_lose_nothing(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, db_url: str
) -> None:
    receiver.delay = 0.01  # deliveries overlap the other process's claims
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    for index in range(JOBS):
        await add_alert(ctx, await make_job(ctx, admin, f"job-{index:02}"), "down")
    other = await open_context(db_url, clock=clock, base_url=ctx.base_url, ssrf=ALLOW_LOOPBACK)
    # small claims (2 notifications a pass): each process alone would send 5 a minute
    first = Notifier(ctx, concurrency=2, window=SendWindow(limit=LIMIT, window=60.0))
    second = Notifier(other, concurrency=2, window=SendWindow(limit=LIMIT, window=60.0))
    per_minute: list[int] = []
    try:
        for _ in range(JOBS):  # each minute tells at least one job
            before = len(receiver.requests)
            await pass_together(first, second)
            per_minute.append(len(receiver.requests) - before)
            if {row["status"] for row in await notification_rows(ctx)} == {"sent"}:
                break
            clock.advance(61)  # every message of this minute has left the window
    finally:
        await first.dispatcher.close()
        await second.dispatcher.close()
        await other.db.dispose()

    assert max(per_minute) <= LIMIT  # both processes together
    assert per_minute[0] == LIMIT  # the limit is used, not wasted
    slugs = Counter(slug for body in receiver.bodies() for slug in told(body))
    assert slugs == Counter(f"job-{index:02}" for index in range(JOBS))  # every job, once
    rows = await notification_rows(ctx)
    assert len(rows) == JOBS
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 1)}


async def test_a_test_message_is_sent_at_once_and_counts_toward_the_limit(
    ctx: Context, admin: Actor, receiver: Receiver
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    loop = Notifier(ctx, window=SendWindow(limit=2, window=60.0))
    for _ in range(2):
        tested = await channel_service.test_channel(ctx, admin, "default", "hook")
        assert tested.status == "sent"  # the full window does not hold a test back
    await add_alert(ctx, await make_job(ctx, admin, "backup"), "down")

    await pass_once(loop)

    assert len(receiver.requests) == 2  # the alert waits: the tests took the window
    [alert] = [row for row in await notification_rows(ctx) if row["event"] == "down"]
    assert (alert["status"], alert["attempts"]) == ("pending", 0)
    await loop.dispatcher.close()

"""A channel's rate limit is the channel's, not each process's: two notifiers on one
database (PostgreSQL, or one SQLite file) together send it no more messages per window
than the limit, and no two sends within its pace, the rest going out as digests or
later — none lost, none sent twice."""

from __future__ import annotations

import asyncio
import itertools
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

LIMIT = 5  # in 60 s: one send per 6 s at most
JOBS = 60
STEP = 2.0  # one job goes down every 2 s: six times what the channel may be sent


def told(body: str) -> list[str]:
    """The jobs one received message tells about (a digest stands for several)."""
    message: dict[str, Any] = json.loads(body)
    if message["event"] == "digest":
        return [part["job"]["slug"] for part in message["alerts"]]
    return [message["job"]["slug"]]


async def pass_together(first: Notifier, second: Notifier) -> tuple[int, int]:
    """Both notifiers tick at the same moment (`first` a little ahead) until neither finds
    anything to send now; returns how many notifications each started."""
    totals = [0, 0]
    for _ in range(200):
        started = await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick())
        totals = [totals[0] + started[0] + started[2], totals[1] + started[1] + started[3]]
        if not any(started) and not (first.active or second.active):
            return totals[0], totals[1]
        await asyncio.sleep(0.005)
    raise AssertionError("the notifiers kept finding work")


async def pending(ctx: Context) -> int:
    return len([row for row in await notification_rows(ctx) if row["status"] == "pending"])


async def test_two_notifiers_share_one_channels_rate_limit_and_lose_nothing(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, db_url: str
) -> None:
    receiver.delay = 0.01  # deliveries overlap the other process's claims
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    other = await open_context(db_url, clock=clock, base_url=ctx.base_url, ssrf=ALLOW_LOOPBACK)
    first = Notifier(ctx, concurrency=2, window=SendWindow(limit=LIMIT, window=60.0))
    second = Notifier(other, concurrency=2, window=SendWindow(limit=LIMIT, window=60.0))
    sent_at: list[float] = []  # the clock's second of every message received
    by_process = [0, 0]
    try:
        for step in range(JOBS + 40):  # 2 minutes of alerts, then until all are told
            if step < JOBS:
                await add_alert(ctx, await make_job(ctx, admin, f"job-{step:02}"), "down")
            before = len(receiver.requests)
            # each process in turn ticks first: alone, either would keep its own window
            pair = (first, second) if step % 2 == 0 else (second, first)
            started = await pass_together(*pair)
            by_process[step % 2] += started[0]
            by_process[1 - step % 2] += started[1]
            sent_at += [step * STEP] * (len(receiver.requests) - before)
            if step >= JOBS and not await pending(ctx):
                break
            clock.advance(STEP)
    finally:
        await first.dispatcher.close()
        await second.dispatcher.close()
        await other.db.dispose()

    busiest = max(len([t for t in sent_at if start <= t < start + 60]) for start in sent_at)
    assert busiest == LIMIT  # both processes together, and the limit is used
    sends = sorted(set(sent_at))
    assert min(later - earlier for earlier, later in itertools.pairwise(sends)) >= 6  # the pace
    assert all(by_process)  # both processes sent some
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

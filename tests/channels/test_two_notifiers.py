"""Two notifier processes on one PostgreSQL database never send one alert twice: alerts
are claimed by a conditional update, notifications under a lease."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.domain.notifications import SendWindow
from cronkeeper.runtime.notifier import Notifier
from cronkeeper.service.context import Context
from cronkeeper.service.setup import open_context
from cronkeeper.testing import FakeClock

from .conftest import ALLOW_LOOPBACK, add_alert, make_channel, make_job, notification_rows
from .peers import Receiver

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(postgres_url: str) -> str:
    return postgres_url


async def test_two_notifiers_deliver_every_alert_to_every_channel_exactly_once(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, postgres_url: str
) -> None:
    receiver.delay = 0.01  # deliveries overlap the other process's passes
    await make_channel(ctx, admin, "a", "webhook", {"url": receiver.url("/a")}, default=True)
    await make_channel(ctx, admin, "b", "webhook", {"url": receiver.url("/b")}, default=True)
    for index in range(40):
        await add_alert(ctx, await make_job(ctx, admin, f"job-{index}"), "down")
    other = await open_context(
        postgres_url, clock=clock, base_url=ctx.base_url, ssrf=ALLOW_LOOPBACK
    )
    unlimited = SendWindow(limit=1000, window=60)
    first = Notifier(ctx, concurrency=7, window=unlimited)
    second = Notifier(other, concurrency=7, window=SendWindow(limit=1000, window=60))
    try:
        for _ in range(60):
            await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick())
            if len(receiver.requests) >= 80 and not (first.active or second.active):
                break
            await asyncio.sleep(0.02)
            clock.advance(1)  # past the channels' pace: each may send again
        await asyncio.gather(first.drain(), second.drain())
    finally:
        await first.dispatcher.close()
        await second.dispatcher.close()
        await other.db.dispose()
    sent = Counter((r.path, json.loads(r.body)["job"]["slug"]) for r in receiver.requests)
    assert len(sent) == 80 and set(sent.values()) == {1}
    rows = await notification_rows(ctx)
    assert len(rows) == 80 and {r["status"] for r in rows} == {"sent"}

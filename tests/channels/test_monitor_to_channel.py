"""From a missed heartbeat to a message on a channel: the monitor (`service.monitor.check`)
queues alerts, the notifier delivers them — or cancels them when the job recovered within
the alert delay."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import select

from cronkeeper.domain.models import Actor
from cronkeeper.domain.pings import Ping, PingAction
from cronkeeper.runtime.notifier import Notifier
from cronkeeper.service import jobs as job_service
from cronkeeper.service import monitor, pings
from cronkeeper.service.context import Context
from cronkeeper.store.tables import alerts
from cronkeeper.testing import FakeClock

from .conftest import make_channel, pass_once
from .peers import Receiver


async def heartbeat(ctx: Context, admin: Actor, delay: str) -> str:
    body = {"slug": "backup", "name": "Backup", "kind": "heartbeat", "schedule": "0 * * * *",
            "start_grace": 300, "alerts": {"delay": delay}}  # fmt: skip
    out = await job_service.create_job(ctx, admin, "default", body)
    assert out.ping_uuid is not None
    return out.ping_uuid


async def ping(ctx: Context, code: str) -> None:
    request = pings.PingRequest(
        Ping(PingAction.SUCCESS, ctx.clock.now()), ping_uuid=uuid.UUID(code)
    )
    await pings.record_ping(ctx, request)


async def walk(ctx: Context, clock: FakeClock, minutes: int, notifier: Notifier) -> None:
    for _ in range(minutes * 2):
        clock.advance(30)
        while await monitor.check(ctx):
            pass
        await pass_once(notifier)


async def test_a_missed_heartbeat_reaches_the_default_channel_once_the_delay_has_passed(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    code = await heartbeat(ctx, admin, "2m")
    clock.set(clock.now().replace(minute=0) + timedelta(hours=1))
    await ping(ctx, code)
    await walk(ctx, clock, 66, notifier)  # 14:00 slot missed at 14:05
    assert receiver.requests == []  # the alert waits out its delay
    await walk(ctx, clock, 3, notifier)
    [request] = receiver.requests
    body = json.loads(request.body)
    assert (body["event"], body["job"]["slug"], body["status"]) == ("down", "backup", "down")
    assert body["down_for_s"] >= 120


async def test_a_job_that_recovers_within_the_delay_alerts_nobody(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    code = await heartbeat(ctx, admin, "10m")
    clock.set(clock.now().replace(minute=0) + timedelta(hours=1))
    await ping(ctx, code)
    await walk(ctx, clock, 66, notifier)  # down at 14:05, alert due at 14:15
    await ping(ctx, code)  # late, but back
    await walk(ctx, clock, 20, notifier)
    assert receiver.requests == []
    async with ctx.db.read() as conn:
        rows = (await conn.execute(select(alerts.c.event, alerts.c.outcome))).all()
    assert sorted(rows) == [("down", "cancelled"), ("up", "cancelled")]

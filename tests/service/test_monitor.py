"""The monitor engine as a use case (issue 5 items 3 and 4), on SQLite and PostgreSQL,
driven by the fake clock: heartbeat jobs created through `service.jobs`, real pings
through `service.pings`, then `monitor.check`; assertions on what a user would see —
runs, flips, alerts, the job's monitor_state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cronkeeper.domain.models import Actor
from cronkeeper.domain.pings import Ping, PingAction, action_for_exit_status
from cronkeeper.service import jobs as job_service
from cronkeeper.service import monitor, pings
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store.tables import alerts, flips, runs
from cronkeeper.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # the clock fixture's start


@pytest.fixture(autouse=True)
async def project_id(ctx: Context) -> uuid.UUID:
    async with ctx.db.write() as conn:
        return (await ensure_project(conn, "default", ctx.clock.now())).id


class Heartbeat:
    """A heartbeat job and the pings it sends."""

    def __init__(self, ctx: Context, admin: Actor, slug: str, code: uuid.UUID) -> None:
        self.ctx, self.admin, self.slug, self.code = ctx, admin, slug, code

    @classmethod
    async def create(
        cls, ctx: Context, admin: Actor, slug: str = "backup", **body: Any
    ) -> Heartbeat:
        body = {"slug": slug, "kind": "heartbeat", "schedule": "0 * * * *", **body}
        body.setdefault("start_grace", 300)
        out = await job_service.create_job(ctx, admin, "default", body)
        assert out.ping_uuid is not None
        return cls(ctx, admin, slug, uuid.UUID(out.ping_uuid))

    async def ping(
        self, action: PingAction = PingAction.SUCCESS, exit_status: int | None = None
    ) -> pings.PingResult:
        if exit_status is not None:  # as the ping route reads /ping/<uuid>/<status>
            action = action_for_exit_status(exit_status)
        ping = Ping(action, self.ctx.clock.now(), exit_status=exit_status)
        return await pings.record_ping(self.ctx, pings.PingRequest(ping, ping_uuid=self.code))

    async def state(self) -> str:
        out = await job_service.get_job(self.ctx, self.admin, "default", self.slug)
        return out.monitor_state

    async def job_id(self) -> uuid.UUID:
        out = await job_service.get_job(self.ctx, self.admin, "default", self.slug)
        return uuid.UUID(str(out.id))

    async def runs(self) -> list[dict[str, Any]]:
        return await rows(self.ctx, runs, runs.c.job_id == await self.job_id(), runs.c.ordered_at)

    async def missed(self) -> list[dict[str, Any]]:
        return [run for run in await self.runs() if run["status"] == "missed"]

    async def flips(self) -> list[tuple[str, str, datetime, str | None]]:
        found = await rows(self.ctx, flips, flips.c.job_id == await self.job_id(), flips.c.id)
        return [
            (f["old_state"], f["new_state"], f["created_at"], f["suppressed_reason"]) for f in found
        ]

    async def alerts(self) -> list[dict[str, Any]]:
        return await rows(self.ctx, alerts, alerts.c.job_id == await self.job_id(), alerts.c.id)

    async def events(self) -> list[tuple[str, bool, datetime]]:
        return [(a["event"], a["reminder"], a["deliver_at"]) for a in await self.alerts()]


async def rows(ctx: Context, table: Any, condition: Any, order: Any) -> list[dict[str, Any]]:
    async with ctx.db.read() as conn:
        result = await conn.execute(select(table).where(condition).order_by(order))
        return [dict(row) for row in result.mappings()]


async def settle(ctx: Context, clock: FakeClock, seconds: float = 0.0) -> None:
    """Advance the clock and run every due check (as the loop would)."""
    if seconds:
        clock.advance(seconds)
    for _ in range(20):
        if await monitor.check(ctx) == 0:
            return
    raise AssertionError("the monitor keeps finding due jobs")


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute, second=second)


async def walk(ctx: Context, clock: FakeClock, until: datetime, step: float = 30.0) -> None:
    """Move the clock to `until` in steps, checking after each (the loop, compressed)."""
    while clock.now() < until:
        clock.advance(min(step, (until - clock.now()).total_seconds()))
        await settle(ctx, clock)


# -- thresholds and deadlines ------------------------------------------------------------


async def test_a_new_job_never_goes_down_before_its_first_ping(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await walk(ctx, clock, at(16), step=600)
    assert await job.state() == "new"
    assert await job.runs() == [] and await job.flips() == [] and await job.alerts() == []


async def test_up_then_late_at_the_slot_then_down_at_slot_plus_grace(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)  # hourly, grace 5 min
    clock.set(at(12, 0, 5))
    await job.ping()
    await settle(ctx, clock)
    assert await job.state() == "up"

    await walk(ctx, clock, at(13, 1))
    assert await job.state() == "late"
    await walk(ctx, clock, at(13, 10))
    assert await job.state() == "down"

    (missed,) = await job.missed()
    assert missed["scheduled_for"] == at(13)
    assert missed["failure_reason"] == "missed" and missed["during_outage"] is False
    assert missed["finished_at"] == at(13, 5)
    assert await job.flips() == [
        ("new", "up", at(12, 0, 5), None),
        ("up", "late", at(13), None),
        ("late", "down", at(13, 5), None),
    ]
    assert await job.events() == [("down", False, at(13, 5))]


async def test_a_check_long_after_the_deadline_back_dates_the_flip(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await job.ping()
    await settle(ctx, clock)
    await settle(ctx, clock, 3 * 3600 + 17)  # one check at 15:00:17 sees two deadlines
    assert [run["scheduled_for"] for run in await job.missed()] == [at(13), at(14)]
    assert await job.flips() == [("new", "up", at(12), None), ("up", "down", at(13, 5), None)]
    assert await job.state() == "down"


async def test_failure_threshold_three_needs_three_misses(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, alerts={"failure_threshold": 3})
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(14, 10), step=60)
    assert len(await job.missed()) == 2
    assert await job.state() != "down"
    await walk(ctx, clock, at(15, 10), step=60)
    assert len(await job.missed()) == 3
    assert await job.state() == "down"
    flips_ = await job.flips()
    assert flips_[-1] == ("late", "down", at(15, 5), None)
    assert [f for f in flips_ if f[1] == "up"] == [("new", "up", at(12), None)]
    assert await job.events() == [("down", False, at(15, 5))]


async def test_failure_threshold_counts_fail_pings_and_misses_together(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, alerts={"failure_threshold": 3})
    await job.ping()
    await settle(ctx, clock)
    clock.set(at(13))
    await job.ping(PingAction.FAIL)
    await settle(ctx, clock)
    clock.set(at(14))
    await job.ping(exit_status=1)
    await settle(ctx, clock)
    assert await job.state() == "up"
    await walk(ctx, clock, at(15, 10), step=60)
    assert await job.state() == "down"
    assert (await job.flips())[-1][1:3] == ("down", at(15, 5))


async def test_a_fail_ping_makes_the_job_down_at_once(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await job.ping()
    await settle(ctx, clock)
    clock.advance(600)
    await job.ping(exit_status=1)
    async with ctx.db.read() as conn:
        due = await monitor_store.next_deadline(conn)
    assert due is not None and due <= clock.now()  # poked
    await settle(ctx, clock)
    assert await job.state() == "down"
    assert (await job.flips())[-1] == ("up", "down", at(12, 10), None)
    (alert,) = await job.alerts()
    assert (alert["event"], alert["deliver_at"]) == ("down", at(12, 10))
    assert alert["run_id"] is not None


async def test_recovery_threshold_two_needs_two_successes(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, alerts={"recovery_threshold": 2})
    await job.ping(PingAction.FAIL)
    await settle(ctx, clock)
    assert await job.state() == "down"
    clock.advance(3600)
    await job.ping()
    await settle(ctx, clock)
    assert await job.state() == "down"
    clock.advance(3600)
    await job.ping()
    await settle(ctx, clock)
    assert await job.state() == "up"
    assert await job.flips() == [
        ("new", "down", at(12), None),
        ("down", "up", at(14), None),
    ]
    assert [e[0] for e in await job.events()] == ["down", "up"]


async def test_an_early_ping_counts_for_the_upcoming_slot(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, start_grace=60)
    await job.ping()
    await settle(ctx, clock)
    for hour in (13, 14, 15):
        await walk(ctx, clock, at(hour) - timedelta(seconds=20), step=60)
        await job.ping()  # 20 s early
        await settle(ctx, clock)
    await walk(ctx, clock, at(15, 30), step=30)
    assert await job.missed() == []
    assert await job.state() == "up"
    assert await job.flips() == [("new", "up", at(12), None)]


async def test_a_late_ping_within_grace_brings_the_job_back_up(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(13, 2))
    assert await job.state() == "late"
    await job.ping()
    await settle(ctx, clock)
    assert await job.state() == "up"
    await walk(ctx, clock, at(13, 30))
    assert await job.missed() == []
    assert (await job.flips())[-2:] == [
        ("up", "late", at(13), None),
        ("late", "up", at(13, 2), None),
    ]


async def test_every_1h_counts_from_the_last_ping(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, schedule="every 1h", start_grace=60)
    clock.set(at(12, 17))
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(13, 16))
    assert await job.state() == "up"
    await walk(ctx, clock, at(13, 17, 30))
    assert await job.state() == "late"
    await walk(ctx, clock, at(13, 19))
    assert await job.state() == "down"
    (missed,) = await job.missed()
    assert missed["scheduled_for"] == at(13, 17)
    assert (await job.flips())[-1] == ("late", "down", at(13, 18), None)
    # Down, the slots go on from the missed one.
    await walk(ctx, clock, at(14, 19), step=60)
    assert [r["scheduled_for"] for r in await job.missed()] == [at(13, 17), at(14, 17)]


async def test_two_checks_in_a_row_change_nothing(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await job.ping()
    await settle(ctx, clock)
    clock.set(at(15, 30))
    await monitor.check(ctx)
    before = (await job.runs(), await job.flips(), await job.alerts(), await job.state())
    await monitor.check(ctx)
    await monitor.check(ctx)
    assert (await job.runs(), await job.flips(), await job.alerts(), await job.state()) == before


# -- runtimes -------------------------------------------------------------------------------


async def test_max_runtime_closes_a_heartbeat_run_left_running(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, max_runtime=600)
    await job.ping()
    await settle(ctx, clock)
    clock.set(at(13))
    started = await job.ping(PingAction.START)
    await walk(ctx, clock, at(13, 11))
    run = next(r for r in await job.runs() if r["id"] == started.run_id)
    assert (run["status"], run["failure_reason"]) == ("failed", "max_runtime")
    assert run["finished_at"] == at(13, 10) and run["duration_ms"] == 600_000
    assert await job.state() == "down"
    assert (await job.flips())[-1] == ("up", "down", at(13, 10), None)

"""The monitor engine as a use case (issue 5 items 3 and 4), on SQLite and PostgreSQL,
driven by the fake clock: heartbeat jobs created through `service.jobs`, real pings
through `service.pings`, then `monitor.check`; assertions on what a user would see —
runs, flips, alerts, the job's monitor_state."""

from __future__ import annotations

import asyncio
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
from cronkeeper.service.setup import open_context
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store.tables import alerts, flips, jobs, runs
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


# -- noise control ---------------------------------------------------------------------


async def test_realert_every_reminds_while_down_and_stops_when_up(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, alerts={"realert_every": 3600})
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(15, 30), step=60)  # down at 13:05
    assert await job.events() == [
        ("down", False, at(13, 5)),
        ("down", True, at(14, 5)),
        ("down", True, at(15, 5)),
    ]
    await job.ping()  # answers 15:00
    await settle(ctx, clock)
    assert await job.state() == "up"
    await walk(ctx, clock, at(15, 59), step=60)
    assert [e[:2] for e in await job.events()] == [
        ("down", False),
        ("down", True),
        ("down", True),
        ("up", False),
    ]


async def test_alert_delay_postpones_delivery_from_the_flip(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, alerts={"delay": 600})
    await job.ping()
    await settle(ctx, clock)
    await settle(ctx, clock, 2 * 3600)  # checked at 14:00, long after the 13:05 deadline
    (alert,) = await job.alerts()
    assert (alert["event"], alert["created_at"], alert["deliver_at"]) == (
        "down",
        at(13, 5),
        at(13, 15),
    )


async def test_a_child_is_not_alerted_while_its_parent_is_down(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    parent = await Heartbeat.create(ctx, admin, "database")
    child = await Heartbeat.create(ctx, admin, "backup", alerts={"depends_on": ["database"]})
    await parent.ping()
    await child.ping()
    await settle(ctx, clock)
    # Both miss 13:00: the parent is down by the time the child's flip is judged.
    await walk(ctx, clock, at(13, 10))
    assert (await parent.state(), await child.state()) == ("down", "down")
    assert (await child.flips())[-1] == ("late", "down", at(13, 5), "depends_on")
    assert await child.alerts() == []
    assert [e[0] for e in await parent.events()] == ["down"]


async def test_a_child_failing_under_a_parent_already_down_is_not_alerted(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    parent = await Heartbeat.create(ctx, admin, "database")
    child = await Heartbeat.create(ctx, admin, "backup", alerts={"depends_on": ["database"]})
    await parent.ping(PingAction.FAIL)
    await settle(ctx, clock)
    await child.ping(exit_status=2)
    await settle(ctx, clock)
    assert (await child.flips())[-1] == ("new", "down", at(12), "depends_on")
    assert await child.alerts() == []
    # Its recovery is not announced either: its down never was.
    clock.advance(60)
    await child.ping()
    await settle(ctx, clock)
    assert await child.state() == "up" and await child.alerts() == []


async def window(ctx: Context, project_id: uuid.UUID, name: str, mode: str, **fields: Any) -> None:
    row = {
        "id": uuid.uuid4(),
        "project_id": project_id,
        "name": name,
        "mode": mode,
        "starts_at": None,
        "ends_at": None,
        "schedule": None,
        "duration_s": None,
        "timezone": "UTC",
        "job_slugs": [],
        "tags": [],
        "created_at": ctx.clock.now(),
        **fields,
    }
    async with ctx.db.write() as conn:
        await monitor_store.insert_window(conn, row)


async def test_a_mute_window_suppresses_the_down_flip_and_its_recovery(
    ctx: Context, clock: FakeClock, admin: Actor, project_id: uuid.UUID
) -> None:
    job = await Heartbeat.create(ctx, admin)
    other = await Heartbeat.create(ctx, admin, "other")
    await window(
        ctx,
        project_id,
        "upgrade",
        "mute",
        starts_at=at(12, 30),
        ends_at=at(14),
        job_slugs=["backup"],
    )
    await job.ping()
    await other.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(13, 10))
    assert (await job.flips())[-1] == ("late", "down", at(13, 5), "maintenance")
    assert await job.alerts() == []
    assert [e[0] for e in await other.events()] == ["down"]  # not named by the window
    await walk(ctx, clock, at(14, 30))
    await job.ping()
    await settle(ctx, clock)
    assert await job.state() == "up"
    # Still down when the window ended: told then, and told when it came back.
    assert await job.events() == [("down", False, at(14)), ("up", False, at(14, 30))]


async def test_a_job_that_recovers_inside_its_mute_window_alerts_nobody(
    ctx: Context, clock: FakeClock, admin: Actor, project_id: uuid.UUID
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await window(ctx, project_id, "upgrade", "mute", starts_at=at(12, 30), ends_at=at(14))
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(13, 30))
    assert await job.state() == "down"
    await job.ping()
    await walk(ctx, clock, at(13, 58))
    await job.ping()  # the 14:00 run, a little early
    await walk(ctx, clock, at(14, 30))  # past the window's end
    assert await job.state() == "up" and await job.alerts() == []


async def test_a_child_still_down_when_its_parent_recovers_is_alerted_then(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    parent = await Heartbeat.create(ctx, admin, "database")
    child = await Heartbeat.create(ctx, admin, "backup", alerts={"depends_on": ["database"]})
    await parent.ping()
    await child.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(13, 10))
    assert await child.alerts() == []
    await parent.ping()  # the database is back; the backup job is still failing
    await walk(ctx, clock, at(13, 20))

    assert [(e[0], e[1]) for e in await child.events()] == [("down", False)]
    assert (await child.alerts())[0]["reason"] == "down; its alert was held back until now"
    await walk(ctx, clock, at(13, 40))
    assert len(await child.alerts()) == 1  # told once, not every minute


async def test_a_recurring_mute_window_covers_each_occurrence(
    ctx: Context, clock: FakeClock, admin: Actor, project_id: uuid.UUID
) -> None:
    job = await Heartbeat.create(ctx, admin, tags=["nightly"])
    await window(
        ctx, project_id, "daily", "mute", schedule="0 13 * * *", duration_s=3600, tags=["nightly"]
    )
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(13, 10))
    assert (await job.flips())[-1][3] == "maintenance"
    await job.ping()  # 13:10, answers 13:00
    await settle(ctx, clock)
    assert await job.state() == "up"
    await walk(ctx, clock, at(14, 10))  # 14:05 is outside 13:00–14:00
    assert (await job.flips())[-1] == ("late", "down", at(14, 5), None)
    assert [e[0] for e in await job.events()] == ["down"]


async def test_a_skip_window_records_slots_as_skipped_and_they_do_not_count(
    ctx: Context, clock: FakeClock, admin: Actor, project_id: uuid.UUID
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await window(ctx, project_id, "freeze", "skip", starts_at=at(12, 30), ends_at=at(14, 30))
    await job.ping()
    await settle(ctx, clock)
    await walk(ctx, clock, at(14, 30), step=60)
    skipped = [r for r in await job.runs() if r["status"] == "skipped"]
    assert [r["scheduled_for"] for r in skipped] == [at(13), at(14)]
    assert all(r["failure_reason"] is None for r in skipped)
    assert await job.missed() == []
    assert await job.state() == "up"
    await walk(ctx, clock, at(15, 10), step=60)
    assert [r["scheduled_for"] for r in await job.missed()] == [at(15)]
    assert await job.state() == "down"


async def test_flapping_sends_one_notice_then_quiet_until_stable(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(
        ctx, admin, alerts={"flap_threshold": 2, "flap_window": 1800}, schedule="*/5 * * * *"
    )
    await job.ping()
    await settle(ctx, clock)
    for _ in range(3):  # up → down → up → down → up → down: 5 counted flips
        clock.advance(60)
        await job.ping(PingAction.FAIL)
        await settle(ctx, clock)
        clock.advance(60)
        await job.ping()
        await settle(ctx, clock)
    clock.advance(60)
    await job.ping(PingAction.FAIL)
    await settle(ctx, clock)
    assert await job.state() == "down"
    events = await job.events()
    # up→down, down→up told; the third up/down flip starts flapping: one notice, then quiet.
    assert [e[0] for e in events] == ["down", "up", "flapping"]
    suppressed = [f[3] for f in await job.flips()]
    assert suppressed[:3] == [None, None, None]
    assert set(suppressed[3:]) == {"flapping"}
    # Still down, the job stays quiet for a whole window; then it is told once more.
    await walk(ctx, clock, clock.now() + timedelta(seconds=1800 + 600), step=120)
    assert [e[0] for e in await job.events()] == ["down", "up", "flapping", "down"]
    async with ctx.db.read() as conn:
        flapping = await conn.scalar(
            select(jobs.c.flapping_since).where(jobs.c.id == await job.job_id())
        )
    assert flapping is None


# -- our own outage ---------------------------------------------------------------------


async def test_slots_inside_our_own_outage_are_missed_during_outage_and_never_alerted(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin, schedule="* * * * *", start_grace=10)
    await monitor.record_tick(ctx)
    await job.ping()
    await settle(ctx, clock)
    clock.advance(170)  # Cronkeeper was down: no tick, no check until 12:02:50
    gap = await monitor.record_tick(ctx)
    assert gap == (at(12), at(12, 2, 50))
    await settle(ctx, clock)
    missed = await job.missed()
    assert [(r["scheduled_for"], r["during_outage"]) for r in missed] == [
        (at(12, 1), True),
        (at(12, 2), True),
    ]
    assert await job.state() == "up"
    assert await job.flips() == [("new", "up", at(12), None)]
    assert await job.alerts() == []
    async with ctx.db.read() as conn:
        assert await monitor.outages(conn) == [(at(12), at(12, 2, 50))]
    # Back up, a real miss still counts.
    clock.advance(5)
    await job.ping()  # answers 12:03
    await settle(ctx, clock)
    await walk(ctx, clock, at(12, 4, 15), step=5)
    assert [r["during_outage"] for r in await job.missed()] == [True, True, False]
    assert await job.state() == "down"
    assert await job.events() == [("down", False, at(12, 4, 10))]


async def test_ticks_closer_than_the_gap_record_no_outage(ctx: Context, clock: FakeClock) -> None:
    for _ in range(10):
        assert await monitor.record_tick(ctx) is None
        clock.advance(25)
    async with ctx.db.read() as conn:
        assert await monitor.outages(conn) == []


# -- pause and resume -------------------------------------------------------------------


async def test_pause_flips_to_paused_and_resume_to_new(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    job = await Heartbeat.create(ctx, admin)
    await job.ping()
    await settle(ctx, clock)
    clock.set(at(12, 30))
    await job_service.set_paused(ctx, admin, "default", "backup", True)
    assert await job.state() == "paused"
    await walk(ctx, clock, at(16), step=600)  # paused: no missed slots
    assert await job.missed() == []
    await job_service.set_paused(ctx, admin, "default", "backup", False)
    assert await job.state() == "new"
    assert await job.flips() == [
        ("new", "up", at(12), None),
        ("up", "paused", at(12, 30), None),
        ("paused", "new", at(16), None),
    ]
    await walk(ctx, clock, at(19), step=600)  # new again: waits for its first ping
    assert await job.missed() == [] and await job.state() == "new"
    await job.ping()
    await settle(ctx, clock)
    assert await job.state() == "up"
    await walk(ctx, clock, at(20, 10), step=60)
    assert [r["scheduled_for"] for r in await job.missed()] == [at(20)]
    assert await job.state() == "down"


# -- several monitors -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_concurrent_checks_never_duplicate_missed_runs_or_flips(
    ctx: Context, clock: FakeClock, admin: Actor, db_url: str
) -> None:
    team = [await Heartbeat.create(ctx, admin, f"job-{n}") for n in range(30)]
    for job in team:
        await job.ping()
    await settle(ctx, clock)
    other = await open_context(db_url, clock=clock)
    try:
        clock.set(at(15, 10))
        for _ in range(3):
            await asyncio.gather(
                *(monitor.check(c, limit=7) for c in (ctx, other, ctx, other)),
            )
        await settle(ctx, clock)
    finally:
        await other.db.dispose()
    for job in team:
        assert [r["scheduled_for"] for r in await job.missed()] == [at(13), at(14), at(15)]
        assert [f[:2] for f in await job.flips()] == [("new", "up"), ("up", "down")]
        assert [e[0] for e in await job.events()] == ["down"]

"""The scheduler on a fake clock, on SQLite and PostgreSQL: every due slot becomes exactly
one run (however many passes or schedulers), overlap, catch-up after downtime, pause and
resume, and deleting a job.

The clock starts at 2026-03-01 12:00:00 UTC; `every 1m` fires on whole minutes. Clock
positions stay tens of seconds away from the next slot, so the scheduler's short
look-ahead never reaches it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from cronkeeper.domain.models import Actor, Job
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.runtime.scheduler import Scheduler
from cronkeeper.service import execution
from cronkeeper.service import jobs as job_service
from cronkeeper.service import runs as run_service
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.service.run_schemas import RunOut
from cronkeeper.service.setup import open_context
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import runs as run_store
from cronkeeper.store.tables import jobs as jobs_table
from cronkeeper.testing import FakeClock


def at(hours: int, minutes: int = 0, seconds: int = 0) -> datetime:
    return datetime(2026, 3, 1, hours, minutes, seconds, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def default_project(ctx: Context) -> None:
    async with ctx.db.write() as conn:
        await ensure_project(conn, "default", ctx.clock.now())


async def make_job(ctx: Context, admin: Actor, slug: str, **fields: Any) -> None:
    body: dict[str, Any] = {
        "slug": slug,
        "kind": "command",
        "schedule": "every 1m",
        "target": {"command": ["true"]},
    }
    body.update(fields)
    await job_service.create_job(ctx, admin, "default", body)


async def stored_job(ctx: Context, slug: str) -> Job:
    async with ctx.db.read() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        job = await job_store.get_job(conn, project.id, slug)
    assert job is not None
    return job


async def runs_of(ctx: Context, admin: Actor, slug: str) -> list[RunOut]:
    """Every run of the job, by slot, oldest first."""
    query = run_service.RunQuery(sort="scheduled_for", order="asc", limit=100)
    found: list[RunOut] = []
    while True:
        page = await run_service.list_runs(ctx, admin, "default", query, job_slug=slug)
        found += page.items
        if page.next_cursor is None:
            return found
        query = run_service.RunQuery(
            sort="scheduled_for", order="asc", limit=100, cursor=page.next_cursor
        )


def slots(runs: list[RunOut]) -> list[datetime | None]:
    return [run.scheduled_for for run in runs]


def fired(runs: list[RunOut]) -> list[datetime | None]:
    """The slots that became runs to execute (not those recorded as missed)."""
    return [run.scheduled_for for run in runs if run.status != "missed"]


def minutes(first: datetime, last: datetime) -> list[datetime]:
    count = int((last - first).total_seconds() // 60) + 1
    return [first + timedelta(minutes=i) for i in range(count)]


async def claim(ctx: Context, node: str = "node-a") -> list[execution.ClaimedRun]:
    return await execution.claim_runs(ctx, node=node, queues=["default"], limit=10, lease=60)


# --- firing ----------------------------------------------------------------------------------


async def test_a_due_slot_becomes_one_queued_schedule_run_with_a_run_queued_event(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup")
    assert (await stored_job(ctx, "backup")).next_fire_at == at(12, 1)
    clock.set(at(12, 1, 10))

    created = await Scheduler(ctx).run_once()

    assert created == 1
    [run] = await runs_of(ctx, admin, "backup")
    assert (run.source, run.status, run.scheduled_for) == ("schedule", "queued", at(12, 1))
    assert run.queued_at == clock.now()
    assert (run.attempts, run.max_attempts) == (0, 3)
    events, _ = await run_service.list_events(ctx, admin, "default", run.id)
    assert [(e.sequence_num, e.type) for e in events] == [(1, "run_queued")]
    assert (await stored_job(ctx, "backup")).next_fire_at == at(12, 2)


async def test_nothing_fires_before_the_slot(ctx: Context, clock: FakeClock, admin: Actor) -> None:
    await make_job(ctx, admin, "backup")
    clock.set(at(12, 1) - execution.LOOKAHEAD - timedelta(seconds=1))  # before the look-ahead

    assert await Scheduler(ctx).run_once() == 0
    assert await runs_of(ctx, admin, "backup") == []


async def test_every_due_slot_of_every_job_fires_once(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "every-minute", start_grace="10m")
    await make_job(ctx, admin, "every-two", schedule="*/2 * * * *", start_grace="10m")
    await make_job(ctx, admin, "hourly", schedule="@hourly")
    clock.set(at(12, 5, 20))

    created = await Scheduler(ctx).run_once()

    assert slots(await runs_of(ctx, admin, "every-minute")) == minutes(at(12, 1), at(12, 5))
    assert slots(await runs_of(ctx, admin, "every-two")) == [at(12, 2), at(12, 4)]
    assert await runs_of(ctx, admin, "hourly") == []
    assert created == 7


async def test_running_the_scheduler_again_never_fires_a_slot_twice(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup")
    clock.set(at(12, 1, 10))
    scheduler = Scheduler(ctx)

    first, second = await scheduler.run_once(), await scheduler.run_once()
    third = await Scheduler(ctx).run_once()

    assert (first, second, third) == (1, 0, 0)
    assert slots(await runs_of(ctx, admin, "backup")) == [at(12, 1)]


async def test_two_schedulers_passing_at_once_fire_each_slot_once(
    ctx: Context, clock: FakeClock, admin: Actor, db_url: str
) -> None:
    for i in range(5):
        await make_job(ctx, admin, f"job-{i}", start_grace="10m")
    clock.set(at(12, 3, 10))
    other = await open_context(db_url, clock=clock, migrate=False)
    try:
        created = await asyncio.gather(
            Scheduler(ctx).run_once(),
            Scheduler(other).run_once(),
            Scheduler(ctx).run_once(),
            Scheduler(other).run_once(),
        )
    finally:
        await other.db.dispose()

    assert sum(created) == 5 * 3
    for i in range(5):
        assert slots(await runs_of(ctx, admin, f"job-{i}")) == minutes(at(12, 1), at(12, 3))


async def test_a_scheduler_that_replans_an_already_fired_slot_adds_nothing(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    """A restart or a second scheduler with a stale `next_fire_at`: the unique slot
    constraint drops the duplicate run, and no stray event is written."""
    await make_job(ctx, admin, "backup", start_grace="10m")
    clock.set(at(12, 2, 10))
    assert await Scheduler(ctx).run_once() == 2
    job = await stored_job(ctx, "backup")
    async with ctx.db.write() as conn:
        await conn.execute(
            update(jobs_table).where(jobs_table.c.id == job.id).values(next_fire_at=at(12, 1))
        )

    assert await Scheduler(ctx).run_once() == 0

    runs = await runs_of(ctx, admin, "backup")
    assert slots(runs) == [at(12, 1), at(12, 2)]
    for run in runs:
        events, _ = await run_service.list_events(ctx, admin, "default", run.id)
        assert [e.type for e in events] == ["run_queued"]
    assert (await stored_job(ctx, "backup")).next_fire_at == at(12, 3)


# --- overlap ---------------------------------------------------------------------------------


async def finish(ctx: Context, claimed: execution.ClaimedRun) -> None:
    outcome = Outcome(status=AttemptStatus.SUCCESS, exit_code=0)
    decision = await execution.record_outcome(
        ctx, claimed, outcome, node="node-a", random=lambda: 0.0, started_at=ctx.clock.now()
    )
    assert decision is not None


async def test_overlap_skip_records_a_skipped_run_while_one_is_in_flight(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", overlap="skip")
    clock.set(at(12, 1, 10))
    await Scheduler(ctx).run_once()
    [running] = await claim(ctx)
    clock.set(at(12, 2, 10))

    await Scheduler(ctx).run_once()
    assert await claim(ctx) == []

    first, second = await runs_of(ctx, admin, "backup")
    assert (first.status, second.status) == ("running", "skipped")
    assert second.scheduled_for == at(12, 2)
    assert second.attempts == 0
    assert second.finished_at is not None
    events, _ = await run_service.list_events(ctx, admin, "default", second.id)
    assert events[-1].message is not None
    assert "skipped" in events[-1].message
    await finish(ctx, running)
    assert await claim(ctx) == []  # a skipped run stays skipped


async def claim_ahead(ctx: Context, seconds: float) -> list[execution.ClaimedRun]:
    return await execution.claim_runs(
        ctx, node="node-a", queues=["default"], limit=10, lease=60, ahead=seconds
    )


async def test_a_run_claimed_ahead_of_its_slot_starts_at_the_slot_and_records_its_real_start(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup")
    clock.set(
        at(
            12,
            0,
            59,
        )
    )  # the 12:01 slot is queued (look-ahead), due in a second
    await Scheduler(ctx).run_once()

    assert await claim_ahead(ctx, 0.5) == []  # not due within half a second
    [claimed] = await claim_ahead(ctx, 1.5)

    assert claimed.starts_at == at(12, 1)  # the worker waits until the slot
    clock.set(at(12, 1) + timedelta(milliseconds=7))  # ... and really starts 7 ms late
    await finish(ctx, claimed)
    [run] = await runs_of(ctx, admin, "backup")
    assert run.started_at == at(12, 1) + timedelta(milliseconds=7)
    assert run.drift_ms == 7


async def test_a_run_not_yet_due_is_never_skipped_because_its_job_is_busy_now(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", overlap="skip", schedule="every 1s")
    clock.set(
        at(
            12,
            0,
            0,
        )
        + timedelta(milliseconds=100)
    )
    await Scheduler(ctx).run_once()  # slots 12:00:01, 12:00:02 … queued ahead
    [first] = await claim_ahead(ctx, 1.0)  # 12:00:01, claimed ahead

    assert await claim_ahead(ctx, 2.5) == []  # 12:00:02 waits: the busy job may be done by then
    clock.set(at(12, 0, 1) + timedelta(milliseconds=50))
    await finish(ctx, first)
    [second] = await claim_ahead(ctx, 1.0)

    assert second.run.scheduled_for == at(12, 0, 2)
    statuses = {run.status for run in await runs_of(ctx, admin, "backup")}
    assert "skipped" not in statuses  # later slots, queued ahead, are still queued


@pytest.mark.parametrize("overlap", ["queue", "allow"])
async def test_overlap_queue_and_allow_queue_the_slot_while_one_is_in_flight(
    ctx: Context, clock: FakeClock, admin: Actor, overlap: str
) -> None:
    await make_job(ctx, admin, "backup", overlap=overlap)
    clock.set(at(12, 1, 10))
    await Scheduler(ctx).run_once()
    [running] = await claim(ctx)
    clock.set(at(12, 2, 10))

    assert await Scheduler(ctx).run_once() == 1
    second = await claim(ctx)

    statuses = [run.status for run in await runs_of(ctx, admin, "backup")]
    if overlap == "allow":
        assert statuses == ["running", "running"]
        assert len(second) == 1
    else:
        assert statuses == ["running", "queued"]
        assert second == []
        await finish(ctx, running)
        [started] = await claim(ctx)
        assert started.run.scheduled_for == at(12, 2)


async def test_a_busy_job_does_not_hold_up_the_runs_of_other_jobs(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    """Runs waiting behind their own job's concurrency limit must not starve other jobs."""
    await make_job(ctx, admin, "busy", overlap="queue", schedule=None)
    await make_job(ctx, admin, "other", schedule=None)
    for _ in range(5):
        await run_service.trigger_job(ctx, admin, "default", "busy")
    clock.advance(10)
    await run_service.trigger_job(ctx, admin, "default", "other")
    limit = 2

    first = await execution.claim_runs(ctx, node="n", queues=["default"], limit=limit, lease=60)
    second = await execution.claim_runs(ctx, node="n", queues=["default"], limit=limit, lease=60)

    claimed = [item.spec.slug for item in first + second]
    assert sorted(claimed) == ["busy", "other"]


# --- catch-up after downtime -----------------------------------------------------------------


async def test_catch_up_none_after_an_hour_down_fires_nothing_missed_and_resumes_on_the_next_slot(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", catch_up="none", start_grace="10s")
    clock.set(at(13, 0, 30))  # down from 12:00:00: slots 12:01 … 13:00 went by

    assert await Scheduler(ctx).run_once() == 0
    assert (await stored_job(ctx, "backup")).next_fire_at == at(13, 1)
    clock.set(at(13, 1, 5))
    assert await Scheduler(ctx).run_once() == 1

    runs = await runs_of(ctx, admin, "backup")
    assert slots(runs) == [*minutes(at(12, 1), at(13, 0)), at(13, 1)]
    missed = [run for run in runs if run.status == "missed"]
    assert len(missed) == 60  # recorded for the history, as our own outage: never alerted
    assert {run.failure_reason for run in missed} == {"missed"}
    assert "Cronkeeper was not running" in (missed[0].error or "")


async def test_catch_up_latest_fires_only_the_most_recent_missed_slot(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", catch_up="latest", start_grace="10s")
    clock.set(at(13, 0, 30))

    assert await Scheduler(ctx).run_once() == 1

    runs = await runs_of(ctx, admin, "backup")
    assert fired(runs) == [at(13, 0)]
    assert slots(runs) == minutes(at(12, 1), at(13, 0))  # the 59 others recorded as missed
    assert (await stored_job(ctx, "backup")).next_fire_at == at(13, 1)


async def test_catch_up_all_fires_every_missed_slot(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", catch_up="all", start_grace="10s", overlap="queue")
    clock.set(at(13, 0, 30))

    assert await Scheduler(ctx).run_once() == 60

    runs = await runs_of(ctx, admin, "backup")
    assert slots(runs) == minutes(at(12, 1), at(13, 0))
    assert {run.status for run in runs} == {"queued"}
    assert await Scheduler(ctx).run_once() == 0


async def test_a_job_far_behind_catches_up_at_once_with_its_latest_slot(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "ticker", schedule="every 1s", catch_up="latest", start_grace=0)
    clock.advance(60 * 24 * 3600 + 0.5)  # 60 days down: 5,184,000 one-second slots
    now = clock.now()
    latest_missed = now - timedelta(seconds=0.5)
    started = time.perf_counter()

    await Scheduler(ctx).run_once()

    assert time.perf_counter() - started < 3.0
    runs = fired(await runs_of(ctx, admin, "ticker"))
    # the latest missed slot, then only slots of the scheduler's short look-ahead
    assert runs[0] == latest_missed
    assert all(now < slot <= now + execution.LOOKAHEAD for slot in runs[1:])  # type: ignore[operator]
    next_fire = (await stored_job(ctx, "ticker")).next_fire_at
    assert next_fire is not None
    assert now < next_fire <= now + execution.LOOKAHEAD + timedelta(seconds=1)


# --- pause, resume, delete -------------------------------------------------------------------


async def test_a_paused_job_never_fires(ctx: Context, clock: FakeClock, admin: Actor) -> None:
    await make_job(ctx, admin, "backup", catch_up="all")
    await job_service.set_paused(ctx, admin, "default", "backup", paused=True)

    for _ in range(3):
        clock.advance(3600)
        assert await Scheduler(ctx).run_once() == 0

    assert await runs_of(ctx, admin, "backup") == []


async def test_resuming_starts_from_the_next_slot_without_catching_up(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", catch_up="all", start_grace="1h")
    clock.set(at(12, 0, 30))
    await job_service.set_paused(ctx, admin, "default", "backup", paused=True)
    clock.set(at(13, 0, 30))

    await job_service.set_paused(ctx, admin, "default", "backup", paused=False)

    assert await Scheduler(ctx).run_once() == 0
    assert (await stored_job(ctx, "backup")).next_fire_at == at(13, 1)
    clock.set(at(13, 1, 5))
    assert await Scheduler(ctx).run_once() == 1
    assert slots(await runs_of(ctx, admin, "backup")) == [at(13, 1)]  # nothing missed


async def test_deleting_a_job_deletes_its_runs_and_their_events(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    await make_job(ctx, admin, "backup", start_grace="10m")
    await make_job(ctx, admin, "keeper", start_grace="10m")
    clock.set(at(12, 3, 10))
    await Scheduler(ctx).run_once()
    doomed = [uuid.UUID(run.id) for run in await runs_of(ctx, admin, "backup")]
    assert len(doomed) == 3

    await job_service.delete_job(ctx, admin, "default", "backup")

    async with ctx.db.read() as conn:
        for run_id in doomed:
            assert await run_store.get_run(conn, run_id) is None
            assert await run_store.list_events(conn, run_id) == []
    assert len(await runs_of(ctx, admin, "keeper")) == 3
    clock.set(at(12, 4, 10))
    assert await Scheduler(ctx).run_once() == 1  # only the job that is left


async def test_a_scheduled_heartbeat_is_watched_not_fired(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    async with ctx.db.write() as conn:
        await ensure_project(conn, "default", clock.now())
    body = {"slug": "nightly-backup", "kind": "heartbeat", "schedule": "* * * * *"}
    job = await job_service.create_job(ctx, admin, "default", body)
    clock.advance(600)

    created = await Scheduler(ctx).run_once()

    assert created == 0
    assert job.next_fires  # the expected pings are still shown

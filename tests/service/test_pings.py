"""Ping ingest as a use case, on SQLite and PostgreSQL: pings that share one group-commit
batch behave exactly as if each had its own transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from cronkeeper.domain.models import Actor
from cronkeeper.domain.pings import Ping, PingAction
from cronkeeper.errors import NotFound
from cronkeeper.service import jobs as job_service
from cronkeeper.service import monitor, pings
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store import runs as run_store
from cronkeeper.store.tables import attempts, flips, jobs
from cronkeeper.testing import FakeClock


@pytest.fixture(params=["in this process", "in the writer process"])
async def ctx(request: pytest.FixtureRequest, ctx: Context) -> AsyncIterator[Context]:
    """Every test twice on SQLite: batches written on the connection's thread, and in the
    writer process `serve` starts (store/write_process.py), which must behave the same."""
    if request.param == "in the writer process":
        if not ctx.db.start_write_process():
            pytest.skip("the writer process is SQLite's")
        assert ctx.db.write_process is not None
        assert await ctx.db.write_process.wait_ready()
    yield ctx


@pytest.fixture
async def ping_key(ctx: Context) -> str:
    async with ctx.db.write() as conn:
        return (await ensure_project(conn, "default", ctx.clock.now())).ping_key


async def heartbeat(ctx: Context, admin: Actor, slug: str) -> uuid.UUID:
    out = await job_service.create_job(ctx, admin, "default", {"slug": slug, "kind": "heartbeat"})
    assert out.ping_uuid is not None
    return uuid.UUID(out.ping_uuid)


def request(
    ctx: Context, action: PingAction, ping_uuid: uuid.UUID, rid: str | None = None
) -> pings.PingRequest:
    return pings.PingRequest(Ping(action, ctx.clock.now(), rid=rid), ping_uuid=ping_uuid)


async def test_a_start_and_its_finish_in_one_batch_make_one_finished_run(
    ctx: Context, admin: Actor, ping_key: str
) -> None:
    code = await heartbeat(ctx, admin, "backup")
    before = ctx.db.writer.transactions

    started, finished = await asyncio.gather(
        pings.record_ping(ctx, request(ctx, PingAction.START, code, "r1")),
        pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code, "r1")),
    )

    assert ctx.db.writer.transactions - before == 1
    assert started.run_id == finished.run_id
    assert (finished.finished, finished.duration_ms) == ("succeeded", 0)
    assert started.run_id is not None
    async with ctx.db.read() as conn:
        run = await run_store.get_run(conn, started.run_id)
        events = await run_store.list_events(conn, started.run_id)
    assert run is not None and run.status == "succeeded"
    assert [e.sequence_num for e in events] == [1, 2, 3]


async def test_two_creates_of_one_slug_in_a_batch_make_one_job(
    ctx: Context, admin: Actor, ping_key: str
) -> None:
    def create() -> pings.PingRequest:
        ping = Ping(PingAction.SUCCESS, ctx.clock.now())
        return pings.PingRequest(ping, ping_key=ping_key, slug="nightly", create=True)

    first, second = await asyncio.gather(
        pings.record_ping(ctx, create()), pings.record_ping(ctx, create())
    )

    assert (first.created_job, second.created_job) == (True, False)
    assert first.job.id == second.job.id
    page = await job_service.list_jobs(ctx, admin, "default", job_service.JobQuery())
    assert [job.slug for job in page.items] == ["nightly"]


async def test_an_unknown_uuid_fails_alone_in_its_batch(
    ctx: Context, admin: Actor, ping_key: str
) -> None:
    code = await heartbeat(ctx, admin, "backup")

    known, unknown = await asyncio.gather(
        pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code)),
        pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, uuid.uuid4())),
        return_exceptions=True,
    )

    assert isinstance(unknown, NotFound)
    assert isinstance(known, pings.PingResult) and known.finished == "succeeded"


async def test_a_batch_mixing_a_create_a_start_and_a_stray_log_decides_each_as_alone(
    ctx: Context, admin: Actor, ping_key: str
) -> None:
    """A create sends the batch the ordinary way on SQLite (its thread form declines); the
    other pings come out the same, and the log line goes to the newest stored run."""
    code = await heartbeat(ctx, admin, "backup")
    done = await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code))
    assert done.run_id is not None
    for creates in (False, True):
        ping = Ping(PingAction.START, ctx.clock.now())
        slug = pings.PingRequest(ping, ping_key=ping_key, slug="fresh", create=creates)
        log = pings.PingRequest(
            Ping(PingAction.LOG, ctx.clock.now(), body="a line"), ping_uuid=code
        )
        outcomes = await asyncio.gather(
            pings.record_ping(ctx, slug), pings.record_ping(ctx, log), return_exceptions=True
        )
        if not creates:
            assert isinstance(outcomes[0], NotFound)
        else:
            assert isinstance(outcomes[0], pings.PingResult) and outcomes[0].created_job
        assert isinstance(outcomes[1], pings.PingResult) and outcomes[1].run_id == done.run_id
    async with ctx.db.read() as conn:
        events = await run_store.list_events(conn, done.run_id)
    assert [(e.sequence_num, e.type) for e in events][-2:] == [(3, "log"), (4, "log")]


# -- policies a ping applies: min_runtime, max_runtime, resume --------------------------


async def job_row(ctx: Context, job_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).mappings().one()
        return dict(row)


async def created(ctx: Context, admin: Actor, slug: str, **body: Any) -> uuid.UUID:
    out = await job_service.create_job(
        ctx, admin, "default", {"slug": slug, "kind": "heartbeat", **body}
    )
    assert out.ping_uuid is not None
    return uuid.UUID(out.ping_uuid)


async def test_a_finish_sooner_than_min_runtime_fails_the_run_as_too_fast(
    ctx: Context, clock: FakeClock, admin: Actor, ping_key: str
) -> None:
    code = await created(ctx, admin, "quick", min_runtime=60)
    await pings.record_ping(ctx, request(ctx, PingAction.START, code, "r1"))
    clock.advance(10)
    finished = await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code, "r1"))
    clock.advance(60)
    slow = await pings.record_ping(ctx, request(ctx, PingAction.START, code, "r2"))
    clock.advance(61)
    await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code, "r2"))

    assert finished.finished == "failed" and finished.run_id is not None
    async with ctx.db.read() as conn:
        run = await run_store.get_run(conn, finished.run_id)
        events = await run_store.list_events(conn, finished.run_id)
        attempt = (await conn.execute(select(attempts))).mappings().first()
        assert slow.run_id is not None
        fine = await run_store.get_run(conn, slow.run_id)
    assert run is not None and (run.status, run.failure_reason) == ("failed", "too_fast")
    assert run.duration_ms == 10_000 and "min_runtime of 1m" in (run.error or "")
    assert [e.type for e in events][-2:] == ["attempt_succeeded", "run_failed"]
    assert attempt is not None and (attempt["status"], attempt["failure_reason"]) == (
        "success",
        None,
    )
    assert fine is not None and (fine.status, fine.failure_reason) == ("succeeded", None)


async def test_a_start_brings_the_deadline_to_its_max_runtime(
    ctx: Context, clock: FakeClock, admin: Actor, ping_key: str
) -> None:
    code = await created(ctx, admin, "long", schedule="0 * * * *", max_runtime=600)
    await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code))
    await settle(ctx)
    job = (await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code))).job
    await settle(ctx)
    before = (await job_row(ctx, job.id))["deadline_at"]
    clock.advance(1800)
    started = await pings.record_ping(ctx, request(ctx, PingAction.START, code, "r1"))

    ends = clock.now() + timedelta(seconds=600)
    assert before > ends  # the next slot's deadline, later than the run's end
    assert (await job_row(ctx, job.id))["deadline_at"] == ends
    clock.advance(601)
    await settle(ctx)
    assert started.run_id is not None
    async with ctx.db.read() as conn:
        run = await run_store.get_run(conn, started.run_id)
    assert run is not None and (run.status, run.failure_reason) == ("failed", "max_runtime")
    assert run.finished_at == ends


async def test_a_ping_resumes_a_paused_job_with_a_flip_to_new(
    ctx: Context, clock: FakeClock, admin: Actor, ping_key: str
) -> None:
    code = await created(ctx, admin, "paused")
    await job_service.set_paused(ctx, admin, "default", "paused", True)
    clock.advance(30)
    result = await pings.record_ping(ctx, request(ctx, PingAction.START, code))

    assert result.resumed_job
    row = await job_row(ctx, result.job.id)
    assert (row["status"], row["monitor_state"]) == ("active", "new")
    assert row["state_since"] == clock.now()
    async with ctx.db.read() as conn:
        found = await conn.execute(
            select(flips.c.old_state, flips.c.new_state, flips.c.reason, flips.c.created_at)
            .where(flips.c.job_id == result.job.id)
            .order_by(flips.c.id)
        )
        recorded = [tuple(f) for f in found]
    assert recorded[-1] == ("paused", "new", "job.resume", clock.now())


async def settle(ctx: Context) -> None:
    """Run every due monitor check, as the loop would."""
    for _ in range(20):
        if await monitor.check(ctx) == 0:
            return
    raise AssertionError("the monitor keeps finding due jobs")


async def test_a_job_paused_or_deleted_after_a_ping_is_seen_by_the_next_ping(
    ctx: Context, admin: Actor, ping_key: str
) -> None:
    code = await created(ctx, admin, "cached")
    await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code))
    await job_service.set_paused(ctx, admin, "default", "cached", True)
    assert (await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code))).resumed_job
    await job_service.delete_job(ctx, admin, "default", "cached")
    with pytest.raises(NotFound):
        await pings.record_ping(ctx, request(ctx, PingAction.SUCCESS, code))

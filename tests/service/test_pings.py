"""Ping ingest as a use case, on SQLite and PostgreSQL: pings that share one group-commit
batch behave exactly as if each had its own transaction."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.domain.pings import Ping, PingAction
from cronkeeper.errors import NotFound
from cronkeeper.service import jobs as job_service
from cronkeeper.service import pings
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store import runs as run_store


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

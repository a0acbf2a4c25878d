"""The ping endpoints through HTTP (ASGI app over the real ledger, SQLite and PostgreSQL):
Healthchecks-style answers, the runs, attempts and events each ping leaves, rids that
time overlapping runs, body tails, auto-provisioning, and group commit under load.

The fake clock stands at 2026-03-01 12:00 UTC and moves only when a test advances it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from cronkeeper.domain.models import Actor, Attempt, Event, Run
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store import audit as audit_store
from cronkeeper.store import jobs as job_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMIT = "100000"


@dataclass(frozen=True)
class Heartbeat:
    slug: str
    url: str  # /ping/<uuid>
    job_id: uuid.UUID
    project_id: uuid.UUID
    ping_key: str


@pytest.fixture
async def default_project(ctx: Context) -> tuple[uuid.UUID, str]:
    async with ctx.db.write() as conn:
        project = await ensure_project(conn, "default", ctx.clock.now())
    return project.id, project.ping_key


async def make_heartbeat(
    ctx: Context, admin: Actor, project: tuple[uuid.UUID, str], slug: str = "backup"
) -> Heartbeat:
    out = await job_service.create_job(ctx, admin, "default", {"slug": slug, "kind": "heartbeat"})
    assert out.ping_url == f"http://cronkeeper.test/ping/{out.ping_uuid}"
    return Heartbeat(slug, f"/ping/{out.ping_uuid}", uuid.UUID(out.id), *project)


@pytest.fixture
async def beat(ctx: Context, admin: Actor, default_project: tuple[uuid.UUID, str]) -> Heartbeat:
    return await make_heartbeat(ctx, admin, default_project)


async def runs_of(ctx: Context, beat: Heartbeat) -> list[Run]:
    """The job's runs, oldest first."""
    where = run_store.RunFilter(beat.project_id, beat.job_id, descending=False, limit=1000)
    async with ctx.db.read() as conn:
        return await run_store.list_runs(conn, where)


async def detail(ctx: Context, run: Run) -> tuple[list[Attempt], list[Event]]:
    async with ctx.db.read() as conn:
        return await run_store.list_attempts(conn, run.id), await run_store.list_events(
            conn, run.id
        )


def ok(response: httpx.Response, status: int = 200, text: str = "OK") -> None:
    assert (response.status_code, response.text) == (status, text), response.text
    assert response.headers["ping-body-limit"] == LIMIT


async def test_start_then_success_records_one_succeeded_run_timed_from_the_start(
    client: httpx.AsyncClient, ctx: Context, clock: FakeClock, beat: Heartbeat
) -> None:
    ok(await client.get(f"{beat.url}/start"))
    (running,) = await runs_of(ctx, beat)
    clock.advance(42.5)
    ok(await client.post(beat.url, content=b"all 12 tables dumped\n"))

    (run,) = await runs_of(ctx, beat)
    attempts, events = await detail(ctx, run)
    assert run.id == running.id and running.status == "running"
    assert (run.source, run.status, run.failure_reason) == ("heartbeat", "succeeded", None)
    assert (run.started_at, run.finished_at, run.duration_ms) == (
        NOON,
        clock.now(),
        42_500,
    )
    (attempt,) = attempts
    assert (attempt.number, attempt.status, attempt.exit_code, attempt.latency_ms) == (
        1,
        "success",
        None,
        42_500,
    )
    assert attempt.body_preview == "all 12 tables dumped\n"
    assert [e.type for e in events] == ["attempt_started", "attempt_succeeded", "run_succeeded"]
    assert events[0].data is not None and events[0].data["method"] == "GET"
    async with ctx.db.read() as conn:
        last = await job_store.last_runs(conn, [beat.job_id])
    assert last[beat.job_id].id == run.id


async def test_overlapping_starts_with_different_rids_are_each_timed(
    client: httpx.AsyncClient, ctx: Context, clock: FakeClock, beat: Heartbeat
) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    ok(await client.get(f"{beat.url}/start", params={"rid": first}))
    clock.advance(10)
    ok(await client.get(f"{beat.url}/start", params={"rid": second}))
    clock.advance(5)
    ok(await client.get(beat.url, params={"rid": first}))
    clock.advance(20)
    ok(await client.get(f"{beat.url}/0", params={"rid": second.upper()}))

    runs = await runs_of(ctx, beat)
    assert [(r.status, r.duration_ms) for r in runs] == [
        ("succeeded", 15_000),
        ("succeeded", 25_000),
    ]


async def test_fail_and_non_zero_exit_statuses_fail_the_run_with_their_reason(
    client: httpx.AsyncClient, ctx: Context, clock: FakeClock, beat: Heartbeat
) -> None:
    ok(await client.get(f"{beat.url}/start"))
    clock.advance(3)
    ok(await client.post(f"{beat.url}/fail", content=b"disk full"))
    clock.advance(60)
    ok(await client.get(f"{beat.url}/start"))
    clock.advance(2)
    ok(await client.post(f"{beat.url}/3", content=b"pg_dump: error: connection refused"))
    clock.advance(1)
    ok(await client.get(f"{beat.url}/255"))
    clock.advance(1)
    ok(await client.get(f"{beat.url}/0"))

    runs = await runs_of(ctx, beat)
    summary = [(r.status, r.failure_reason, r.duration_ms) for r in runs]
    assert summary == [
        ("failed", "unknown", 3_000),
        ("failed", "exit_code", 2_000),
        ("failed", "exit_code", None),  # no start to time it from
        ("succeeded", None, None),
    ]
    assert runs[1].error == "the job exited with status 3"
    attempts = [(await detail(ctx, run))[0][0] for run in runs]
    assert [(a.status, a.exit_code) for a in attempts] == [
        ("exit_error", None),
        ("exit_error", 3),
        ("exit_error", 255),
        ("success", 0),
    ]
    assert attempts[1].body_preview == "pg_dump: error: connection refused"
    _, events = await detail(ctx, runs[1])
    assert [e.type for e in events] == ["attempt_started", "attempt_failed", "run_failed"]


async def test_success_without_a_start_records_a_finished_run_without_duration(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    ok(await client.get(beat.url))

    (run,) = await runs_of(ctx, beat)
    (attempt,), events = await detail(ctx, run)
    assert (run.status, run.started_at, run.finished_at, run.duration_ms) == (
        "succeeded",
        NOON,
        NOON,
        None,
    )
    assert (attempt.latency_ms, attempt.body_preview) == (None, None)
    assert [e.type for e in events] == ["attempt_succeeded", "run_succeeded"]


async def test_a_second_start_without_rid_supersedes_the_first(
    client: httpx.AsyncClient, ctx: Context, clock: FakeClock, beat: Heartbeat
) -> None:
    ok(await client.get(f"{beat.url}/start"))
    clock.advance(30)
    ok(await client.get(f"{beat.url}/start"))
    clock.advance(10)
    ok(await client.get(beat.url))

    first, second = await runs_of(ctx, beat)
    assert (first.status, first.duration_ms, first.failure_reason) == ("cancelled", 30_000, None)
    assert first.error is not None and first.error.startswith("superseded")
    assert (second.status, second.duration_ms) == ("succeeded", 10_000)


async def test_log_appends_to_the_run_of_its_rid_and_changes_nothing(
    client: httpx.AsyncClient, ctx: Context, clock: FakeClock, beat: Heartbeat
) -> None:
    rid = str(uuid.uuid4())
    ok(await client.get(f"{beat.url}/start", params={"rid": rid}))
    clock.advance(1)
    ok(await client.get(f"{beat.url}/start"))
    ok(await client.post(f"{beat.url}/log", params={"rid": rid}, content=b"50% done"))

    with_rid, without = await runs_of(ctx, beat)
    _, events = await detail(ctx, with_rid)
    assert (with_rid.status, without.status) == ("running", "running")
    assert [(e.type, e.message) for e in events][-1] == ("log", "50% done")
    assert events[-1].data is not None and events[-1].data["rid"] == rid
    assert len((await detail(ctx, without))[1]) == 1  # only its start


async def test_a_log_ping_for_a_job_that_never_ran_is_answered_and_kept_nowhere(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    ok(await client.post(f"{beat.url}/log", content=b"hello"))
    assert await runs_of(ctx, beat) == []


async def test_unknown_targets_answer_404_not_found(
    client: httpx.AsyncClient, beat: Heartbeat, api: httpx.AsyncClient
) -> None:
    created = await api.post(
        "/api/v1/projects/default/jobs",
        json={"slug": "nightly", "kind": "http", "target": {"url": "https://example.com/"}},
    )
    assert created.status_code == 201
    for path in (
        f"/ping/{uuid.uuid4()}",
        f"/ping/{uuid.uuid4()}/start",
        "/ping/not-a-uuid",
        f"{beat.url}/nonsense",
        f"{beat.url}/-1",
        f"{beat.url}/start/extra",
        f"/ping/{beat.ping_key}/unknown-slug",
        f"/ping/{beat.ping_key}/nightly",  # not a heartbeat job
        f"/ping/wrong-key/{beat.slug}",
        f"/ping/{beat.ping_key}/Not_A_Slug",
        f"/ping/{'k' * 100}/{beat.slug}",
        f"/ping/key%00/{beat.slug}",
        f"/ping/{beat.ping_key}/slug%00",
        "/ping/",
    ):
        ok(await client.get(path), 404, "not found")


async def test_bad_exit_status_or_rid_answer_400(
    client: httpx.AsyncClient, beat: Heartbeat
) -> None:
    ok(await client.get(f"{beat.url}/256"), 400, "invalid url format")
    ok(await client.get(f"{beat.url}/99999999999999999999"), 400, "invalid url format")
    ok(await client.get(beat.url, params={"rid": "abc"}), 400, "invalid uuid format")
    ok(
        await client.post(f"/ping/{beat.ping_key}/{beat.slug}/start?rid=1"),
        400,
        "invalid uuid format",
    )


async def test_slug_urls_ping_the_job_of_the_project_ping_key(
    client: httpx.AsyncClient, ctx: Context, clock: FakeClock, beat: Heartbeat
) -> None:
    base = f"/ping/{beat.ping_key}/{beat.slug}"
    ok(await client.get(f"{base}/start"))
    clock.advance(7)
    ok(await client.get(f"{base}/1"))
    ok(await client.post(f"{base}/log", content=b"after"))
    clock.advance(1)
    ok(await client.get(f"{base}/fail"))
    clock.advance(1)
    assert (await client.head(base)).status_code == 200

    runs = await runs_of(ctx, beat)
    assert [(r.status, r.duration_ms) for r in runs] == [
        ("failed", 7_000),
        ("failed", None),
        ("succeeded", None),
    ]


async def test_create_1_provisions_a_heartbeat_job_for_an_unknown_slug(
    client: httpx.AsyncClient, ctx: Context, admin: Actor, beat: Heartbeat
) -> None:
    base = f"/ping/{beat.ping_key}/db-backup"
    ok(await client.get(f"{base}/start", params={"create": "1"}), 201, "Created")
    ok(await client.get(base, params={"create": "1"}))
    ok(await client.get(f"/ping/{beat.ping_key}/Bad_Slug?create=1"), 400, "invalid slug format")
    ok(await client.get(f"/ping/{beat.ping_key}/other", params={"create": "0"}), 404, "not found")
    ok(await client.get("/ping/wrong-key/other", params={"create": "1"}), 404, "not found")

    job = await job_service.get_job(ctx, admin, "default", "db-backup")
    assert (job.kind, job.status, job.ping_uuid is not None) == ("heartbeat", "active", True)
    assert job.last_run is not None and job.last_run.status == "succeeded"
    async with ctx.db.read() as conn:
        entries = await audit_store.list_audit(conn, audit_store.AuditFilter(beat.project_id))
    assert next((e.actor, e.action, e.target) for e in entries) == (
        "ping",
        "job.create",
        "job:db-backup",
    )


async def test_create_1_on_a_slug_of_another_kind_of_job_answers_409(
    client: httpx.AsyncClient, api: httpx.AsyncClient, beat: Heartbeat
) -> None:
    body = {"slug": "nightly", "kind": "http", "target": {"url": "https://example.com/"}}
    assert (await api.post("/api/v1/projects/default/jobs", json=body)).status_code == 201

    response = await client.get(f"/ping/{beat.ping_key}/nightly?create=1")

    assert response.status_code == 409
    assert response.headers["ping-body-limit"] == LIMIT


async def test_a_long_body_keeps_exactly_its_last_100000_bytes(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    body = "".join(f"line {i:08d}\n" for i in range(11_000)).encode()  # 154,000 bytes
    assert len(body) > 150_000

    ok(await client.post(f"{beat.url}/7", content=body))

    (run,) = await runs_of(ctx, beat)
    (attempt,), _ = await detail(ctx, run)
    assert attempt.body_preview is not None
    assert attempt.body_preview.encode() == body[-100_000:]


async def test_nul_bytes_and_broken_utf8_in_a_body_are_stored_readably(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    ok(await client.post(beat.url, content=b"a\x00b\xffc"))

    (run,) = await runs_of(ctx, beat)
    (attempt,), _ = await detail(ctx, run)
    assert attempt.body_preview == "a\ufffdb\ufffdc"


async def test_head_pings_are_recorded_and_answered_without_a_body(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    response = await client.head(beat.url)

    assert response.status_code == 200
    assert response.headers["ping-body-limit"] == LIMIT
    assert response.headers["content-length"] == "2"
    (run,) = await runs_of(ctx, beat)
    _, events = await detail(ctx, run)
    assert run.status == "succeeded"
    assert events[0].data is not None and events[0].data["method"] == "HEAD"


async def test_other_methods_are_refused_and_cors_preflight_is_answered(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    refused = await client.put(beat.url)
    preflight = await client.options(beat.url)

    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD, POST")
    assert refused.headers["ping-body-limit"] == LIMIT
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert await runs_of(ctx, beat) == []


async def test_a_ping_resumes_a_paused_job_and_audits_it(
    client: httpx.AsyncClient, ctx: Context, admin: Actor, beat: Heartbeat
) -> None:
    await job_service.set_paused(ctx, admin, "default", beat.slug, True)
    ok(await client.get(f"{beat.url}/log"))
    assert (await job_service.get_job(ctx, admin, "default", beat.slug)).status == "paused"

    ok(await client.get(f"{beat.url}/start"))

    job = await job_service.get_job(ctx, admin, "default", beat.slug)
    assert (job.status, job.monitor_state) == ("active", "new")
    async with ctx.db.read() as conn:
        (latest, *_) = await audit_store.list_audit(conn, audit_store.AuditFilter(beat.project_id))
    assert (latest.actor, latest.action, latest.diff) == (
        "ping",
        "job.resume",
        {"status": ["paused", "active"]},
    )


async def test_200_concurrent_pings_are_all_acknowledged_and_committed_in_fewer_transactions(
    client: httpx.AsyncClient, ctx: Context, admin: Actor, default_project: tuple[uuid.UUID, str]
) -> None:
    beats = [await make_heartbeat(ctx, admin, default_project, f"job-{n}") for n in range(4)]
    before = ctx.db.writer.transactions
    rids = [str(uuid.uuid4()) for _ in range(50)]

    async def ping(n: int) -> httpx.Response:
        beat = beats[n % 4]
        if n < 100:  # 50 starts then their 50 finishes, interleaved across four jobs
            return await client.post(f"{beat.url}/start", params={"rid": rids[n % 50]})
        return await client.post(f"{beat.url}/{n % 2}", params={"rid": rids[n % 50]})

    starts = await asyncio.gather(*(ping(n) for n in range(100)))
    finishes = await asyncio.gather(*(ping(n) for n in range(100, 200)))

    assert all(r.status_code == 200 for r in (*starts, *finishes))
    runs = [run for beat in beats for run in await runs_of(ctx, beat)]
    # every finish closed the start of its job and rid: 100 runs, none left running
    assert len(runs) == 100
    assert sorted({run.status for run in runs}) == ["failed", "succeeded"]
    transactions = ctx.db.writer.transactions - before
    assert transactions < 50, transactions


async def test_unknown_pings_in_a_busy_batch_fail_alone(
    client: httpx.AsyncClient, ctx: Context, beat: Heartbeat
) -> None:
    paths = [beat.url if n % 2 else f"/ping/{uuid.uuid4()}" for n in range(40)]

    responses = await asyncio.gather(*(client.get(path) for path in paths))

    assert [r.status_code for r in responses] == [200 if n % 2 else 404 for n in range(40)]
    assert len(await runs_of(ctx, beat)) == 20

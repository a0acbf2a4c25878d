"""The worker loop for real, on SQLite and PostgreSQL: real processes, real Python
callables and a real loopback HTTP target, on the system clock (the loops sleep on it).

Kept fast with a 50 ms poll, a short lease and retries drawn at zero delay. Nothing
sleeps for a fixed time: every wait polls the ledger for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cronkeeper.clock import SystemClock
from cronkeeper.domain.models import Actor
from cronkeeper.domain.outcomes import Executor
from cronkeeper.executors.command import CommandExecutor
from cronkeeper.executors.python import PythonExecutor
from cronkeeper.runtime.supervisor import Supervisor
from cronkeeper.service import execution
from cronkeeper.service import jobs as job_service
from cronkeeper.service import runs as run_service
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.service.run_schemas import RunDetailOut
from cronkeeper.service.setup import open_context

from . import sample_jobs

SAMPLE_JOBS = sample_jobs.__name__  # the name pytest imported it under
FINAL = {"succeeded", "failed", "cancelled", "skipped", "missed"}
LEASE = 0.9  # renewed every 0.3 s: a cancel reaches a running attempt within that


@pytest.fixture
async def live(db_url: str) -> AsyncIterator[Context]:
    """A ledger on the system clock with project `default`."""
    ctx = await open_context(db_url, migrate=False)
    async with ctx.db.write() as conn:
        await ensure_project(conn, "default", ctx.clock.now())
    yield ctx
    await ctx.db.dispose()


def executors() -> dict[str, Executor]:
    return {
        "command": CommandExecutor(dict(os.environ), kill_grace=2.0),
        "python": PythonExecutor(SystemClock()),
    }


@contextlib.asynccontextmanager
async def worker(
    ctx: Context, extra: dict[str, Executor] | None = None, **options: Any
) -> AsyncIterator[Supervisor]:
    """A worker-role supervisor running in the background; stopped (drained) on exit."""
    worker_options: dict[str, Any] = {
        "poll": 0.05,
        "lease": LEASE,
        "drain_timeout": 5.0,
        "rng": lambda: 0.0,
    }
    worker_options.update(options)
    supervisor = Supervisor(
        ctx,
        {**executors(), **(extra or {})},
        role="worker",
        node="test-worker",
        worker_options=worker_options,
        reap_every=0.2,
    )
    task = asyncio.create_task(supervisor.run())
    try:
        yield supervisor
    finally:
        supervisor.stop()
        await asyncio.wait_for(task, timeout=15)


async def make_job(
    ctx: Context, admin: Actor, slug: str, kind: str, target: Any, **fields: Any
) -> None:
    body = {"slug": slug, "kind": kind, "target": target, **fields}
    await job_service.create_job(ctx, admin, "default", body)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def detail(ctx: Context, admin: Actor, run_id: str) -> RunDetailOut:
    return await run_service.get_run(ctx, admin, "default", run_id)


async def until_status(
    ctx: Context, admin: Actor, run_id: str, statuses: set[str], timeout: float = 10.0
) -> RunDetailOut:
    async def check() -> RunDetailOut | None:
        run = await detail(ctx, admin, run_id)
        return run if run.status in statuses else None

    found: RunDetailOut = await eventually(check, timeout, f"run {run_id} to be {statuses}")
    return found


async def event_types(ctx: Context, admin: Actor, run_id: str) -> list[str]:
    events, _ = await run_service.list_events(ctx, admin, "default", run_id)
    assert [e.sequence_num for e in events] == list(range(1, len(events) + 1))
    return [e.type for e in events]


def written(path: Path) -> Callable[[], Awaitable[bool]]:
    """A check for `eventually`: the file exists and holds a whole line."""

    async def check() -> bool:
        return path.exists() and path.read_text().endswith("\n")

    return check


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- command jobs ------------------------------------------------------------------------


async def test_a_triggered_command_job_succeeds_with_its_attempt_and_events_recorded(
    live: Context, admin: Actor
) -> None:
    target = {"command": "echo hello from the job; echo second line", "shell": True}
    await make_job(live, admin, "greet", "command", target)
    async with worker(live):
        queued = await run_service.trigger_job(live, admin, "default", "greet")
        run = await until_status(live, admin, queued.id, FINAL)

    assert run.status == "succeeded"
    assert run.source == "manual"
    assert (run.attempts, run.max_attempts) == (1, 3)
    assert run.failure_reason is None
    assert run.duration_ms is not None and 0 <= run.duration_ms < 5000
    assert run.started_at is not None and run.finished_at is not None
    assert run.started_at <= run.finished_at
    assert run.node == "test-worker"
    [attempt] = run.attempt_details
    assert (attempt.number, attempt.status, attempt.exit_code) == (1, "success", 0)
    assert attempt.body_preview == "hello from the job\nsecond line\n"
    assert attempt.latency_ms is not None
    assert run.payload["request"]["command"] == target["command"]
    assert await event_types(live, admin, run.id) == [
        "run_queued",
        "attempt_started",
        "attempt_succeeded",
        "run_succeeded",
    ]


async def test_a_failing_command_is_retried_up_to_max_attempts_then_fails_with_exit_code(
    live: Context, admin: Actor
) -> None:
    target = {"command": "echo try $CRONKEEPER_ATTEMPT; exit 3", "shell": True}
    await make_job(live, admin, "flaky", "command", target, retry={"max_attempts": 3})
    async with worker(live):
        queued = await run_service.trigger_job(live, admin, "default", "flaky")
        run = await until_status(live, admin, queued.id, FINAL)

    assert run.status == "failed"
    assert run.failure_reason == "exit_code"
    assert run.failure_explanation
    assert (run.attempts, run.max_attempts) == (3, 3)
    attempts = run.attempt_details
    assert [a.number for a in attempts] == [1, 2, 3]
    assert {(a.status, a.exit_code, a.failure_reason) for a in attempts} == {
        ("exit_error", 3, "exit_code")
    }
    assert [a.body_preview for a in attempts] == ["try 1\n", "try 2\n", "try 3\n"]
    retry = ["attempt_started", "attempt_failed", "retry_scheduled"]
    assert await event_types(live, admin, run.id) == [
        "run_queued",
        *retry,
        *retry,
        "attempt_started",
        "attempt_failed",
        "run_failed",
    ]


# --- python jobs -------------------------------------------------------------------------


async def test_a_python_job_that_raises_fails_with_the_exception_class_recorded(
    live: Context, admin: Actor
) -> None:
    target = {"callable": f"{SAMPLE_JOBS}:explode"}
    await make_job(live, admin, "report", "python", target, retry={"max_attempts": 1})
    async with worker(live):
        queued = await run_service.trigger_job(live, admin, "default", "report")
        run = await until_status(live, admin, queued.id, FINAL)

    assert run.status == "failed"
    assert run.failure_reason == "exception"
    assert run.error == "the report template is missing"
    [attempt] = run.attempt_details
    assert attempt.status == "exception"
    assert attempt.error_class == f"{SAMPLE_JOBS}.ReportBroke"
    types = await event_types(live, admin, run.id)
    assert types[0:2] == ["run_queued", "attempt_started"]
    assert types[-2:] == ["attempt_failed", "run_failed"]
    assert "log" in types  # the traceback


async def test_a_python_job_gets_its_payload_and_its_log_lines_become_events(
    live: Context, admin: Actor
) -> None:
    target = {"callable": f"{SAMPLE_JOBS}:count_rows", "kwargs": {"table": "users"}}
    await make_job(live, admin, "counter", "python", target)
    async with worker(live):
        queued = await run_service.trigger_job(
            live, admin, "default", "counter", payload={"since": "yesterday"}
        )
        run = await until_status(live, admin, queued.id, FINAL)

    assert run.status == "succeeded"
    [attempt] = run.attempt_details
    assert attempt.body_preview is not None
    assert '"rows": 3' in attempt.body_preview
    assert '"payload": {"since": "yesterday"}' in attempt.body_preview
    events, _ = await run_service.list_events(live, admin, "default", run.id)
    assert [(e.type, e.message) for e in events if e.type == "log"] == [("log", "counting users")]
    assert run.payload["input"] == {"since": "yesterday"}


# --- cancel ------------------------------------------------------------------------------


async def test_cancelling_a_running_command_stops_its_process_and_the_run_stays_cancelled(
    live: Context, admin: Actor, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    target = {"command": f"echo $$ > {pid_file}; exec sleep 30", "shell": True}
    await make_job(live, admin, "long", "command", target)
    async with worker(live) as supervisor:
        queued = await run_service.trigger_job(live, admin, "default", "long")
        await until_status(live, admin, queued.id, {"running"})

        await eventually(written(pid_file), what="the command to start")
        child = int(pid_file.read_text())

        cancelled = await run_service.cancel_run(live, admin, "default", queued.id)

        assert cancelled.status == "cancelled"

        async def stopped() -> bool:
            return process_gone(child) and not supervisor.worker.active  # type: ignore[union-attr]

        await eventually(stopped, timeout=5, what="the process to be killed")

    run = await detail(live, admin, queued.id)
    assert run.status == "cancelled"
    assert run.finished_at is not None
    assert (await event_types(live, admin, run.id))[-1] == "run_cancelled"


# --- lost nodes --------------------------------------------------------------------------


async def strand_run(ctx: Context, admin: Actor, slug: str) -> str:
    """Trigger a run and have a node that then vanishes claim it; its lease has run out."""
    queued = await run_service.trigger_job(ctx, admin, "default", slug)
    [claimed] = await execution.claim_runs(
        ctx, node="ghost-node", queues=["default"], limit=10, lease=60
    )
    assert str(claimed.run.id) == queued.id
    ours = await execution.renew_leases(ctx, node="ghost-node", run_ids=[claimed.run.id], lease=-1)
    assert ours == {claimed.run.id}
    return queued.id


async def test_a_run_whose_node_stopped_renewing_its_lease_is_reaped_and_retried(
    live: Context, admin: Actor
) -> None:
    await make_job(live, admin, "nightly", "command", {"command": ["echo", "second try"]})
    run_id = await strand_run(live, admin, "nightly")

    reaped = await execution.reap_lost_runs(live, random=lambda: 0.0)
    again = await execution.reap_lost_runs(live, random=lambda: 0.0)

    assert (reaped, again) == (1, 0)
    run = await detail(live, admin, run_id)
    assert run.status == "queued"
    assert run.failure_reason == "node_lost"
    assert run.node is None
    [lost] = run.attempt_details
    assert (lost.number, lost.status, lost.failure_reason) == (1, "exception", "node_lost")
    assert lost.error_class == "cronkeeper.NodeLost"
    assert lost.error is not None and "ghost-node" in lost.error
    assert await event_types(live, admin, run_id) == [
        "run_queued",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
    ]

    async with worker(live):
        finished = await until_status(live, admin, run_id, FINAL)

    assert finished.status == "succeeded"
    assert finished.attempts == 2
    assert [a.status for a in finished.attempt_details] == ["exception", "success"]
    assert finished.attempt_details[1].body_preview == "second try\n"


async def test_a_lost_run_on_its_last_attempt_fails_with_node_lost(
    live: Context, admin: Actor
) -> None:
    target = {"command": ["true"]}
    await make_job(live, admin, "once", "command", target, retry={"max_attempts": 1})
    run_id = await strand_run(live, admin, "once")

    assert await execution.reap_lost_runs(live, random=lambda: 0.0) == 1

    run = await detail(live, admin, run_id)
    assert run.status == "failed"
    assert run.failure_reason == "node_lost"
    assert run.finished_at is not None
    assert (await event_types(live, admin, run_id))[-1] == "run_failed"


async def test_a_live_lease_is_never_reaped(live: Context, admin: Actor) -> None:
    await make_job(live, admin, "busy", "command", {"command": ["true"]})
    await run_service.trigger_job(live, admin, "default", "busy")
    await execution.claim_runs(live, node="alive-node", queues=["default"], limit=10, lease=60)

    assert await execution.reap_lost_runs(live, random=lambda: 0.0) == 0


# --- graceful drain ----------------------------------------------------------------------


async def test_stopping_lets_a_short_running_command_finish_and_records_it(
    live: Context, admin: Actor
) -> None:
    target = {"command": "sleep 0.4; echo finished", "shell": True}
    await make_job(live, admin, "short", "command", target)
    async with worker(live, drain_timeout=10.0) as supervisor:
        queued = await run_service.trigger_job(live, admin, "default", "short")
        await until_status(live, admin, queued.id, {"running"})
    # leaving the block stopped the supervisor and waited for the drain

    run = await detail(live, admin, queued.id)
    assert run.status == "succeeded"
    assert run.attempt_details[0].body_preview == "finished\n"
    assert supervisor.worker is not None and not supervisor.worker.active


async def test_stopping_past_the_drain_timeout_puts_a_long_command_back_in_the_queue(
    live: Context, admin: Actor, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    target = {"command": f"echo $$ > {pid_file}; exec sleep 30", "shell": True}
    await make_job(live, admin, "long", "command", target)
    started = time.monotonic()
    async with worker(live, drain_timeout=0.2):
        queued = await run_service.trigger_job(live, admin, "default", "long")
        await until_status(live, admin, queued.id, {"running"})
        await eventually(written(pid_file), what="the command to start")

    assert time.monotonic() - started < 10
    run = await detail(live, admin, queued.id)
    assert run.status == "queued"
    assert run.attempts == 0  # the interrupted attempt does not count
    assert run.node is None
    assert run.attempt_details == []
    assert process_gone(int(pid_file.read_text()))
    events, _ = await run_service.list_events(live, admin, "default", queued.id)
    assert events[-1].type == "log"
    assert events[-1].message is not None and "released" in events[-1].message


# --- HTTP jobs (a real loopback target) --------------------------------------------------


@pytest.fixture
async def http_target() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A loopback app: `/flaky` answers 503 to the first call and 200 after; every call's
    headers are recorded."""
    calls: list[dict[str, str]] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append({name.lower(): value for name, value in request.headers.items()})
        if len(calls) == 1:
            return web.Response(status=503, text="warming up")
        return web.Response(text="report sent")

    app = web.Application()
    app.router.add_post("/flaky", flaky)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", calls
    await runner.cleanup()


async def test_an_http_job_retries_a_503_and_sends_the_run_headers(
    live: Context, admin: Actor, http_target: tuple[str, list[dict[str, str]]]
) -> None:
    http = pytest.importorskip("cronkeeper.executors.http")
    from cronkeeper.domain.ssrf import SsrfPolicy

    base, calls = http_target
    target = {"method": "POST", "url": f"{base}/flaky"}
    await make_job(live, admin, "report", "http", target)
    policy = SsrfPolicy.from_settings_values("127.0.0.1/32", "", "")
    async with (
        http.HttpExecutor(policy, user_agent="cronkeeper-tests") as executor,
        worker(live, extra={"http": executor}),
    ):
        queued = await run_service.trigger_job(live, admin, "default", "report")
        run = await until_status(live, admin, queued.id, FINAL)

    assert run.status == "succeeded"
    first, second = run.attempt_details
    assert (first.status, first.status_code, first.failure_reason) == (
        "http_error",
        503,
        "http_5xx",
    )
    assert (second.status, second.status_code, second.body_preview) == (
        "success",
        200,
        "report sent",
    )
    assert [call["x-cronkeeper-attempt"] for call in calls] == ["1", "2"]
    assert {call["x-cronkeeper-run-id"] for call in calls} == {run.id}
    assert {call["idempotency-key"] for call in calls} == {run.id}
    assert {call["x-cronkeeper-job"] for call in calls} == {"report"}
    assert all(run.trace_id in call["traceparent"] for call in calls)

"""A run's spans: one `cron.trigger.fire` per run with its attempts as children; the
attempt's traceparent reaches the job; the run stores the trace id."""

from __future__ import annotations

import asyncio
import os
import uuid

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cronkeeper.domain.models import Actor
from cronkeeper.executors.command import CommandExecutor
from cronkeeper.runtime.tracing import Tracing, fire_span_id, provider_for
from cronkeeper.runtime.worker import Worker
from cronkeeper.service import jobs, runs
from cronkeeper.service.context import Context
from cronkeeper.service.keys import bootstrap
from cronkeeper.service.run_schemas import RunDetailOut
from cronkeeper.service.setup import open_context


async def _wait_final(ctx: Context, actor: Actor, run_id: str) -> RunDetailOut:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline:
        run = await runs.get_run(ctx, actor, "default", run_id)
        if run.status in ("succeeded", "failed"):
            return run
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not finish in time")


async def test_each_run_has_one_fire_span_whose_children_are_its_attempts(
    sqlite_url: str, admin: Actor
) -> None:
    ctx = await open_context(sqlite_url)
    await bootstrap(ctx)  # project "default"
    exporter = InMemorySpanExporter()
    provider = provider_for(None, SimpleSpanProcessor(exporter))
    body = {
        "slug": "traced",
        "kind": "command",
        "target": {"command": "echo $TRACEPARENT; exit 1", "shell": True},
        "retry": {"max_attempts": 2, "backoff": "10ms"},
    }
    await jobs.create_job(ctx, admin, "default", body)
    worker = Worker(
        ctx,
        {"command": CommandExecutor(dict(os.environ))},
        node="n1",
        poll=0.05,
        tracing=Tracing(provider),
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(worker.run(stopping))
    try:
        queued = await runs.trigger_job(ctx, admin, "default", "traced")
        run = await _wait_final(ctx, admin, queued.id)
    finally:
        stopping.set()
        await running
        await ctx.db.dispose()

    spans = exporter.get_finished_spans()
    fires = [s for s in spans if s.name == "cron.trigger.fire"]
    attempts = [s for s in spans if s.name == "cron.trigger.attempt"]
    assert len(fires) == 1 and len(attempts) == 2
    fire = fires[0]
    assert f"{fire.context.trace_id:032x}" == run.trace_id
    assert fire.context.span_id == fire_span_id(uuid.UUID(run.id))
    assert fire.attributes["cron.outcome"] == "failed"
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == fire.context.span_id
        assert attempt.context.trace_id == fire.context.trace_id
    seen = {d.body_preview.strip() for d in run.attempt_details if d.body_preview}
    expected = {f"00-{a.context.trace_id:032x}-{a.context.span_id:016x}-01" for a in attempts}
    assert seen == expected

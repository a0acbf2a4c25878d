"""Runtime stages in-process: what firing, claiming and recording a run cost each.

Calls the runtime's use cases directly (`service.execution`: fire_due_slots,
claim_runs, record_outcomes) on a fresh SQLite ledger with N `every 1s` jobs, no
server, no HTTP, one stage at a time, and reports the wall time per run of each.
Then repeats one claim of 100 with a backlog of queued-and-due runs, to show how the
claim's cost grows with the queue (the claim runs inside the write transaction).
This splits the sustained/burst figures into their parts; it has no target of its own.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from typing import Any

from bench import harness

SCALES = {
    "full": {"jobs": 1000, "backlogs": (1_000, 10_000, 40_000)},
    "small": {"jobs": 200, "backlogs": (500, 2_000)},
}


def main(args: Any = None) -> list[str]:
    options = SCALES[getattr(args, "scale", "full")]
    return asyncio.run(_run(int(options["jobs"]), tuple(options["backlogs"])))


async def _run(n: int, backlogs: tuple[int, ...]) -> list[str]:
    from cronkeeper.service.setup import open_context

    lines = [f"stages: {n:,} http jobs 'every 1s', in-process on SQLite (no HTTP)"]
    with harness.workdir("stages") as folder:
        db = f"{folder}/stages.db"
        start = harness.whole_second_after(2.0)  # the first slot, after seeding
        template = harness.JobTemplate.of("every 1s", "http://127.0.0.1:9/hook")
        await harness.seed_jobs(
            db,
            lambda project_id: [
                template.row(project_id, f"s-{i:05d}", start, harness.utc_now()) for i in range(n)
            ],
        )
        ctx = await open_context(db, migrate=False)
        try:
            for label in ("first run of each job", "steady state (second run)"):
                lines.append(f"  {label}:")
                lines += await _one_pass(ctx)
            lines += await _claim_vs_backlog(ctx, start, backlogs)
        finally:
            await ctx.db.dispose()
    return lines


async def _one_pass(ctx: Any) -> list[str]:
    """Fire the slot due now of every job, claim all of it, record all of it."""
    from sqlalchemy import update

    from cronkeeper.domain.outcomes import Outcome
    from cronkeeper.domain.states import AttemptStatus
    from cronkeeper.service import execution
    from cronkeeper.store.tables import jobs

    slot = harness.whole_second_after(0.3)  # exactly one due slot per job in this pass
    async with ctx.db.write() as conn:
        await conn.execute(update(jobs).values(next_fire_at=slot))
    await asyncio.sleep(max(0.0, (slot - harness.utc_now()).total_seconds()))
    t0 = time.perf_counter()
    fired = 0
    while count := await execution.fire_due_slots(ctx, 2000, timedelta(0)):
        fired += count
    fire = time.perf_counter() - t0
    claimed: list[Any] = []
    t0 = time.perf_counter()
    while batch := await execution.claim_runs(
        ctx, node="bench", queues=["default"], limit=100, lease=60
    ):
        claimed += batch
    claim = time.perf_counter() - t0
    now = harness.utc_now()
    resolved = {"method": "GET", "url": "http://127.0.0.1:9/hook", "headers": {}, "body": None}
    outcome = Outcome(
        status=AttemptStatus.SUCCESS, status_code=204, latency_ms=2, resolved=resolved
    )
    finished = [execution.Finished(item, outcome, now) for item in claimed]
    t0 = time.perf_counter()
    for i in range(0, len(finished), 100):
        await execution.record_outcomes(
            ctx, finished[i : i + 100], node="bench", random=random.random
        )
    record = time.perf_counter() - t0
    per = [
        x / max(1, k) for x, k in ((fire, fired), (claim, len(claimed)), (record, len(finished)))
    ]
    total = sum(per)
    return [
        f"    fire_due_slots: {fired:,} runs, {per[0] * 1e6:,.0f} µs/run; "
        f"claim_runs (100/call): {len(claimed):,} runs, {per[1] * 1e6:,.0f} µs/run; "
        f"record_outcomes (100/call): {per[2] * 1e6:,.0f} µs/run",
        f"    → {total * 1e6:,.0f} µs of write path per run: at most {1 / total:,.0f} runs/s "
        "through the one writer, before any HTTP",
    ]


async def _claim_vs_backlog(ctx: Any, start: Any, backlogs: tuple[int, ...]) -> list[str]:
    """Time one claim of 100 with `backlog` queued-and-due runs in the queue."""
    from cronkeeper.service import execution

    lines = ["  one claim of 100 vs queued-and-due backlog (write lock held meanwhile):"]
    made = 0
    for backlog in backlogs:
        if backlog > made:
            await _add_backlog(ctx, start, made, backlog - made)
            made = backlog
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            batch = await execution.claim_runs(
                ctx, node="bench", queues=["default"], limit=100, lease=60
            )
            samples.append((time.perf_counter() - t0) * 1000)
            await _release(ctx, [item.run.id for item in batch])
        lines.append(
            f"    backlog {backlog:,}: {sorted(samples)[2]:.1f} ms per claim (median of 5)"
        )
    return lines


async def _add_backlog(ctx: Any, start: Any, already: int, count: int) -> None:
    """Queue `count` more due runs (older slots of the same jobs), in bulk."""
    from sqlalchemy import select

    from cronkeeper.domain.jobs import JobSpec
    from cronkeeper.service.execution import new_run_values
    from cronkeeper.store.tables import jobs, runs

    async with ctx.db.read() as conn:
        rows = (await conn.execute(select(jobs.c.id, jobs.c.project_id, jobs.c.spec))).all()
    now = harness.utc_now()
    values = []
    for k in range(already, already + count):
        job = rows[k % len(rows)]
        slot = start - timedelta(seconds=10 + k // len(rows))  # before any fired slot
        row = new_run_values(
            job.project_id,
            job.id,
            JobSpec.from_body(job.spec),
            source="schedule",
            now=now,
            scheduled_for=slot,
        )
        row["not_before"] = slot
        values.append(row)
    async with ctx.db.write() as conn:
        for i in range(0, len(values), 5000):
            await conn.execute(runs.insert(), values[i : i + 5000])


async def _release(ctx: Any, run_ids: list[Any]) -> None:
    from sqlalchemy import update

    from cronkeeper.store.tables import runs

    async with ctx.db.write() as conn:
        await conn.execute(
            update(runs)
            .where(runs.c.id.in_(run_ids))
            .values(status="queued", node=None, lease_expires_at=None, attempts=0)
        )

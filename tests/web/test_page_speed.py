"""Every page answers in under 100 ms of server time with 10,000 runs in a job's history
(and 50 jobs on the overview). Measured through the ASGI app, so the figure includes the
session check, every service call and rendering. The budget applies to the best of seven
requests (the machine is shared: the median, also printed, carries other processes' load)."""

from __future__ import annotations

import statistics
import time

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context

from .conftest import Keys, LogIn, http_job
from .ledger import add_runs

BUDGET_MS = 100.0
HISTORY = 10_000


@pytest.mark.slow
async def test_every_page_renders_in_under_100_ms_with_10000_runs(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("big"))
    ids = await add_runs(ctx, "big", HISTORY)
    for index in range(49):
        await job_service.create_job(ctx, admin, "default", http_job(f"job-{index:02d}"))
        await add_runs(ctx, f"job-{index:02d}", 20)
    client = await logged_in(keys.write)
    deep = (await client.get("/jobs/big")).text.split('href="/jobs/big?cursor=')[1].split('"')[0]
    pages = {
        "overview (50 jobs)": "/",
        "job detail": "/jobs/big",
        "job detail, page 2": f"/jobs/big?cursor={deep}",
        "run detail": f"/runs/{ids[HISTORY // 2]}",
        "row expand": f"/runs/{ids[-1]}/expand",
        "watcher poll": "/jobs/big/watch",
        "edit form": "/jobs/big/edit",
        "audit": "/audit",
        "queue": "/queue",
        "topology": "/topology",
    }
    timings = {}
    for name, path in pages.items():
        samples = []
        for _ in range(7):
            started = time.perf_counter()
            response = await client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.text[:300])
        timings[name] = (min(samples), statistics.median(samples))
    report = ", ".join(
        f"{name} {best:.1f} ({median:.1f})" for name, (best, median) in timings.items()
    )
    print(f"\npage server times in ms, best (median) of 7: {report}")
    slow = {name: best for name, (best, _) in timings.items() if best > BUDGET_MS}
    assert not slow, report

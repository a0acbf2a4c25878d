"""Dashboard pages: server time of every page with 10,000 runs in a job's history and 50
jobs on the overview (budget: 100 ms per page, best of N requests).

Seeds the ledger of tests/web/test_page_speed.py in a temporary SQLite file, through
`cronkeeper.testing.add_runs`: job `big` with 10,000 finished runs (one every 5 minutes up
to now, every 4th failed, with attempts and events) and 49 more jobs with 20 runs each.
Logs in with a write key, then times GET requests to each page through the server's app
in-process (httpx.ASGITransport: the session check, every service call and rendering; no
sockets), N per page after a warm-up. Reports the best and the median per page, whether
the best is within the budget (the median also carries whatever else the machine is
doing: see the noise line), and how many SQL statements each request sent.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench import harness
from bench.harness import verdict

SCALES = {
    "full": {"runs": 10_000, "others": 49, "other_runs": 20, "requests": 21},
    "small": {"runs": 500, "others": 9, "other_runs": 20, "requests": 3},
}
BUDGET_MS = 100.0
WARMUP = 2
BASE_URL = "http://bench"
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def main(args: Any = None) -> list[str]:
    scale = getattr(args, "scale", "full")
    options = SCALES[scale]
    with harness.workdir("pages") as folder:
        return asyncio.run(_measure(f"{folder}/pages.db", options))


@dataclass(frozen=True)
class Timing:
    samples: list[float]  # ms per request
    statements: list[int]  # SQL statements per request

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


async def _measure(db: str, options: dict[str, int]) -> list[str]:
    from cronkeeper.service.setup import open_context

    ctx = await open_context(db)
    try:
        started = time.monotonic()
        key, run_ids = await _seed(ctx, options)
        seeded = time.monotonic() - started
        lines = [
            f"pages: job 'big' with {options['runs']:,} runs, {options['others']} more jobs "
            f"with {options['other_runs']} runs each (seeded in {seeded:.1f} s); SQLite, "
            f"in-process ASGI"
        ]
        async with httpx.AsyncClient(transport=_transport(ctx), base_url=BASE_URL) as client:
            await _log_in(client, key)
            from cronkeeper.testing import dashboard_pages

            jobs = options["others"] + 1
            paths = {
                f"overview ({jobs} jobs)" if name == "overview" else name: path
                for name, path in (await dashboard_pages(client, run_ids)).items()
            }
            load = harness.LoadMeter().start()
            with _StatementCounter(ctx) as counter:
                timings = {
                    name: await _time(client, path, options["requests"], counter)
                    for name, path in paths.items()
                }
            noise = load.note()
    finally:
        await ctx.db.dispose()
    return lines + _report(timings, options["requests"]) + [f"  noise: {noise}"]


def _transport(ctx: Any) -> httpx.ASGITransport:
    """What `cronkeeper serve` answers with: the API app plus the dashboard routes."""
    from cronkeeper.api.app import create_app
    from cronkeeper.web.app import dashboard_routes

    app = create_app(ctx)
    app.router.routes.extend(dashboard_routes(ctx))
    return httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))


# ---------------------------------------------------------------- seeding


async def _seed(ctx: Any, options: dict[str, int]) -> tuple[str, list[uuid.UUID]]:
    """A write key of project `default`, and the ledger; `big`'s run ids, oldest first."""
    from cronkeeper.domain.states import KeyRole
    from cronkeeper.service import jobs as job_service
    from cronkeeper.service.keys import create_key, local_actor
    from cronkeeper.testing import add_runs

    actor = local_actor()
    created = await create_key(
        ctx, actor, project_slug="default", role=KeyRole.WRITE, name="bench-pages"
    )
    await job_service.create_job(ctx, actor, "default", _job_body("big"))
    run_ids = await add_runs(ctx, "big", options["runs"])
    for number in range(options["others"]):
        slug = f"job-{number:02d}"
        await job_service.create_job(ctx, actor, "default", _job_body(slug))
        await add_runs(ctx, slug, options["other_runs"])
    return created.plaintext, run_ids


def _job_body(slug: str) -> dict[str, Any]:
    """The job of tests/web/conftest.py `http_job`."""
    return {
        "slug": slug,
        "kind": "http",
        "schedule": "*/5 * * * *",
        "target": {
            "method": "POST",
            "url": "https://reports.example.com/run",
            "headers": {"Authorization": "Bearer s3cret"},
        },
    }


# ---------------------------------------------------------------- requests


async def _log_in(client: httpx.AsyncClient, key: str) -> None:
    form = await client.get("/login")
    found = CSRF_INPUT.search(form.text)
    if form.status_code != 200 or found is None:
        raise RuntimeError(f"login form: {form.status_code}: {form.text[:300]}")
    data = {"csrf": found.group(1), "next": "/", "api_key": key}
    response = await client.post("/login", data=data)
    if response.status_code != 303:
        raise RuntimeError(f"login: {response.status_code}: {response.text[:300]}")


class _StatementCounter:
    """Counts the SQL statements the ledger receives (a SQLAlchemy engine event)."""

    def __init__(self, ctx: Any) -> None:
        self.engine = ctx.db.engine.sync_engine
        self.count = 0
        self._listener: Callable[..., None] = self._record

    def _record(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> _StatementCounter:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._listener)
        return self

    def __exit__(self, *_: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._listener)


async def _time(client: httpx.AsyncClient, path: str, n: int, counter: _StatementCounter) -> Timing:
    samples: list[float] = []
    statements: list[int] = []
    for index in range(WARMUP + n):
        before = counter.count
        started = time.perf_counter()
        response = await client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}: {response.text[:300]}")
        if index >= WARMUP:
            samples.append(elapsed)
            statements.append(counter.count - before)
    return Timing(samples, statements)


def _report(timings: dict[str, Timing], n: int) -> list[str]:
    width = max(len(name) for name in timings)
    lines = [
        f"  server time per page in ms, best / median of {n} requests after {WARMUP} "
        f"warm-up; budget: best ≤ {BUDGET_MS:.0f} ms; SQL statements per request"
    ]
    for name, timing in timings.items():
        low, high = min(timing.statements), max(timing.statements)
        sql = f"{low}" if low == high else f"{low}–{high}"
        lines.append(
            f"  {name:<{width}}  {timing.best:6.1f} / {timing.median:6.1f}   SQL {sql:<5} "
            f"[{verdict(timing.best <= BUDGET_MS)}]"
        )
    return lines

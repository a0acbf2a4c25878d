"""Jobs API on SQLite: create N jobs through HTTP, then time list pages and single gets.

Runs the real ASGI app in-process (httpx ASGITransport), so it measures Cronkeeper's
own cost (validation, schedule computation, SQL) without socket overhead.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from typing import Any

import httpx

from cronkeeper.api.app import create_app
from cronkeeper.service.keys import bootstrap
from cronkeeper.service.setup import open_context


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(jobs: int = 2000, reads: int = 300) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        ctx = await open_context(f"{folder}/bench.db")
        key = await bootstrap(ctx)
        app = create_app(ctx)
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://b", headers=headers
        ) as c:
            started = time.perf_counter()
            for i in range(jobs):
                body = {
                    "slug": f"job-{i:06d}",
                    "kind": "http",
                    "schedule": "*/5 * * * *",
                    "timezone": "Europe/Berlin",
                    "tags": [f"t{i % 10}"],
                    "target": {"url": "https://example.com/hook"},
                }
                response = await c.post("/api/v1/projects/default/jobs", json=body)
                assert response.status_code == 201, response.text
            create_rate = jobs / (time.perf_counter() - started)
            pages, gets = [], []
            for i in range(reads):
                t0 = time.perf_counter()
                response = await c.get(
                    "/api/v1/projects/default/jobs", params={"limit": 50, "tag": f"t{i % 10}"}
                )
                pages.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
                t0 = time.perf_counter()
                response = await c.get(f"/api/v1/projects/default/jobs/job-{i:06d}")
                gets.append((time.perf_counter() - t0) * 1000)
        await ctx.db.dispose()
    p50_page, p99_page = statistics.median(pages), _percentile(pages, 0.99)
    p50_get, p99_get = statistics.median(gets), _percentile(gets, 0.99)
    return [
        f"jobs API, SQLite, {jobs} jobs: create {create_rate:,.0f} jobs/s (sequential)",
        f"  list page (50 jobs, tag filter): p50 {p50_page:.1f} ms, p99 {p99_page:.1f} ms",
        f"  get one job: p50 {p50_get:.2f} ms, p99 {p99_get:.2f} ms",
    ]


SCALES = {"full": {"jobs": 2000, "reads": 300}, "small": {"jobs": 100, "reads": 30}}


def main(args: Any = None) -> list[str]:
    return asyncio.run(run(**SCALES[getattr(args, "scale", "full")]))

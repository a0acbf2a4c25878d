"""Run history: one job with 1,000,000 runs in the table (DESIGN §6: page p99 ≤ 10 ms).

Seeds a ledger with the big job's runs (one every 2 s, so all within the default
30-day retention; ~8% failed) plus other jobs' runs, bulk-inserted through
`cronkeeper.store.tables.runs`. Then times GET /api/v1/projects/default/jobs/{slug}/runs:

- over real HTTP against `cronkeeper serve` with a keep-alive httpx.Client;
- in-process through httpx.ASGITransport (the same app, no sockets);
- the service call alone (`service.runs.list_runs`: SQL + building the page's items).

Over HTTP it also gives the server's CPU time per request (all its threads, divided by
the requests sent): less noisy than latency on a shared machine, to compare revisions.

Request mixes: the default first page; pages deep in the history via `cursor`; the
`status=failed` filter (first page and deep); `sort=scheduled_for`.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import harness
from bench.harness import summary, verdict

SCALES = {
    "full": {"runs": 1_000_000, "others": 20, "other_runs": 10_000, "requests": 600, "cap": 30},
    "small": {"runs": 3_000, "others": 3, "other_runs": 300, "requests": 10, "cap": 4},
}
SLUG = "big-history"
CHUNK = 20_000
PER_TRANSACTION = 250_000
FAILED_EVERY = 12  # about 8% of runs failed
WARMUP = 20


def _warmup(n: int) -> int:
    return WARMUP if n >= 100 else 5  # smoke runs warm up less


def main(args: Any = None) -> list[str]:
    scale = getattr(args, "scale", "full")
    profile = getattr(args, "profile", False)
    options = SCALES[scale]
    with harness.workdir("history") as folder:
        db = f"{folder}/history.db"
        started = time.monotonic()
        key, positions = asyncio.run(_seed(db, options))
        seeded = time.monotonic() - started
        total = options["runs"] + options["others"] * options["other_runs"]
        lines = [
            f"history: job '{SLUG}' with {options['runs']:,} runs; {total:,} runs in the table "
            f"(seeded in {seeded:.0f} s)"
        ]
        mixes = _mixes(positions)
        n, cap = int(options["requests"]), float(options["cap"])
        with harness.server_process(db, folder) as server:
            server.wait_ready(timeout=120)
            prof_path = harness.profile_path("history")
            if profile:
                harness.start_profile(server, prof_path, duration=30, rate=250)
            load = harness.LoadMeter(*server.pids).start()
            cpu_before = harness.cpu_seconds(server.pid) or 0.0
            http = _time_http(server.url, key, mixes, n, cap)
            cpu_http = (harness.cpu_seconds(server.pid) or 0.0) - cpu_before
            noise_http = load.note()
            errors = server.errors_logged()
            if profile:
                harness.stop_profiles(server)
        load = harness.LoadMeter().start()
        asgi, service = asyncio.run(_time_in_process(db, key, mixes, n, cap))
        noise_local = load.note()
        lines += _report(mixes, http, asgi, service, n)
        sent = sum(len(samples) + _warmup(n) for samples in http.values())
        lines.append(
            f"  server CPU per HTTP request: {cpu_http / sent * 1e6:,.0f} µs ({sent} requests)"
        )
        lines.append(f"  noise: over HTTP: {noise_http}; in-process: {noise_local}")
        if errors:
            lines.append(f"  server log: {len(errors)} error lines, first: {errors[0][:200]}")
        if profile:
            from bench.profile import summarise

            lines.append(
                f"  profile of the server answering history requests (py-spy, {prof_path}):"
            )
            lines += summarise(prof_path)
    return lines


# ---------------------------------------------------------------- seeding


def _payload(i: int) -> dict[str, Any]:
    return {
        "request": {
            "method": "POST",
            "url": f"https://hooks.example.com/jobs/{SLUG}",
            "headers": {
                "Content-Type": "application/json",
                "X-Cronkeeper-Job": SLUG,
                "Authorization": "***",
                "traceparent": f"00-{i:032x}-{i:016x}-01",
            },
            "body": '{"report": "nightly"}',
        }
    }


async def _seed(
    db: str, options: dict[str, int]
) -> tuple[str, dict[str, list[tuple[datetime, Any]]]]:
    from cronkeeper.domain.ids import uuid7
    from cronkeeper.service.keys import bootstrap
    from cronkeeper.service.setup import open_context
    from cronkeeper.store import projects as project_store
    from cronkeeper.store.tables import jobs as jobs_table
    from cronkeeper.store.tables import runs as runs_table

    ctx = await open_context(db)
    key = await bootstrap(ctx)
    assert key is not None
    try:
        async with ctx.db.read() as conn:
            project = await project_store.get_project(conn, "default")
        assert project is not None
        now = harness.utc_now().replace(microsecond=0)
        template = harness.JobTemplate.of("@daily", "https://hooks.example.com/jobs/x")
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0)
        slugs = [SLUG] + [f"other-{i:02d}" for i in range(options["others"])]
        job_rows = [template.row(project.id, slug, tomorrow, now) for slug in slugs]
        async with ctx.db.write() as conn:
            await conn.execute(jobs_table.insert(), job_rows)

        def runs_of(job: dict[str, Any], count: int, step: float, offset: float) -> Any:
            start = now - timedelta(seconds=count * step + offset)
            for i in range(count):
                slot = start + timedelta(seconds=i * step)
                failed = i % FAILED_EVERY == 5
                yield {
                    "id": uuid7(slot),
                    "project_id": project.id,
                    "job_id": job["id"],
                    "source": "schedule",
                    "status": "failed" if failed else "succeeded",
                    "scheduled_for": slot,
                    "queue": "default",
                    "queued_at": slot,
                    "started_at": slot + timedelta(milliseconds=3),
                    "finished_at": slot + timedelta(milliseconds=180),
                    "duration_ms": 177,
                    "drift_ms": 3,
                    "attempts": 3 if failed else 1,
                    "max_attempts": 3,
                    "failure_reason": "http_5xx" if failed else None,
                    "error": "HTTP 503 Service Unavailable" if failed else None,
                    "payload": _payload(i),
                    "trace_id": f"{i:032x}",
                    "node": "bench:1:abcdef",
                    "during_outage": False,
                    "created_at": slot,
                    "ordered_at": slot,
                }

        streams = [runs_of(job_rows[0], options["runs"], 2.0, 60)]
        streams += [
            runs_of(job, options["other_runs"], 60.0, 30 + j) for j, job in enumerate(job_rows[1:])
        ]
        big_rows: list[tuple[datetime, Any]] = []
        failed_rows: list[tuple[datetime, Any]] = []
        done = 0
        for index, stream in enumerate(streams):
            batch_open = True
            while batch_open:
                async with ctx.db.write() as conn:
                    in_tx = 0
                    while in_tx < PER_TRANSACTION:
                        chunk = [row for _, row in zip(range(CHUNK), stream, strict=False)]
                        if not chunk:
                            batch_open = False
                            break
                        await conn.execute(runs_table.insert(), chunk)
                        in_tx += len(chunk)
                        done += len(chunk)
                        if index == 0:
                            big_rows += [(r["created_at"], r["id"]) for r in chunk[::997]]
                            failed_rows += [
                                (r["created_at"], r["id"]) for r in chunk if r["status"] == "failed"
                            ][::97]
        return key, {"all": big_rows, "failed": failed_rows}
    finally:
        await ctx.db.dispose()


# ---------------------------------------------------------------- requests


def _cursor(position: tuple[datetime, Any]) -> str:
    from cronkeeper.service.pagination import encode_cursor

    at, run_id = position
    return encode_cursor({"at": at.astimezone(UTC).isoformat(), "id": str(run_id)})


def _mixes(positions: dict[str, list[tuple[datetime, Any]]]) -> dict[str, list[dict[str, str]]]:
    """name -> list of query-parameter sets to cycle through."""
    rng = random.Random(7)
    deep = list(positions["all"][: int(len(positions["all"]) * 0.9)])
    deep_failed = positions["failed"][: int(len(positions["failed"]) * 0.9)]
    return {
        "first page": [{}],
        "deep page (cursor)": [
            {"cursor": _cursor(p)} for p in rng.sample(deep, min(200, len(deep)))
        ],
        "status=failed, first page": [{"status": "failed"}],
        "status=failed, deep (cursor)": [
            {"status": "failed", "cursor": _cursor(p)}
            for p in rng.sample(deep_failed, min(200, len(deep_failed)))
        ],
        "sort=scheduled_for, first page": [{"sort": "scheduled_for"}],
    }


PATH = f"/api/v1/projects/default/jobs/{SLUG}/runs"


def _check(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")


def _time_http(
    url: str, key: str, mixes: dict[str, list[dict[str, str]]], n: int, cap: float
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for name, params in mixes.items():
            samples = []
            until = time.monotonic() + cap
            for i in range(n + _warmup(n)):
                if time.monotonic() > until:
                    break
                started = time.perf_counter()
                response = client.get(PATH, params=params[i % len(params)])
                elapsed = (time.perf_counter() - started) * 1000
                _check(response)
                if i >= _warmup(n):
                    samples.append(elapsed)
            results[name] = samples
    return results


async def _time_in_process(
    db: str, key: str, mixes: dict[str, list[dict[str, str]]], n: int, cap: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    from cronkeeper.api.app import create_app
    from cronkeeper.service import runs as run_service
    from cronkeeper.service.keys import local_actor
    from cronkeeper.service.setup import open_context

    ctx = await open_context(db, migrate=False)
    asgi: dict[str, list[float]] = {}
    service: dict[str, list[float]] = {}
    try:
        app = create_app(ctx)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://b", headers=headers
        ) as c:
            for name, params in mixes.items():
                samples = []
                until = time.monotonic() + cap
                for i in range(n + _warmup(n)):
                    if time.monotonic() > until:
                        break
                    started = time.perf_counter()
                    response = await c.get(PATH, params=params[i % len(params)])
                    elapsed = (time.perf_counter() - started) * 1000
                    _check(response)
                    if i >= _warmup(n):
                        samples.append(elapsed)
                asgi[name] = samples
        actor = local_actor()
        for name, params in mixes.items():
            samples = []
            until = time.monotonic() + cap
            for i in range(n + _warmup(n)):
                if time.monotonic() > until:
                    break
                p = params[i % len(params)]
                query = run_service.RunQuery(
                    status=p.get("status"), sort=p.get("sort", "created_at"), cursor=p.get("cursor")
                )
                started = time.perf_counter()
                await run_service.list_runs(ctx, actor, "default", query, job_slug=SLUG)
                elapsed = (time.perf_counter() - started) * 1000
                if i >= _warmup(n):
                    samples.append(elapsed)
            service[name] = samples
    finally:
        await ctx.db.dispose()
    return asgi, service


def _report(
    mixes: dict[str, Any],
    http: dict[str, list[float]],
    asgi: dict[str, list[float]],
    service: dict[str, list[float]],
    n: int,
) -> list[str]:
    lines = [
        f"  {n} requests per mix and layer after {_warmup(n)} warm-up (fewer when a mix hits the "
        f"time cap: count shown); page of 50; target p99 ≤ 10 ms (HTTP)"
    ]
    for name in mixes:
        p99 = harness.percentile(http[name], 0.99)
        lines += [
            f"  {name}: ({len(http[name])}/{len(asgi[name])}/{len(service[name])} timed)",
            f"    HTTP (keep-alive httpx.Client → serve): {summary(http[name], 'ms', 2)} "
            f"[{verdict(p99 <= 10)}]",
            f"    in-process ASGI (httpx.ASGITransport): {summary(asgi[name], 'ms', 2)}",
            f"    service call only (runs.list_runs):    {summary(service[name], 'ms', 2)}",
        ]
    return lines

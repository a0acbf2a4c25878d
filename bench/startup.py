"""Start-up with 100,000 active jobs: time to `/readyz` and memory (DESIGN §6).

Seeds N active http jobs with mixed schedules and time zones (in bulk), then spawns
`cronkeeper serve` and measures the time from spawn to `/readyz` answering 200
(target ≤ 10 s) and the server's VmRSS after 20 s of running (target ≤ 300 MB).
Every schedule here fires on 5-minute boundaries of UTC; the run is placed so that
none falls inside the measurement (an idle fleet), and any runs fired are reported.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

from bench import harness
from bench.harness import verdict

SCALES = {"full": {"jobs": 100_000, "settle": 20.0}, "small": {"jobs": 2_000, "settle": 2.0}}
SCHEDULES = ("*/5 * * * *", "0 * * * *", "every 1h", "30 2 * * *", "every 15m", "@daily")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Asia/Kolkata")
QUIET = 45.0  # seconds with no 5-minute boundary needed for a clean measurement


def main(args: Any = None) -> list[str]:
    scale = getattr(args, "scale", "full")
    profile = getattr(args, "profile", False)
    n, settle = int(SCALES[scale]["jobs"]), float(SCALES[scale]["settle"])
    from cronkeeper.domain.jobs import JobSpec
    from cronkeeper.service.jobs import next_fire

    with harness.workdir("startup") as folder, harness.sink_process() as sink:
        db = f"{folder}/startup.db"
        kinds = list(itertools.product(SCHEDULES, ZONES))
        templates = [harness.JobTemplate.of(s, f"{sink.url}/hook", z) for s, z in kinds]

        def rows(project_id: Any) -> list[dict[str, Any]]:
            now = harness.utc_now()
            nexts = [next_fire(JobSpec.from_body(t.body), now) for t in templates]
            return [
                templates[i % len(templates)].row(
                    project_id,
                    f"job-{i:06d}",
                    nexts[i % len(templates)],
                    now,
                    f"{sink.url}/hook/{i}",
                )
                for i in range(n)
            ]

        started = time.monotonic()
        asyncio.run(harness.seed_jobs(db, rows))
        seeded = time.monotonic() - started
        size_mb = _file_mb(harness.sqlite_path(db))
        waited = _wait_for_quiet(settle + 15) if scale == "full" else 0.0
        lines = [
            f"startup: {n:,} active jobs, {len(SCHEDULES)} schedules × {len(ZONES)} zones "
            f"(seeded in {seeded:.1f} s; ledger {size_mb:.0f} MB"
            + (f"; waited {waited:.0f} s to stay clear of a 5-minute boundary)" if waited else ")")
        ]
        with harness.server_process(db, folder) as server:
            load = harness.LoadMeter(*server.pids, sink.process.pid).start()
            prof_path = harness.profile_path("startup")
            if profile:
                harness.start_profile(server, prof_path, duration=settle + 10)
            ready = server.wait_ready(timeout=120)
            if profile:
                harness.stop_profiles(server)
            rss_ready = harness.rss_mb(server.pid)
            cpu_ready = harness.cpu_seconds(server.pid)
            peak = rss_ready or 0.0
            deadline = server.spawned_at + settle
            while time.monotonic() < deadline:
                time.sleep(0.5)
                peak = max(peak, harness.rss_mb(server.pid) or 0.0)
            rss = harness.rss_mb(server.pid)
            helpers = harness.children(server.pid)  # the ping writer process
            helper_rss = sum(harness.rss_mb(pid) or 0.0 for pid in helpers)
            with harness.ledger(db) as conn:
                fired = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            cpu = harness.cpu_seconds(server.pid)
            noise = load.note()
            errors = server.errors_logged()
        ok_ready = ready is not None and ready <= 10
        total = None if rss is None else rss + helper_rss
        ok_rss = total is not None and total <= 300
        lines += [
            f"  spawn → /readyz 200: {ready if ready is not None else float('nan'):.2f} s "
            f"(target ≤ 10 s: {verdict(ok_ready)}); CPU by then {cpu_ready or 0:.1f} s",
            f"  RSS after {settle:.0f} s: {total or float('nan'):.0f} MB (target ≤ 300 MB: "
            f"{verdict(ok_rss)}): server {rss or float('nan'):.0f} MB + ping writer process "
            f"{helper_rss:.0f} MB; server at ready {rss_ready or float('nan'):.0f} MB, peak "
            f"{peak:.0f} MB; CPU {cpu or 0:.1f} s; runs fired meanwhile: {fired}",
        ]
        lines.append(f"  noise: {noise}")
        lines += _metrics_growth(n)
        if errors:
            lines.append(f"  server log: {len(errors)} error lines, first: {errors[0][:200]}")
        if profile:
            from bench.profile import summarise

            lines.append(f"  profile of the server from spawn to ready (py-spy, {prof_path}):")
            lines += summarise(prof_path)
    return lines


def _file_mb(path: str) -> float:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)) / 1024 / 1024


def _wait_for_quiet(span: float) -> float:
    """Sleep until the next `span` seconds contain no 5-minute boundary; returns the wait."""
    now = time.time()
    to_boundary = 300 - now % 300
    if to_boundary > span + 2:
        return 0.0
    wait = to_boundary + 2
    time.sleep(wait)
    return wait


def _metrics_growth(n: int) -> list[str]:
    """What the process's Prometheus metrics cost once each of N jobs has run once
    (in-process, on `cronkeeper.metrics.Metrics`, which keeps per-job label sets): the
    memory they hold (RSS growth of this process) and the time and size of one
    `/metrics` exposition."""
    import gc

    from cronkeeper.metrics import Metrics

    gc.collect()
    metrics = Metrics()
    before = harness.rss_mb(os.getpid()) or 0.0
    started = time.perf_counter()
    for i in range(n):
        metrics.run_finished("default", f"job-{i:06d}", "succeeded", 0.12, 0.004, time.time())
    record = time.perf_counter() - started
    held = (harness.rss_mb(os.getpid()) or 0.0) - before
    started = time.perf_counter()
    body = metrics.exposition()
    scrape = time.perf_counter() - started
    size = len(body)
    del body, metrics
    gc.collect()
    return [
        f"  once every job has run once (in-process, cronkeeper.metrics keeps per-job label "
        f"sets): +{held:,.0f} MB RSS; one /metrics exposition takes {scrape:.1f} s and is "
        f"{size / 1024 / 1024:,.0f} MB; recording costs {record / n * 1e6:.0f} µs per run"
    ]

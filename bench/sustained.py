"""Sustained: 1,000 HTTP jobs `every 1s` for 60 s, about 1,000 fires/s (DESIGN §6).

Seeds N jobs whose first slot is T0 (a whole second a few seconds after the server is
ready), runs the real server against the 204 sink (own process), and after
T0 + duration + settle reads the ledger for the slots in [T0, T0 + duration).

Figures: slots fired and runs completed per second, start drift = started_at − slot
(runs.drift_ms; target p99 ≤ 50 ms), delivery lateness at the sink, and per job the
slots missing from the ledger and the duplicates (ledger rows per slot, deliveries per
run), both expected 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench import harness
from bench.harness import summary, verdict

SCALES = {
    "full": {"jobs": 1000, "duration": 60, "lead": 8.0, "settle": 10.0},
    "small": {"jobs": 100, "duration": 2, "lead": 2.5, "settle": 1.0},
}
SCHEDULE = "every 1s"


def main(args: Any = None) -> list[str]:
    scale = getattr(args, "scale", "full")
    profile = getattr(args, "profile", False)
    options = SCALES[scale]
    n, duration = int(options["jobs"]), int(options["duration"])
    lead, settle = float(options["lead"]), float(options["settle"])
    with harness.workdir("sustained") as folder, harness.sink_process() as sink:
        db = f"{folder}/sustained.db"
        first = harness.whole_second_after(lead)
        end = first + timedelta(seconds=duration)
        template = harness.JobTemplate.of(SCHEDULE, f"{sink.url}/hook")

        def rows(project_id: Any) -> list[dict[str, Any]]:
            now = harness.utc_now()
            return [
                template.row(project_id, f"tick-{i:05d}", first, now, f"{sink.url}/hook/{i}")
                for i in range(n)
            ]

        asyncio.run(harness.seed_jobs(db, rows))
        lines = [
            f"sustained: {n:,} http jobs '{SCHEDULE}' for {duration} s "
            f"(slots {first:%H:%M:%S}–{end:%H:%M:%S} UTC)"
        ]
        with harness.server_process(db, folder) as server:
            ready = server.wait_ready(timeout=60)
            head = (first - harness.utc_now()).total_seconds()
            lines.append(
                f"  server ready in {ready or float('nan'):.2f} s; first slot "
                f"{head:.1f} s after ready"
            )
            harness.sleep_until(first)
            load = harness.LoadMeter(*server.pids, sink.process.pid).start()
            cpu0, sink_cpu0 = harness.cpu_seconds(server.pid), harness.cpu_seconds(sink.process.pid)
            prof_path = harness.profile_path("sustained")
            if profile:
                warm = min(10.0, duration / 4)
                time.sleep(warm)
                harness.start_profile(server, prof_path, duration=min(30.0, duration - warm))
            harness.sleep_until(end)
            cpu = (harness.cpu_seconds(server.pid) or 0) - (cpu0 or 0)
            sink_cpu = (harness.cpu_seconds(sink.process.pid) or 0) - (sink_cpu0 or 0)
            rss = harness.rss_mb(server.pid)
            noise = load.note()
            harness.sleep_until(end + timedelta(seconds=settle))
            result = _read(db, first, end, n, duration)
            deliveries = sink.stats(lateness="1", runs="1")
            gaps = harness.dispatch_gaps(
                db,
                deliveries["runs"],
                "scheduled_for >= ? AND scheduled_for < ?",
                (harness.stored(first), harness.stored(end)),
            )
            errors = server.errors_logged()
            if profile:
                harness.wait_profiles(server)
        lines += _report(n, duration, first, end, result, deliveries, cpu, sink_cpu, rss, errors)
        lines.append(
            f"  dispatch gap (sink arrival − ledger started_at, per run): {summary(gaps, 'ms', 0)}"
        )
        lines.append(f"  noise: {noise}")
        if profile:
            from bench.profile import summarise

            lines.append(f"  profile of the server in steady state (py-spy, {prof_path}):")
            lines += summarise(prof_path)
    return lines


def _read(db: str, first: Any, end: Any, n: int, duration: int) -> dict[str, Any]:
    lo, hi = harness.stored(first), harness.stored(end)
    window = "scheduled_for >= ? AND scheduled_for < ? AND source = 'schedule'"
    with harness.ledger(db) as conn:
        statuses = dict(
            conn.execute(
                f"SELECT status, count(*) FROM runs WHERE {window} GROUP BY status", (lo, hi)
            ).fetchall()
        )
        total, distinct = conn.execute(
            f"SELECT count(*), count(DISTINCT job_id || '@' || scheduled_for) FROM runs "
            f"WHERE {window}",
            (lo, hi),
        ).fetchone()
        per_job = dict(
            conn.execute(
                f"SELECT job_id, count(DISTINCT scheduled_for) FROM runs WHERE {window} "
                "GROUP BY job_id",
                (lo, hi),
            ).fetchall()
        )
        drifts = [
            r[0]
            for r in conn.execute(
                f"SELECT drift_ms FROM runs WHERE {window} AND drift_ms IS NOT NULL", (lo, hi)
            )
        ]
        finished_in_window = conn.execute(
            "SELECT count(*) FROM runs WHERE finished_at >= ? AND finished_at < ? "
            "AND source = 'schedule'",
            (lo, hi),
        ).fetchone()[0]
        attempts_per_run = Counter(
            r[0] for r in conn.execute(f"SELECT attempts FROM runs WHERE {window}", (lo, hi))
        )
    missing_per_job = [duration - per_job.get(job, 0) for job in per_job]
    missing_per_job += [duration] * (n - len(per_job))
    return {
        "statuses": statuses,
        "total": total,
        "distinct": distinct,
        "missing": sum(missing_per_job),
        "jobs_missing": sum(1 for m in missing_per_job if m > 0),
        "max_missing": max(missing_per_job) if missing_per_job else 0,
        "drifts": drifts,
        "finished_in_window": finished_in_window,
        "attempts": dict(attempts_per_run),
    }


def _report(
    n: int,
    duration: int,
    first: Any,
    end: Any,
    r: dict[str, Any],
    deliveries: dict[str, Any],
    cpu: float,
    sink_cpu: float,
    rss: float | None,
    errors: list[str],
) -> list[str]:
    expected = n * duration
    lo, hi = first.timestamp(), end.timestamp()
    lateness = [late * 1000 for slot, late in deliveries["lateness"] if lo <= slot < hi]
    drifts = r["drifts"]
    p99 = harness.percentile(drifts, 0.99) if drifts else float("inf")
    succeeded = r["statuses"].get("succeeded", 0)
    duplicates = r["total"] - r["distinct"]
    lines = [
        f"  slots: {expected:,} expected, {r['total']:,} in the ledger "
        f"({r['total'] / duration:,.0f} fired/s); statuses: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(r["statuses"].items())),
        f"  completed: {succeeded:,} succeeded ({succeeded / duration:,.0f}/s of slots in the "
        f"window); {r['finished_in_window'] / duration:,.0f} runs/s finished during the window",
        f"  start drift (started_at − slot, ledger): {summary(drifts, 'ms', 0)} "
        f"(target p99 ≤ 50 ms: {verdict(p99 <= 50)})",
        f"  delivery lateness (sink arrival − slot): {summary(lateness, 'ms', 0)}",
        f"  missing slots: {r['missing']:,} ({r['jobs_missing']:,} jobs affected, at most "
        f"{r['max_missing']} per job); duplicate slots in the ledger: {duplicates}; duplicate "
        f"deliveries at the sink: {deliveries['duplicate_deliveries']} "
        f"(expected 0/0: {verdict(r['missing'] == 0 and duplicates == 0)})",
        f"  attempts per run: {r['attempts']}; server CPU {cpu:.0f} s of {duration} s "
        f"({cpu / duration:.0%} of a core), sink CPU {sink_cpu / duration:.0%}; "
        f"server RSS {rss or 0:.0f} MB",
    ]
    if errors:
        lines.append(f"  server log: {len(errors)} error lines, first: {errors[0][:200]}")
    return lines

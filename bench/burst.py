"""Burst: 10,000 HTTP jobs all due in the same second (DESIGN §6).

Seeds a fresh SQLite ledger with N http jobs whose 6-field cron fires once at second T
(UTC, about 15 s after the server is spawned), starts the real `cronkeeper serve`
against a 204 sink running in its own process, then reads the ledger until every run
is final or the budget runs out.

Figures: runs fired (target: all), start drift = started_at − slot (claim time, from
runs.drift_ms; target p99 ≤ 1 s), delivery lateness at the sink (request arrival − slot),
and seconds from T until every run was created / started / recorded final.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from bench import harness
from bench.harness import summary, verdict

SCALES = {
    "full": {"jobs": 10_000, "lead": 17.0, "budget": 180.0},
    "small": {"jobs": 300, "lead": 4.0, "budget": 20.0},
}


def main(args: Any = None) -> list[str]:
    scale = getattr(args, "scale", "full")
    profile = getattr(args, "profile", False)
    options = SCALES[scale]
    n, lead, budget = int(options["jobs"]), float(options["lead"]), float(options["budget"])
    with harness.workdir("burst") as folder, harness.sink_process() as sink:
        db = f"{folder}/burst.db"
        slot = harness.whole_second_after(lead)
        cron = f"{slot.second} {slot.minute} {slot.hour} {slot.day} {slot.month} *"
        template = harness.JobTemplate.of(cron, f"{sink.url}/hook")

        def rows(project_id: Any) -> list[dict[str, Any]]:
            now = harness.utc_now()
            return [
                template.row(project_id, f"burst-{i:05d}", slot, now, f"{sink.url}/hook/{i}")
                for i in range(n)
            ]

        seed_started = time.monotonic()
        asyncio.run(harness.seed_jobs(db, rows))
        seed_seconds = time.monotonic() - seed_started
        lines = [
            f"burst: {n:,} http jobs due at {slot:%H:%M:%S} UTC (seeded in {seed_seconds:.1f} s)"
        ]
        with harness.server_process(db, folder) as server:
            ready = server.wait_ready(timeout=60)
            head = (slot - harness.utc_now()).total_seconds()
            lines.append(
                f"  server ready in {ready:.2f} s; slot is {head:.1f} s after ready"
                if ready is not None
                else "  server did not become ready in 60 s"
            )
            if head < 2:
                lines.append("  WARNING: the server was ready less than 2 s before the slot")
            rss_before = harness.rss_mb(server.pid) or 0.0
            cpu_before = harness.cpu_seconds(server.pid) or 0.0
            load = harness.LoadMeter(*server.pids, sink.process.pid).start()
            prof_path = harness.profile_path("burst")
            if profile:
                harness.sleep_until(slot - timedelta(seconds=0.5))
                harness.start_profile(server, prof_path, duration=min(budget, 90))
            progress, finished_at = _watch(db, slot, n, budget)
            cpu_used = (harness.cpu_seconds(server.pid) or 0.0) - cpu_before
            noise = load.note()
            result = _read(db, slot)
            deliveries = sink.stats(lateness="1", runs="1")
            gaps = harness.dispatch_gaps(
                db, deliveries["runs"], "scheduled_for = ?", (harness.stored(slot),)
            )
            if profile:
                harness.stop_profiles(server)
            rss_after = harness.rss_mb(server.pid) or 0.0
            scrape = harness.scrape_metrics(server)
            errors = server.errors_logged()
        lines += _report(n, slot, result, deliveries, progress, finished_at, cpu_used, errors)
        lines.append(
            f"  dispatch gap (sink arrival − ledger started_at, per run): {summary(gaps, 'ms', 0)}"
        )
        lines.append(
            f"  server RSS {rss_before:.0f} MB before the slot, {rss_after:.0f} MB after "
            f"{n:,} jobs ran once; {scrape}"
        )
        lines.append(f"  noise: {noise}")
        if profile:
            from bench.profile import summarise

            lines.append(f"  profile of the server during the burst (py-spy, {prof_path}):")
            lines += summarise(prof_path)
    return lines


def _watch(db: str, slot: Any, n: int, budget: float) -> tuple[list[str], float | None]:
    """Poll the ledger once a second until all N runs are final (or the budget is spent)."""
    harness.sleep_until(slot)
    started = time.monotonic()
    progress: list[str] = []
    marks = {5.0, 10.0, 30.0, 60.0}
    while True:
        elapsed = time.monotonic() - started
        with harness.ledger(db) as conn:
            created, final = conn.execute(
                "SELECT count(*), sum(finished_at IS NOT NULL) FROM runs WHERE source='schedule'"
            ).fetchone()
        final = final or 0
        for mark in sorted(marks):
            if elapsed >= mark:
                progress.append(f"T+{mark:.0f}s: {created:,} fired, {final:,} final")
                marks.discard(mark)
        if final >= n:
            return progress, elapsed
        if elapsed > budget:
            progress.append(f"gave up at T+{elapsed:.0f}s: {created:,} fired, {final:,} final")
            return progress, None
        time.sleep(1.0)


def _read(db: str, slot: Any) -> dict[str, Any]:
    at = harness.stored(slot)
    with harness.ledger(db) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM runs WHERE scheduled_for = ? GROUP BY status", (at,)
            ).fetchall()
        )
        drifts = [
            row[0]
            for row in conn.execute(
                "SELECT drift_ms FROM runs WHERE scheduled_for = ? AND drift_ms IS NOT NULL", (at,)
            )
        ]
        if not drifts:  # drift_ms is written when the run finishes; fall back to started_at
            drifts = [
                (harness.parse_stored(row[0]) - slot).total_seconds() * 1000
                for row in conn.execute(
                    "SELECT started_at FROM runs "
                    "WHERE scheduled_for = ? AND started_at IS NOT NULL",
                    (at,),
                )
            ]
        last_created, last_started, last_finished = conn.execute(
            "SELECT max(created_at), max(started_at), max(finished_at) FROM runs "
            "WHERE scheduled_for = ?",
            (at,),
        ).fetchone()
        attempts = conn.execute(
            "SELECT count(*) FROM attempts JOIN runs ON runs.id = attempts.run_id "
            "WHERE runs.scheduled_for = ?",
            (at,),
        ).fetchone()[0]
    after = {
        name: (harness.parse_stored(value) - slot).total_seconds() if value else None
        for name, value in (
            ("created", last_created),
            ("started", last_started),
            ("finished", last_finished),
        )
    }
    return {"statuses": statuses, "drifts": drifts, "after": after, "attempts": attempts}


def _report(
    n: int,
    slot: Any,
    result: dict[str, Any],
    deliveries: dict[str, Any],
    progress: list[str],
    finished: float | None,
    cpu: float,
    errors: list[str],
) -> list[str]:
    statuses = result["statuses"]
    fired = sum(statuses.values())
    drifts = result["drifts"]
    p99 = harness.percentile(drifts, 0.99) if drifts else float("inf")
    after = result["after"]
    lateness = [late * 1000 for _, late in deliveries["lateness"]]

    def seconds(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f} s"

    all_final = finished is not None
    lines = [
        f"  fired: {fired:,} of {n:,} ({verdict(fired == n)}); statuses: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items())),
        f"  start drift (started_at − slot, ledger): {summary(drifts, 'ms', 0)} "
        f"(target p99 ≤ 1000 ms: {verdict(p99 <= 1000)})",
        f"  delivery lateness (sink arrival − slot): {summary(lateness, 'ms', 0)}; "
        f"{deliveries['requests']:,} requests, {deliveries['duplicate_deliveries']} duplicate",
        f"  after T: last run created {seconds(after['created'])}, last started "
        f"{seconds(after['started'])}, all recorded final "
        f"{seconds(after['finished']) if all_final else 'NOT within budget'}",
        f"  attempts recorded: {result['attempts']:,}; server CPU during the burst: {cpu:.1f} s",
        "  progress: " + "; ".join(progress),
    ]
    if errors:
        lines.append(f"  server log: {len(errors)} error lines, first: {errors[0][:200]}")
    return lines

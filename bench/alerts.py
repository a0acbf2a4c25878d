"""Alert latency: 1,000 heartbeat jobs go down at once (DESIGN §6, issue 5 "Done means" b).

Seeds a fresh SQLite ledger with N heartbeat jobs (`every 30s`, `start_grace` 5 s,
`failure_threshold` 1, flapping off), spawns the real `cronkeeper serve` and a webhook
receiver in its own process (`bench/sink.py`: it keeps each alert's arrival time and
its JSON body's `event`, `job.slug`, `run.id`), creates the webhook channels through the
API, pings every job once in a tight burst (`/ping/<uuid>`: first success, the job is
`up`), then stops pinging. Each job's deadline (its ping + period + grace) passes within
about a second of the others': the monitor records a `missed` run, flips the job
`late → down` (the flip's `created_at` is the exact deadline) and queues an alert, and
the notifier posts one webhook per job.

Figures: alerts delivered (target: all N, one each, no duplicates), latency = receiver
arrival − the job's deadline (target p99 ≤ 2 s), first deadline → last delivery, the
stages from the ledger (deadline → missed run written, alert queued → taken by the
notifier, → notification recorded sent), server CPU, and the noise line.

Channels: every job alerts the one default channel (the brief's setup). The notifier
sends at most 30 messages per minute per channel (docs/alerts.md, `SendWindow`); alerts
beyond that go out as digests, one message carrying many alerts, which the receiver
counts once per alert. `BENCH_ALERT_CHANNELS=40` spreads the jobs over 40 channels (all
pointing at the receiver, `/alert/<channel>`; channel 0 is the project default), so that
every alert is its own message.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import urllib.request
import uuid
from datetime import timedelta
from typing import Any

from bench import harness
from bench.harness import percentile, summary, verdict
from cronkeeper.service.schemas import parse_job_body

SCALES = {
    "full": {"jobs": 1_000, "period": 30, "grace": 5.0, "budget": 120.0},
    "small": {"jobs": 50, "period": 10, "grace": 3.0, "budget": 30.0},
}
TARGET_P99_MS = 2000.0


def main(args: Any = None) -> list[str]:
    scale = getattr(args, "scale", "full")
    profile = getattr(args, "profile", False)
    options = SCALES[scale]
    n, period = int(options["jobs"]), int(options["period"])
    grace, budget = float(options["grace"]), float(options["budget"])
    n_channels = int(os.environ.get("BENCH_ALERT_CHANNELS") or 1)
    names = [f"bench-{i:02d}" for i in range(n_channels)]
    with harness.workdir("alerts") as folder, harness.sink_process() as sink:
        db = f"{folder}/alerts.db"
        ping_uuids = [uuid.uuid4() for _ in range(n)]
        slugs = [f"hb-{i:05d}" for i in range(n)]

        def rows(project_id: Any) -> list[dict[str, Any]]:
            now = harness.utc_now()
            made = []
            for i in range(n):
                row = _template(period, grace, names[i % n_channels]).row(
                    project_id, slugs[i], None, now
                )
                row["ping_uuid"] = ping_uuids[i]
                made.append(row)
            return made

        seeded = asyncio.run(harness.seed_jobs(db, rows))
        lines = [
            f"alerts: {n:,} heartbeat jobs `every {period}s`, start_grace {grace:.0f} s, "
            f"failure_threshold 1, on {n_channels} webhook channel(s) "
            f"({math.ceil(n / n_channels)} jobs each; the notifier sends ≤ 30/min per channel)"
        ]
        with harness.server_process(db, folder) as server:
            ready = server.wait_ready(timeout=60)
            if ready is None:
                return [*lines, "  server did not become ready in 60 s", server.log_tail()]
            for i, name in enumerate(names):
                _create_channel(server.url, seeded.key, name, f"{sink.url}/alert/{name}", i == 0)
            burst = asyncio.run(_ping_all(server.url, ping_uuids))
            lines.append(
                f"  server ready in {ready:.2f} s; {n:,} pings in {burst['seconds']:.2f} s "
                f"({burst['ok']:,} answered 200)"
            )
            if burst["ok"] < n:  # the ping path is broken: nothing to measure
                return [*lines, f"  pings failed; server log:\n{server.log_tail(10)}"]
            first_deadline = burst["started"] + timedelta(seconds=period + grace)
            harness.sleep_until(first_deadline - timedelta(seconds=2))
            load = harness.LoadMeter(*server.pids, sink.process.pid).start()
            cpu_before = harness.cpu_seconds(server.pid) or 0.0
            prof_path = harness.profile_path("alerts")
            if profile:
                harness.sleep_until(first_deadline - timedelta(seconds=0.5))
                harness.start_profile(server, prof_path, duration=budget, rate=400)
            done_after = _wait(
                sink, n, burst["finished"] + timedelta(seconds=period + grace), budget
            )
            cpu_used = (harness.cpu_seconds(server.pid) or 0.0) - cpu_before
            if done_after is not None:  # the last deliveries' records are being committed
                time.sleep(0.5)
            noise = load.note()
            if profile:
                harness.stop_profiles(server)
            arrivals = sink.stats(alerts="1")["alerts"]
            result = _read(db)
            errors = server.errors_logged()
        lines += _report(n, arrivals, result, done_after, budget, cpu_used, errors)
        lines.append(f"  noise: {noise}")
        if profile:
            from bench.profile import summarise

            lines.append(f"  profile of the server from the deadlines on (py-spy, {prof_path}):")
            lines += summarise(prof_path)
    return lines


def _template(period: int, grace: float, channel: str) -> harness.JobTemplate:
    body = {
        "slug": "template",
        "kind": "heartbeat",
        "schedule": f"every {period}s",
        "start_grace": grace,
        "alerts": {"failure_threshold": 1, "flap_threshold": None, "channels": [channel]},
    }
    return harness.JobTemplate(parse_job_body(body).to_body())


def _create_channel(url: str, key: str, name: str, target: str, default: bool) -> None:
    body = {"name": name, "kind": "webhook", "config": {"url": target}, "default": default}
    request = urllib.request.Request(
        f"{url}/api/v1/projects/default/channels",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201, response.read()


async def _ping_all(url: str, ping_uuids: list[uuid.UUID]) -> dict[str, Any]:
    """One success ping per job, 32 at a time over keep-alive connections."""
    import aiohttp

    started = harness.utc_now()
    t0 = time.monotonic()
    ok = 0
    queue = list(ping_uuids)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:

        async def client() -> None:
            nonlocal ok
            while queue:
                ping = queue.pop()
                async with session.get(f"{url}/ping/{ping}") as response:
                    await response.read()
                    ok += response.status == 200

        await asyncio.gather(*(client() for _ in range(32)))
    return {
        "started": started,
        "finished": harness.utc_now(),
        "seconds": time.monotonic() - t0,
        "ok": ok,
    }


def _wait(sink: harness.Sink, n: int, last_deadline: Any, budget: float) -> float | None:
    """Poll the receiver until N alerts arrived; seconds after the last deadline, or None."""
    harness.sleep_until(last_deadline)
    started = time.monotonic()
    while True:
        if len(sink.stats(alerts="1")["alerts"]) >= n:  # digests count once per alert
            return time.monotonic() - started
        if time.monotonic() - started > budget:
            return None
        time.sleep(0.2)


def _read(db: str) -> dict[str, Any]:
    """From the ledger, per job slug: the down flip's time (the deadline) and its stages."""
    with harness.ledger(db) as conn:
        flips = conn.execute(
            "SELECT j.slug, f.old_state, f.created_at, f.suppressed_reason FROM flips f "
            "JOIN jobs j ON j.id = f.job_id WHERE f.new_state = 'down'"
        ).fetchall()
        missed = conn.execute(
            "SELECT finished_at, created_at FROM runs WHERE status = 'missed'"
        ).fetchall()
        alerts = conn.execute(
            "SELECT deliver_at, processed_at, outcome FROM alerts WHERE event = 'down'"
        ).fetchall()
        sends = conn.execute(
            "SELECT a.processed_at, n.sent_at, n.status, n.attempts, n.latency_ms "
            "FROM notifications n JOIN alerts a ON a.id = n.alert_id"
        ).fetchall()
        states = dict(
            conn.execute("SELECT monitor_state, count(*) FROM jobs GROUP BY monitor_state")
        )

    def ms(later: str | None, earlier: str | None) -> float | None:
        a, b = harness.parse_stored(later), harness.parse_stored(earlier)
        return None if a is None or b is None else (a - b).total_seconds() * 1000

    def present(values: list[float | None]) -> list[float]:
        return [v for v in values if v is not None]

    return {
        "deadlines": {slug: harness.parse_stored(at) for slug, _, at, _ in flips},
        "flips_from": sorted({old for _, old, _, _ in flips}),
        "suppressed": sum(1 for *_, reason in flips if reason),
        "detect": present([ms(created, deadline) for deadline, created in missed]),
        "pickup": present([ms(processed, deliver) for deliver, processed, _ in alerts]),
        "outcomes": sorted({outcome or "pending" for *_, outcome in alerts}),
        "send": present([ms(sent, processed) for processed, sent, *_ in sends]),
        "notifications": {status for _, _, status, _, _ in sends},
        "attempts": max((attempts for *_, attempts, _ in sends), default=0),
        "request_ms": [latency for *_, latency in sends if latency is not None],
        "states": states,
    }


def _report(
    n: int,
    arrivals: list[list[Any]],
    result: dict[str, Any],
    done_after: float | None,
    budget: float,
    cpu: float,
    errors: list[str],
) -> list[str]:
    deadlines = result["deadlines"]
    first: dict[str, float] = {}
    duplicates = 0
    for at, slug, event, _run, _path in sorted(arrivals, key=lambda a: a[0]):
        if event != "down":
            continue
        if slug in first:
            duplicates += 1
        else:
            first[slug] = at
    latencies = [
        (at - deadlines[slug].timestamp()) * 1000
        for slug, at in first.items()
        if deadlines.get(slug) is not None
    ]
    p99 = percentile(latencies, 0.99) if latencies else math.inf
    delivered = len(first)
    lines = [
        f"  delivered: {delivered:,} of {n:,} jobs' down alerts ({verdict(delivered == n)}); "
        f"{len(arrivals):,} alerts received (a digest counts once per alert it carries), "
        f"{duplicates} duplicate; "
        f"{len(deadlines):,} down flips (from {', '.join(result['flips_from']) or '—'}; "
        f"{result['suppressed']} suppressed); job states now: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(result["states"].items())),
        f"  latency (receiver arrival − deadline): {summary(latencies, 'ms', 0)} "
        f"(target p99 ≤ {TARGET_P99_MS:,.0f} ms: "
        f"{verdict(p99 <= TARGET_P99_MS and delivered == n)})",
    ]
    if deadlines and first:
        spread = max(deadlines.values()) - min(deadlines.values())  # type: ignore[type-var]
        last = max(first.values()) - min(d.timestamp() for d in deadlines.values() if d)
        lines.append(
            f"  deadlines spread over {spread.total_seconds():.2f} s; first deadline → last "
            f"delivery {last:.2f} s"
            + ("" if done_after is not None else f" (NOT all within {budget:.0f} s)")
        )
    lines += [
        "  stages (ledger): deadline → missed run written "
        f"{summary(result['detect'], 'ms', 0)}; alert due → taken by the notifier "
        f"{summary(result['pickup'], 'ms', 0)}; taken → notification recorded sent "
        f"{summary(result['send'], 'ms', 0)}; webhook request itself "
        f"{summary(result['request_ms'], 'ms', 0)}",
        f"  alert outcomes: {', '.join(result['outcomes']) or '—'}; notification statuses: "
        f"{', '.join(sorted(result['notifications'])) or '—'} (most attempts: "
        f"{result['attempts']}); server CPU from the deadlines until the last delivery: "
        f"{cpu:.1f} s",
    ]
    if errors:
        lines.append(f"  server log: {len(errors)} error lines, first: {errors[0][:200]}")
    return lines

"""HTTP start cost: N HTTP runs due at the same instant, started as the worker starts them.

`python -m bench.http_start [--runs 1000 10000] [--repeat 3] [--gc default] [--tracing]
[--profile FILE] [--steady SECONDS]`

In-process, against the 204 sink (`bench/sink.py`) in its own process: N claimed runs of
N distinct jobs (each job's spec freshly parsed, as the burst's 10,000 jobs each run
once) wait in N tasks for the same instant T; then each does what `Worker._execute`
does on its start path (clock reading, `Tracing.attempt`, `HttpExecutor.execute`).
The start drift of a run is when its task began that path, minus T: the burst's
`started_at − slot` without the database. Because all N tasks wake in one event-loop
iteration, the start drift of the last one is the event-loop CPU of the N start paths
before it (up to the first await that suspends).

Figures per round: start CPU per run (event-loop thread CPU between the first and the
last task's start, / N: robust on a shared machine), total CPU per run (T until every
outcome is back), start drift p50 / p99 / max, and the time from T until the sink had
every request. By default the garbage collector is set up as `cronkeeper serve` sets it
(`server._settle_heap`: frozen heap, young threshold 50,000) on the event loop it picks
(uvloop where installed; `--loop asyncio` for asyncio's); `--gc default` keeps
CPython's defaults. `--wake timers` gives each run its own timer (the worker did before
it shared one sleep per start moment). `--steady S` then runs 1,000 jobs once a second
for S seconds, each second's starts spread evenly (the `sustained` load, every cache
warm): CPU per run and start lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from opentelemetry.sdk.trace import SpanProcessor

from bench import harness
from bench.harness import percentile
from cronkeeper import __version__, testing
from cronkeeper.domain.jobs import JobKind, JobSpec
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.executors.http import HttpExecutor
from cronkeeper.runtime.tracing import Tracing, provider_for
from cronkeeper.server import _loop_factory
from cronkeeper.service.execution import ClaimedRun

T = TypeVar("T")
USER_AGENT = f"Cronkeeper/{__version__} (cron runtime; +https://github.com/cronkeeper)"
POLICY = SsrfPolicy.from_settings_values("127.0.0.1/32", "", "")
#: Seconds between building the runs and T (the runs wait in their tasks meanwhile). T is
#: read from time.monotonic(): uvloop's loop.time() is as of the loop iteration's start.
LEAD = 1.0
WARM_UP = 300


@dataclass
class Round:
    runs: int
    start_cpu_us: float  # event-loop CPU per run between the first and the last start
    total_cpu_us: float  # event-loop CPU per run from T until every outcome is back
    drifts_ms: list[float]
    arrived_s: float  # T until the sink had every request
    failures: Counter[str]  # failure reason -> runs

    def line(self) -> str:
        return (
            f"  {self.runs:>6,} runs: start CPU {self.start_cpu_us:6.1f} µs/run, "
            f"total CPU {self.total_cpu_us:6.1f} µs/run; start drift "
            f"min {min(self.drifts_ms):4.0f} ms, p50 {percentile(self.drifts_ms, 0.5):6.0f} ms, "
            f"p99 {percentile(self.drifts_ms, 0.99):6.0f} ms, "
            f"max {max(self.drifts_ms):6.0f} ms; all arrived at the sink "
            f"{self.arrived_s:5.2f} s after T; {self.runs - self.failures.total():,} succeeded"
            + "".join(f", {count:,} {reason}" for reason, count in self.failures.items())
        )


def claimed_run(url: str, slot: datetime, now: datetime) -> ClaimedRun:
    """A run of a job of its own, claimed ahead of its slot (as the worker holds it)."""
    body = harness.job_body(f"job-{secrets.token_hex(6)}", "* * * * *", url)
    spec = JobSpec.from_body(
        body | {"target": {"method": "GET", "url": url, "headers": {}, "body": None}}
    )
    assert spec.kind is JobKind.HTTP
    return testing.claimed_run(spec, slot, now, node="bench")


async def start_at(
    at: float,
    claimed: ClaimedRun,
    executor: HttpExecutor,
    tracing: Tracing,
    shared: asyncio.Event | None = None,
) -> tuple[float, float, str]:
    """Wait for monotonic time `at` (or for `shared`, set then: the worker's one sleep for all
    runs due at one moment), then start the run as `Worker._execute` does; returns the
    start's perf_counter and thread CPU readings and the failure reason ("" on success)."""
    prepare = getattr(executor, "prepare", None)  # absent before 2026-11-23: A/B runs
    if prepare is not None and claimed.spec.target is not None:
        prepare(claimed.spec.target)  # Worker._prepare, when the run is claimed
    if shared is not None:
        await shared.wait()
    else:
        await asyncio.sleep(at - time.monotonic())
    started, cpu = time.perf_counter(), time.thread_time()
    datetime.now(UTC)  # the worker's clock reading (`started`)
    with tracing.attempt(claimed) as attempt:
        outcome = await executor.execute(attempt.request)
        attempt.ended(outcome)
    return started, cpu, outcome.failure_reason.value if outcome.failure_reason else ""


async def measure(
    sink: harness.Sink, n: int, tracing: Tracing, profile: str | None, wake: str
) -> Round:
    async with HttpExecutor(POLICY, user_agent=USER_AGENT) as executor:
        now = datetime.now(UTC)
        warm = [claimed_run(f"{sink.url}/warm/{i}", now, now) for i in range(WARM_UP)]
        await asyncio.gather(*(start_at(time.monotonic(), c, executor, tracing) for c in warm))
        slot = now + timedelta(seconds=LEAD)
        runs = [claimed_run(f"{sink.url}/hook/{i}", slot, now) for i in range(n)]
        at = time.monotonic() + LEAD
        shared = asyncio.Event() if wake == "shared" else None
        tasks = [asyncio.create_task(start_at(at, c, executor, tracing, shared)) for c in runs]
        del runs
        # Let the tasks take their first step (the prepare) before sleeping: uvloop starts
        # a timer as of the loop's time before the next iteration's callbacks, so a sleep
        # begun now would end late by as long as those 10,000 first steps take.
        await asyncio.sleep(0)
        await asyncio.sleep(max(0.0, at - time.monotonic() - 0.05))
        profiler = cProfile.Profile() if profile else None
        t_wall = time.time() + (at - time.monotonic())
        t_perf = time.perf_counter() + (at - time.monotonic())
        cpu_before = time.thread_time()
        if profiler:
            profiler.enable()
        if shared is not None:  # the worker's waker for moment T
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            shared.set()
        results = await asyncio.gather(*tasks)
        cpu_total = time.thread_time() - cpu_before
        if profiler and profile:
            profiler.disable()
            profiler.dump_stats(profile)
    starts = [cpu for _, cpu, _ in results]
    stats = sink.stats(arrivals="1", since=f"{t_wall:.6f}")
    arrivals = stats["arrivals"]
    return Round(
        runs=n,
        start_cpu_us=(max(starts) - min(starts)) / max(1, n - 1) * 1e6,
        total_cpu_us=cpu_total / n * 1e6,
        drifts_ms=[(started - t_perf) * 1000 for started, _, _ in results],
        arrived_s=(max(arrivals) - t_wall) if len(arrivals) >= n else float("nan"),
        failures=Counter(reason for _, _, reason in results if reason),
    )


async def measure_steady(sink: harness.Sink, jobs: int, seconds: int, tracing: Tracing) -> str:
    """`jobs` jobs each run once a second for `seconds` s, starts spread evenly over each
    second (the sustained scenario's load, caches warm): CPU per run, start lateness."""
    async with HttpExecutor(POLICY, user_agent=USER_AGENT) as executor:
        now = datetime.now(UTC)
        specs = [claimed_run(f"{sink.url}/hook/{i}", now, now) for i in range(jobs)]
        await asyncio.gather(*(start_at(time.monotonic(), c, executor, tracing) for c in specs))
        at = time.monotonic() + LEAD
        tasks = [
            asyncio.create_task(start_at(at + second + i / jobs, rerun(c), executor, tracing))
            for second in range(seconds)
            for i, c in enumerate(specs)
        ]
        cpu_before = time.thread_time()
        results = await asyncio.gather(*tasks)
        cpu = time.thread_time() - cpu_before
    t_perf = time.perf_counter() + (at - time.monotonic())
    late = [
        (started - t_perf - (index // jobs) - (index % jobs) / jobs) * 1000
        for index, (started, _, _) in enumerate(results)
    ]
    return (
        f"  steady {jobs:,} runs/s for {seconds} s: total CPU {cpu / len(results) * 1e6:6.1f} "
        f"µs/run; start lateness p50 {percentile(late, 0.5):5.1f} ms, "
        f"p99 {percentile(late, 0.99):5.1f} ms; "
        f"{sum(not reason for _, _, reason in results):,} of {len(results):,} succeeded"
    )


def rerun(claimed: ClaimedRun) -> ClaimedRun:
    """The next run of the same job (same spec object, as the spec cache hands it out)."""
    return replace(claimed, run=replace(claimed.run, id=uuid.uuid4()))


def settle_heap_as_the_server_does() -> None:
    """`cronkeeper.server._settle_heap`: frozen start-up heap, young threshold 50,000."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(50_000, middle, old)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_start", description=__doc__)
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gc", choices=("server", "default"), default="server")
    parser.add_argument(
        "--tracing", action="store_true", help="spans recorded (dropped by a no-op processor)"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the last round into FILE")
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the event loop, as `serve` picks it (auto: uvloop where installed)",
    )
    parser.add_argument(
        "--wake",
        choices=("shared", "timers"),
        default="shared",
        help="runs due at T wait for one sleep (the worker since 2026-11-23) or a timer each",
    )
    parser.add_argument(
        "--steady",
        type=int,
        default=0,
        metavar="SECONDS",
        help="then 1,000 jobs once a second for SECONDS s (the sustained load), per round",
    )
    args = parser.parse_args(argv)
    tracing = Tracing(provider_for(None, _Discard()) if args.tracing else None)
    print(
        f"{harness_machine()}; gc: {args.gc}; tracing: {'on' if args.tracing else 'off'}; "
        f"wake: {args.wake}; loop: {'uvloop' if _loop_factory(args.loop) else 'asyncio'}"
    )
    with harness.sink_process() as sink:
        if args.gc == "server":
            settle_heap_as_the_server_does()
        rounds = [(n, i) for n in args.runs for i in range(args.repeat)]
        for index, (n, _) in enumerate(rounds):
            last = index == len(rounds) - 1
            profile = args.profile if last else None
            result = run(measure(sink, n, tracing, profile, args.wake), args.loop)
            print(result.line(), flush=True)
            gc.collect()
        for _ in range(args.repeat if args.steady else 0):
            print(run(measure_steady(sink, 1000, args.steady, tracing), args.loop), flush=True)
            gc.collect()
    if args.profile:
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """`asyncio.run` on the event loop `serve` would use (`server._loop_factory`)."""
    with asyncio.Runner(loop_factory=_loop_factory(loop)) as runner:
        return runner.run(main)


def harness_machine() -> str:
    from bench.machine import describe, revision

    return f"{describe()}; {revision()}"


class _Discard(SpanProcessor):
    """A span processor that drops every span (the cost of recording, not of exporting)."""


if __name__ == "__main__":
    main()

"""Shared pieces of the runtime benchmarks: seeding a ledger in bulk, the sink process,
the real `cronkeeper serve` subprocess, reading the ledger, percentiles, profiling.

The scenarios talk to the server only as a user would (HTTP, the ledger file); they
seed the ledger in-process before the server starts, through the store's tables.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronkeeper.service.context import Context
from cronkeeper.service.keys import bootstrap
from cronkeeper.service.schemas import parse_job_body
from cronkeeper.service.setup import open_context
from cronkeeper.store import projects as project_store
from cronkeeper.store.tables import jobs as jobs_table

VENV_BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- numbers


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (NaN for no samples)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary(samples: Sequence[float], unit: str = "ms", digits: int = 1) -> str:
    """`p50 …, p99 …, max …` of the samples."""
    if not samples:
        return "no samples"
    return (
        f"p50 {percentile(samples, 0.5):,.{digits}f} {unit}, "
        f"p99 {percentile(samples, 0.99):,.{digits}f} {unit}, "
        f"max {max(samples):,.{digits}f} {unit}"
    )


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_http(url: str, timeout: float, every: float = 0.02) -> float | None:
    """Poll `url` until it answers 200; returns the monotonic time it did, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, _ = http_get(url, timeout=1.0)
            if status == 200:
                return time.monotonic()
        time.sleep(every)
    return None


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process, in MB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def children(pid: int) -> list[int]:
    """The processes `pid` started (the server's ping writer process, say)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                found += [int(child) for child in listed.read().split()]
    except OSError:
        return []
    return found


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Sink:
    """The 204 target (bench/sink.py) in its own process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self, **query: str) -> dict[str, Any]:
        text = "&".join(f"{k}={v}" for k, v in query.items())
        status, body = http_get(f"{self.url}/__stats?{text}", timeout=30)
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result


@contextlib.contextmanager
def sink_process() -> Iterator[Sink]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sink", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        if wait_http(f"http://127.0.0.1:{port}/__stats", timeout=20) is None:
            raise RuntimeError("the sink did not start")
        yield Sink(port, process)
    finally:
        _stop(process, 5)


@dataclass
class Server:
    """A real `cronkeeper serve` subprocess."""

    db: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float  # monotonic
    ready_at: float | None = None  # monotonic
    profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)  # --role worker

    @property
    def pids(self) -> list[int]:
        """The server's process and any extra worker processes."""
        return [self.process.pid, *(worker.pid for worker in self.extra)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 120.0) -> float | None:
        """Seconds from spawn to `/readyz` answering 200 (None on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cronkeeper serve exited; log:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                status, _ = http_get(f"{self.url}/readyz", timeout=1.0)
                if status == 200:
                    self.ready_at = time.monotonic()
                    return self.ready_at - self.spawned_at
            time.sleep(0.02)
        return None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def errors_logged(self) -> list[str]:
        """Lines of the server log that report an error or a traceback."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        markers = ("Traceback", "ERROR", "Exception", "failed")
        return [line for line in text.splitlines() if any(m in line for m in markers)]


def server_loop() -> str:
    """Which event loop the spawned server runs on, and any extra worker processes
    (printed with the figures)."""
    loop = os.environ.get("BENCH_SERVER_LOOP", "uvloop (the default)")
    extra = int(os.environ.get("BENCH_EXTRA_WORKERS", "0"))
    return loop + (
        f"; + {extra} `serve --role worker` process(es) (BENCH_EXTRA_WORKERS)" if extra else ""
    )


@contextlib.contextmanager
def server_process(
    db: str,
    folder: str,
    *,
    extra_env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> Iterator[Server]:
    """Spawn `cronkeeper serve` on `db` (127.0.0.1 targets allowed); SIGTERM on exit.
    `prefix` runs the CLI module under a wrapper (a profiler's `… -m`)."""
    port = free_port()
    env = {**os.environ, "CRONKEEPER_ALLOW_PRIVATE": "1", **(extra_env or {})}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    executable = VENV_BIN / "cronkeeper"
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "cronkeeper"]
    if "BENCH_SERVER_LOOP" in os.environ:  # experiment: `asyncio` to compare
        env["CRONKEEPER_EVENT_LOOP"] = os.environ["BENCH_SERVER_LOOP"]
    if prefix is not None:
        command = [*prefix, "cronkeeper"]
    log_path = Path(folder) / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        spawned = time.monotonic()
        process = subprocess.Popen(
            [*command, "serve", "--db", db, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(db, port, process, log_path, spawned)
    extra = server.extra
    for i in range(int(os.environ.get("BENCH_EXTRA_WORKERS", "0"))):
        # experiment: more `serve --role worker` processes on the same ledger (other cores)
        with open(Path(folder) / f"worker-{i}.log", "wb") as log:
            extra.append(
                subprocess.Popen(
                    [*command, "serve", "--db", db, "--port", str(free_port()), "--role", "worker"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    try:
        yield server
    finally:
        for profiler in server.profilers:
            _stop(profiler, 30)
        for worker in extra:
            worker.send_signal(signal.SIGTERM)
        _stop(process, 45)
        for worker in extra:
            _stop(worker, 45)


@contextlib.contextmanager
def workdir(name: str) -> Iterator[str]:
    """A temporary folder for a scenario's ledger and logs; kept (and its path printed)
    when BENCH_KEEP=1, to inspect the ledger afterwards."""
    if os.environ.get("BENCH_KEEP") == "1":
        import tempfile

        folder = tempfile.mkdtemp(prefix=f"bench-{name}-")
        print(f"  (BENCH_KEEP=1: ledger and server log kept in {folder})", flush=True)
        yield folder
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        yield folder


# ---------------------------------------------------------------- profiling


def start_profile(server: Server, out: str, duration: float, rate: int = 100) -> str:
    """Sample the server with py-spy for `duration` s into `out` (collapsed stacks, text)."""
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    profiler = subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(server.pid),
            "--duration",
            str(max(1, int(duration))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
            "--output",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server.profilers.append(profiler)
    return out


PROFILE_DIR = Path("/tmp/cronkeeper-bench-profiles")


def profile_path(scenario: str) -> str:
    """Where a scenario's profile goes (kept after the run: collapsed stacks, which
    speedscope or flamegraph.pl open)."""
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    return str(PROFILE_DIR / f"{scenario}-{time.strftime('%Y%m%d-%H%M%S')}.raw")


def stop_profiles(server: Server, timeout: float = 60) -> None:
    """Stop the samplers now (SIGINT makes py-spy write what it has)."""
    for profiler in server.profilers:
        if profiler.poll() is None:
            profiler.send_signal(signal.SIGINT)
    wait_profiles(server, timeout)


def wait_profiles(server: Server, timeout: float = 120) -> None:
    for profiler in server.profilers:
        try:
            profiler.wait(timeout)
        except subprocess.TimeoutExpired:
            profiler.kill()
    server.profilers.clear()


# ---------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seeded:
    key: str
    project_id: uuid.UUID


async def _open(db: str) -> tuple[Context, str]:
    ctx = await open_context(db)
    key = await bootstrap(ctx)
    assert key is not None, "seed a fresh ledger"
    return ctx, key


def job_body(
    slug: str, schedule: str, url: str, timezone: str = "UTC", **extra: Any
) -> dict[str, Any]:
    return {
        "slug": slug,
        "kind": "http",
        "schedule": schedule,
        "timezone": timezone,
        "target": {"url": url},
        **extra,
    }


@dataclass(frozen=True)
class JobTemplate:
    """One validated spec body reused for many jobs (only slug and URL path change)."""

    body: dict[str, Any]

    @classmethod
    def of(cls, schedule: str, url: str, timezone: str = "UTC", **extra: Any) -> JobTemplate:
        spec = parse_job_body(job_body("template", schedule, url, timezone, **extra))
        return cls(spec.to_body())

    def row(
        self,
        project_id: uuid.UUID,
        slug: str,
        next_fire_at: datetime | None,
        now: datetime,
        url: str | None = None,
    ) -> dict[str, Any]:
        spec = {**self.body, "slug": slug}
        if url is not None:
            spec["target"] = {**spec["target"], "url": url}
        return {
            "id": uuid.uuid4(),
            "project_id": project_id,
            "slug": slug,
            "name": spec.get("name") or "",
            "kind": spec["kind"],
            "status": spec["status"],
            "schedule": spec["schedule"],
            "timezone": spec["timezone"],
            "queue": spec["queue"],
            "spec": spec,
            "monitor_state": "new",
            "ping_uuid": None,
            "next_fire_at": next_fire_at,
            "created_at": now,
            "updated_at": now,
        }


async def seed_jobs(db: str, make_rows: Any, chunk: int = 5000) -> Seeded:
    """Bootstrap a fresh ledger and insert the rows `make_rows(project_id)` yields, in
    chunks of executemany inside one write transaction."""
    ctx, key = await _open(db)
    try:
        async with ctx.db.read() as conn:
            project = await project_store.get_project(conn, "default")
        assert project is not None
        rows = list(make_rows(project.id))
        async with ctx.db.write() as conn:
            for start in range(0, len(rows), chunk):
                await conn.execute(jobs_table.insert(), rows[start : start + chunk])
    finally:
        await ctx.db.dispose()
    return Seeded(key, project.id)


def utc_now() -> datetime:
    return datetime.now(UTC)


def sleep_until(moment: datetime) -> None:
    """Block until the wall clock reaches `moment` (UTC)."""
    delay = (moment - utc_now()).total_seconds()
    if delay > 0:
        time.sleep(delay)


def whole_second_after(seconds: float) -> datetime:
    moment = utc_now() + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


# ---------------------------------------------------------------- the ledger


def sqlite_path(db: str) -> str:
    return db.split("///", 1)[-1]


def stored(moment: datetime) -> str:
    """A UTC time as the ledger stores it on SQLite (fixed-width text)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def parse_stored(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@contextlib.contextmanager
def ledger(db: str) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to read the ledger file (WAL lets it read beside the server)."""
    conn = sqlite3.connect(sqlite_path(db), timeout=30)
    try:
        yield conn
    finally:
        conn.close()


# ---------------------------------------------------------------- noise


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat, minus idle and iowait)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """How much CPU other processes used while a figure was measured (noise indicator).

    `stop()` returns the average number of cores busy outside the benchmark's own
    processes (this one, the server, the sink) over the window."""

    def __init__(self, *pids: int) -> None:
        self.pids = [os.getpid(), *pids]

    def _ours(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.pids)

    def start(self) -> LoadMeter:
        self._t0, self._busy0, self._ours0 = time.monotonic(), _machine_busy(), self._ours()
        return self

    def stop(self) -> float:
        elapsed = max(1e-6, time.monotonic() - self._t0)
        other = (_machine_busy() - self._busy0) - (self._ours() - self._ours0)
        return max(0.0, other / elapsed)

    def note(self) -> str:
        other = self.stop()
        flag = " — NOISY: repeat this figure" if other > 0.25 else ""
        return f"other processes kept {other:.2f} of {os.cpu_count()} cores busy{flag}"


def scrape_metrics(server: Server) -> str:
    """Time one GET /metrics while probing /healthz every 10 ms: how long the scrape took,
    how big it was, and the longest /healthz wait meanwhile (the event loop's stall)."""
    import threading

    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            with contextlib.suppress(OSError):
                http_get(f"{server.url}/healthz", timeout=120)
            waits.append(time.monotonic() - started)
            time.sleep(0.01)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    time.sleep(0.1)
    started = time.monotonic()
    status, body = http_get(f"{server.url}/metrics", timeout=300)
    took = time.monotonic() - started
    done.set()
    prober.join(130)
    worst = max(waits) if waits else float("nan")
    return (
        f"GET /metrics: {status}, {took:.2f} s, {len(body) / 1024 / 1024:.1f} MB; "
        f"longest /healthz wait meanwhile {worst * 1000:,.0f} ms"
    )


def dispatch_gaps(
    db: str, arrivals: dict[str, float], where: str, args: tuple[Any, ...]
) -> list[float]:
    """Per run: sink arrival − the run's `started_at` in the ledger, in ms (how long after
    the ledger says the run started its request really reached the target)."""
    gaps = []
    with ledger(db) as conn:
        for run_id, started in conn.execute(
            f"SELECT id, started_at FROM runs WHERE {where} AND started_at IS NOT NULL", args
        ):
            key = run_id.hex() if isinstance(run_id, bytes) else str(run_id).replace("-", "")
            arrival = arrivals.get(key)
            moment = parse_stored(started)
            if arrival is not None and moment is not None:
                gaps.append((arrival - moment.timestamp()) * 1000)
    return gaps

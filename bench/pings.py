"""Ping ingest: wrk against a real `cronkeeper serve` (DESIGN §6, issue 5 "Done means" a).

Seeds N heartbeat jobs, spawns `cronkeeper serve` (SQLite, then PostgreSQL on a
throwaway database at 127.0.0.1:5432), and loads it with wrk: 64 keep-alive
connections, 2 threads, ~20 s, `--latency`. The Lua script (written next to the ledger)
spreads start/success pairs over the jobs' ping UUIDs, each pair with its own `rid`; a
thread sends pair k's success 64 requests after its start, so most pairs time a real run.

Afterwards every acknowledged ping must be in the ledger: the `attempt_started` plus
`attempt_succeeded` events (one per start, one per success) are counted against wrk's
2xx answers. The ledger may hold a few more (requests in flight when wrk stopped are
committed but not counted by wrk), never fewer.

`BENCH_PINGS_DBS=sqlite` (or `postgresql`) measures one database only. `--profile` samples
the server with py-spy (as the other scenarios do) and prints what dominates; without
py-spy it runs the server under pyinstrument (main thread only; blind inside SQLAlchemy's
greenlets) and prints its flat profile.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from bench import harness
from bench.harness import verdict

SCALES = {
    "full": {"jobs": 1_000, "seconds": 20, "connections": 64, "threads": 2},
    "small": {"jobs": 100, "seconds": 3, "connections": 64, "threads": 2},
}
TARGET_RATE, TARGET_P99_MS = 6_000, 30.0
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
#: `BENCH_PINGS_WARMUP=S`: load the server for S seconds first, unmeasured (its first
#: seconds include the writer process starting and every job's first flip, new → up).
WARMUP = int(os.environ.get("BENCH_PINGS_WARMUP", "0"))

LUA = """
local uuids = {%(uuids)s}
local n = #uuids
local lag = 64
local counter = 0
acked = 0  -- global: done() reads it from each thread
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  acked = 0
end

local function rid(pair)
  return string.format("%%08x-0000-4000-8000-%%012x", tid, pair)
end

function request()
  counter = counter + 1
  local pair = math.floor(counter / 2)
  if counter %% 2 == 0 then
    return wrk.format("GET", "/ping/" .. uuids[pair %% n + 1] .. "/start?rid=" .. rid(pair))
  end
  pair = pair - lag
  if pair < 0 then pair = pair + 1000000000 end
  return wrk.format("GET", "/ping/" .. uuids[pair %% n + 1] .. "?rid=" .. rid(pair))
end

function response(status, headers, body)
  if status >= 200 and status < 300 then acked = acked + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("acked") end
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"acked\\": %%d, \\"non2xx\\": %%d, \\"seconds\\": %%f, " ..
    "\\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d, " ..
    "\\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, \\"timeout\\": %%d}\\n",
    summary.requests, total, summary.errors.status, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""


def main(args: Any = None) -> list[str]:
    scale = SCALES[getattr(args, "scale", "full")]
    profile = getattr(args, "profile", False)
    if not os.path.exists(WRK):
        return [f"pings: wrk is not installed ({WRK}); apt-get install -y wrk"]
    lines = [f"load average before: {_loadavg()}"]
    dialects = os.environ.get("BENCH_PINGS_DBS", "sqlite,postgresql").split(",")
    lines += _ceiling(scale)
    if "sqlite" in dialects:
        with harness.workdir("pings") as folder:
            lines += _scenario("sqlite", f"sqlite:///{folder}/pings.db", folder, scale, profile)
    pg = _pg_database() if "postgresql" in dialects else None
    if "postgresql" not in dialects:
        pass
    elif pg is None:
        lines.append("postgresql: not reachable at 127.0.0.1:5432 — skipped")
    else:
        try:
            with harness.workdir("pings-pg") as folder:
                lines += _scenario("postgresql", pg, folder, scale, profile)
        finally:
            _pg_drop(pg)
    lines.append(f"load average after: {_loadavg()}")
    return lines


def _scenario(
    dialect: str, db: str, folder: str, scale: dict[str, int], profile: bool
) -> list[str]:
    n = scale["jobs"]
    ping_uuids = [uuid.uuid4() for _ in range(n)]
    asyncio.run(harness.seed_jobs(db, lambda project_id: _rows(project_id, ping_uuids)))
    script = Path(folder) / "pings.lua"
    script.write_text(LUA % {"uuids": ", ".join(f'"{u}"' for u in ping_uuids)})
    py_spy = profile and (harness.VENV_BIN / "py-spy").exists()
    prefix = _profiler(folder) if profile and not py_spy else None
    prof_path = harness.profile_path(f"pings-{dialect}")
    with harness.server_process(db, folder, prefix=prefix) as server:
        if server.wait_ready(timeout=60) is None:
            return [f"{dialect}: server not ready; log:\n{server.log_tail()}"]
        helpers = harness.children(server.pid)  # the ping writer process (SQLite)
        ours = [server.pid, *helpers]
        command = [
            WRK,
            f"-t{scale['threads']}",
            f"-c{scale['connections']}",
            f"-d{scale['seconds']}s",
            "--latency",
            "-s",
            str(script),
            server.url,
        ]
        before = (0, 0, 0, 0)
        if WARMUP:  # the same load first, not measured: the steady state alone
            warm = [*command[:3], f"-d{WARMUP}s", *command[4:]]
            subprocess.run(warm, capture_output=True, timeout=600, check=False)
            time.sleep(0.5)  # its last pings commit
            before = _stored(dialect, db)
        cpu0 = [harness.cpu_seconds(pid) or 0.0 for pid in ours]
        if py_spy:
            harness.start_profile(server, prof_path, duration=scale["seconds"] - 2)
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        load = harness.LoadMeter(*ours, wrk.pid).start()
        out, err = wrk.communicate(timeout=600)
        noise = load.note()
        cpu = [
            (harness.cpu_seconds(pid) or 0.0) - before
            for pid, before in zip(ours, cpu0, strict=True)
        ]
        done = subprocess.CompletedProcess(command, wrk.returncode, out, err)
        if py_spy:
            harness.wait_profiles(server)
        time.sleep(0.5)  # the last in-flight pings commit
        stored = tuple(a - b for a, b in zip(_stored(dialect, db), before, strict=True))
        errors = server.errors_logged()
    figures = _parse(done.stdout)
    if figures is None:
        return [f"{dialect}: wrk said nothing usable:\n{done.stdout}\n{done.stderr}"]
    lines = _report(dialect, n, scale, figures, stored, cpu, noise, errors, prefix, folder)
    if py_spy:
        from bench.profile import summarise

        lines.append(f"  profile of the server under load (py-spy, {prof_path}):")
        lines += ["    " + line for line in summarise(prof_path)]
    return lines


def _rows(project_id: uuid.UUID, ping_uuids: list[uuid.UUID]) -> list[dict[str, Any]]:
    from cronkeeper.service.schemas import parse_job_body

    body = parse_job_body({"slug": "template", "kind": "heartbeat"}).to_body()
    now = harness.utc_now()
    rows = []
    for i, ping_uuid in enumerate(ping_uuids):
        slug = f"hb-{i:05d}"
        rows.append(
            {
                "id": uuid.uuid4(),
                "project_id": project_id,
                "slug": slug,
                "name": slug,
                "kind": "heartbeat",
                "status": "active",
                "schedule": None,
                "timezone": "UTC",
                "queue": "default",
                "spec": {**body, "slug": slug, "name": slug},
                "monitor_state": "new",
                "ping_uuid": ping_uuid,
                "next_fire_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            figures: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            return figures
    return None


_COUNT_SQL = (
    "SELECT "
    "(SELECT count(*) FROM events WHERE type = 'attempt_started'), "
    "(SELECT count(*) FROM events WHERE type = 'attempt_succeeded'), "
    "(SELECT count(*) FROM runs WHERE source = 'heartbeat'), "
    "(SELECT count(*) FROM runs WHERE status = 'succeeded' AND duration_ms IS NOT NULL)"
)


def _stored(dialect: str, db: str) -> tuple[int, int, int, int]:
    """(start events, success events, heartbeat runs, timed succeeded runs) in the ledger."""
    if dialect == "sqlite":
        with harness.ledger(db) as conn:
            row = conn.execute(_COUNT_SQL).fetchone()
            return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def count() -> tuple[int, int, int, int]:
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            row = await conn.fetchrow(_COUNT_SQL)
        finally:
            await conn.close()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    return asyncio.run(count())


def _report(
    dialect: str,
    n: int,
    scale: dict[str, int],
    wrk: dict[str, Any],
    stored: tuple[int, int, int, int],
    cpu: list[float],
    noise: str,
    errors: list[str],
    prefix: list[str] | None,
    folder: str,
) -> list[str]:
    starts, successes, run_count, timed = stored
    in_ledger = starts + successes
    rate = wrk["acked"] / wrk["seconds"]
    p50, p99 = wrk["p50_us"] / 1000, wrk["p99_us"] / 1000
    socket_errors = wrk["connect"] + wrk["read"] + wrk["write"] + wrk["timeout"]
    complete = in_ledger >= wrk["acked"] and in_ledger - wrk["acked"] <= scale["connections"]
    lines = [
        f"{dialect}: {n:,} heartbeat jobs; wrk -t{scale['threads']} -c{scale['connections']} "
        f"-d{scale['seconds']}s --latency (start/success pairs, rid per pair)",
        f"  acknowledged pings/s: {rate:,.0f} ({wrk['acked']:,} 2xx in {wrk['seconds']:.1f} s; "
        f"non-2xx {wrk['non2xx']}, socket errors {socket_errors})"
        + (
            f"  [target ≥ {TARGET_RATE:,}: {verdict(rate >= TARGET_RATE)}]"
            if dialect == "sqlite"
            else ""
        ),
        f"  latency p50 {p50:.1f} ms, p90 {wrk['p90_us'] / 1000:.1f} ms, p99 {p99:.1f} ms, "
        f"max {wrk['max_us'] / 1000:.1f} ms"
        + (
            f"  [p99 ≤ {TARGET_P99_MS:.0f} ms: {verdict(p99 <= TARGET_P99_MS)}]"
            if dialect == "sqlite"
            else ""
        ),
        f"  in the ledger: {starts:,} starts + {successes:,} successes = {in_ledger:,} pings "
        f"(acknowledged {wrk['acked']:,}; {in_ledger - wrk['acked']:+,} in flight at the end) "
        f"→ every acknowledged ping stored: {verdict(complete)}",
        f"  runs: {run_count:,} heartbeat runs, {timed:,} succeeded with a duration",
        f"  server CPU {sum(cpu) / wrk['seconds']:.2f} cores during the load "
        f"({sum(cpu) / max(1, wrk['acked']) * 1e6:,.0f} µs per ping)"
        + (
            f": server process {cpu[0] / wrk['seconds']:.2f}, writer process "
            f"{sum(cpu[1:]) / wrk['seconds']:.2f}"
            if len(cpu) > 1
            else ""
        )
        + f"; {noise} (wrk's own not counted)",
    ]
    if errors:
        lines.append(f"  server log: {len(errors)} error lines, first: {errors[0][:200]}")
    if prefix is not None:
        lines += _profile_summary(folder)
    return lines


# ---------------------------------------------------------------- this machine's ceiling

#: DESIGN §6's ceiling for the same load "on this kind of machine" (bare Starlette route).
REFERENCE_BARE = 21_800
BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def ok(request):
    return PlainTextResponse("OK")


app = Starlette(routes=[Route("/ping/{rest:path}", ok)])
"""


def _ceiling(scale: dict[str, int]) -> list[str]:
    """What this machine gives a bare Starlette route on uvicorn (httptools, uvloop) under
    the same wrk load, now: the figure DESIGN §6 puts at 21,800 req/s, so that the ping
    figures below can be read against the machine they ran on."""
    with harness.workdir("pings-bare") as folder:
        Path(folder, "bare_app.py").write_text(BARE_APP)
        port = harness.free_port()
        command = [
            str(harness.VENV_BIN / "uvicorn"),
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        server = subprocess.Popen(command, cwd=folder)
        try:
            if harness.wait_http(f"http://127.0.0.1:{port}/ping/x", timeout=30) is None:
                return ["bare Starlette ceiling: the server did not start"]
            seconds = min(10, scale["seconds"])
            done = subprocess.run(
                [
                    WRK,
                    f"-t{scale['threads']}",
                    f"-c{scale['connections']}",
                    f"-d{seconds}s",
                    "--latency",
                    f"http://127.0.0.1:{port}/ping/x",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    rate = next(
        (float(line.split()[-1]) for line in done.stdout.splitlines() if "Requests/sec" in line),
        0.0,
    )
    return [
        f"ceiling here now: a bare Starlette route on uvicorn answers {rate:,.0f} req/s under "
        f"the same wrk load (DESIGN §6 reference: {REFERENCE_BARE:,}; this machine is "
        f"{rate / REFERENCE_BARE:.0%} of it)"
    ]


# ---------------------------------------------------------------- PostgreSQL


def _pg_database() -> str | None:
    """A new empty database for the run (None when PostgreSQL does not answer)."""
    name = f"ck_bench_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_execute(PG_ADMIN, f'CREATE DATABASE "{name}"'))
    except Exception:
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _pg_drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_pg_execute(PG_ADMIN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_execute(dsn: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# ---------------------------------------------------------------- profile and machine


def _profiler(folder: str) -> list[str]:
    pyinstrument = harness.VENV_BIN / "pyinstrument"
    if not pyinstrument.exists():
        raise RuntimeError("pyinstrument is not installed: .venv/bin/pip install pyinstrument")
    out = Path(folder) / "profile.pyisession"
    return [str(pyinstrument), "-r", "pyisession", "-o", str(out), "-m"]


def _profile_summary(folder: str, lines: int = 45) -> list[str]:
    """The flat (self time) top of the profile; the session is kept for `pyinstrument
    --load=FILE` (tree, html)."""
    source = Path(folder) / "profile.pyisession"
    if not source.exists():
        return ["  (no profile written)"]
    kept = Path(harness.profile_path("pings")).with_suffix(".pyisession")
    shutil.copyfile(source, kept)
    pyinstrument = str(harness.VENV_BIN / "pyinstrument")
    flat = subprocess.run(
        [
            pyinstrument,
            f"--load={kept}",
            "-r",
            "text",
            "-p",
            "flat=true",
            "--show-all",
            "--no-color",
            "--unicode",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ).stdout
    return [f"  profile (pyinstrument, main thread, self time) kept in {kept}:"] + [
        "    " + line for line in flat.splitlines()[:lines]
    ]


def _loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"

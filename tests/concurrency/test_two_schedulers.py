"""Two scheduler processes on one PostgreSQL database fire every slot exactly once.

Twenty `every 1s` jobs, two `cronkeeper serve` processes (one `--role all`, one `--role
scheduler`) running side by side for about twelve seconds: each (job, slot) gets exactly
one run, and between a job's first and last fired slot no second is missing. Both
processes stop on SIGTERM and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cronkeeper.domain.models import Actor
from cronkeeper.service import jobs as job_service
from cronkeeper.service.projects import ensure_project
from cronkeeper.service.setup import open_context
from cronkeeper.store.tables import jobs, runs

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CRONKEEPER = str(Path(sys.executable).parent / "cronkeeper")
JOBS = 20
RUN_FOR = 12.0  # seconds of both schedulers firing


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(db_url: str, role: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`cronkeeper serve --role ROLE` on the database; killed if the test left it running."""
    command = [CRONKEEPER, "serve", "--db", db_url, "--role", role, "--port", str(free_port())]
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_for_banner(process: subprocess.Popen[bytes], log: Path, role: str) -> None:
    deadline = time.monotonic() + 30
    while f"role: {role})" not in log.read_text(errors="replace"):
        assert process.poll() is None, f"serve --role {role} exited:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"serve --role {role} not up:\n{log.read_text()}"
        time.sleep(0.05)  # polling a real process


async def create_jobs(db_url: str, admin: Actor) -> None:
    ctx = await open_context(db_url, migrate=False)
    try:
        async with ctx.db.write() as conn:
            await ensure_project(conn, "default", ctx.clock.now())
        for i in range(JOBS):
            body = {
                "slug": f"tick-{i:02d}",
                "kind": "command",
                "schedule": "every 1s",
                "target": {"command": ["true"]},
                "overlap": "allow",
            }
            await job_service.create_job(ctx, admin, "default", body)
    finally:
        await ctx.db.dispose()


async def fired_slots(db_url: str) -> dict[str, list[datetime]]:
    """Every schedule run's slot, per job slug."""
    ctx = await open_context(db_url, migrate=False)
    try:
        async with ctx.db.read() as conn:
            query = (
                select(jobs.c.slug, runs.c.scheduled_for)
                .join(jobs, jobs.c.id == runs.c.job_id)
                .where(runs.c.source == "schedule")
            )
            rows = (await conn.execute(query)).all()
    finally:
        await ctx.db.dispose()
    found: dict[str, list[datetime]] = {}
    for slug, slot in rows:
        found.setdefault(slug, []).append(slot)
    return found


def test_two_schedulers_fire_every_slot_exactly_once(
    postgres_url: str, admin: Actor, tmp_path: Path
) -> None:
    asyncio.run(create_jobs(postgres_url, admin))
    logs = {role: tmp_path / f"{role}.log" for role in ("all", "scheduler")}

    with (
        serve(postgres_url, "all", logs["all"]) as everything,
        serve(postgres_url, "scheduler", logs["scheduler"]) as scheduler,
    ):
        wait_for_banner(everything, logs["all"], "all")
        wait_for_banner(scheduler, logs["scheduler"], "scheduler")
        started = time.monotonic()
        while time.monotonic() - started < RUN_FOR:
            for process, role in ((everything, "all"), (scheduler, "scheduler")):
                assert process.poll() is None, f"{role} died:\n{logs[role].read_text()}"
            time.sleep(0.2)  # letting both schedulers work for a while is the point
        for process in (everything, scheduler):
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=30) for process in (everything, scheduler)]

    assert codes == [0, 0], "\n".join(log.read_text() for log in logs.values())
    assert "Traceback" not in "".join(log.read_text() for log in logs.values())
    slots = asyncio.run(fired_slots(postgres_url))
    assert sorted(slots) == [f"tick-{i:02d}" for i in range(JOBS)]
    assert sum(len(fired) for fired in slots.values()) >= JOBS * (RUN_FOR - 2)
    for slug, fired in slots.items():
        duplicates = [slot for slot, n in Counter(fired).items() if n > 1]
        assert duplicates == [], f"{slug} fired twice: {duplicates}"
        fired.sort()
        expected = [fired[0] + timedelta(seconds=i) for i in range(len(fired))]
        missing = sorted(set(expected) - set(fired))
        assert fired == expected, f"{slug} lost slots: {missing[:5]}"

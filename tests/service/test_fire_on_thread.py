"""Firing due slots on SQLite's thread (one `write_on_thread` call) writes the very same
rows as the statement-by-statement path PostgreSQL takes: two copies of one ledger fire
the same pass, one each way (run ids and trace ids made deterministic), and every stored
value is compared as SQLite holds it.

The pass covers on-time slots within the look-ahead, missed slots (catch_up `latest`)
after the on-time one, every missed slot replayed (catch_up `all`), a slot inside a
`skip` maintenance window, a slot that already has a run (kept; no second run, no
event), and a paused job (not due).
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.service import execution, maintenance
from cronkeeper.service.context import Context
from cronkeeper.store import jobs as job_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock

from .conftest import both_ways, ledger_with_jobs, stored

NOW = datetime(2026, 3, 1, 12, 5, 55, tzinfo=UTC)  # 12:06 is within the look-ahead
JOBS: dict[str, dict[str, Any]] = {
    "plain": {},
    "latest": {"catch_up": "latest", "start_grace": "10s"},
    "every": {"catch_up": "all", "start_grace": "10s", "overlap": "queue"},
    "quiet": {"tags": ["quiet"]},
    "taken": {},
    "paused": {"status": "paused"},
}
TABLES = ("runs", "events", "jobs")


async def seed(path: str, clock: FakeClock, admin: Actor) -> None:
    async with ledger_with_jobs(path, clock, admin, JOBS, "every 1m") as (ctx, project):
        window = {"name": "hush", "mode": "skip", "starts_at": "2026-03-01T12:00:30Z"}
        window.update(ends_at="2026-03-01T13:00:00Z", tags=["quiet"])
        await maintenance.create_window(ctx, admin, "default", window)
        clock.set(NOW)
        async with ctx.db.write() as conn:  # `taken` already has a run for 12:01
            job = await job_store.get_job(conn, project.id, "taken")
            assert job is not None
            slot = datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
            values = execution.new_run_values(
                project.id, job.id, job.spec, source="schedule", now=NOW, scheduled_for=slot
            )
            await run_store.insert_run(conn, values)


async def fire(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> int:
    """`fire_due_slots` with run ids and trace ids counted from 1."""
    ids = itertools.count(1)
    with monkeypatch.context() as patch:
        patch.setattr(execution, "uuid7", lambda at: uuid.UUID(int=next(ids) << 64))
        patch.setattr(execution, "new_trace_id", lambda: f"{next(ids):032x}")
        return await execution.fire_due_slots(ctx)


async def test_firing_on_the_thread_stores_what_the_statement_path_stores(
    sqlite_url: str, clock: FakeClock, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    await seed(path, clock, admin)
    shutil.copyfile(path, f"{path}.copy")

    on_thread, one_by_one = await both_ways(path, clock, monkeypatch, partial(fire, monkeypatch))

    assert on_thread == one_by_one
    assert stored(path, *TABLES) == stored(f"{path}.copy", *TABLES)
    runs = stored(path, "runs")["runs"]
    statuses = sorted(row[4] for row in runs)
    assert {"missed", "queued", "skipped"} <= set(statuses)  # skipped: `quiet`, in the window
    missed = [row for row in runs if row[4] == "missed"]
    assert {(row[15], row[23]) for row in missed} == {("missed", 1)}  # reason, outage
    events = stored(path, "events")["events"]
    assert len(events) == len(runs) - 1  # the run `taken` had before: no opening event

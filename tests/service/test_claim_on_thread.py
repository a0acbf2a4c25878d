"""Claiming on SQLite's thread (one `write_on_thread` call) claims the very same runs and
writes the very same rows as the statement-by-statement path PostgreSQL takes: two copies
of one ledger are claimed from, one each way, and every stored value is compared as
SQLite holds it.

The queue holds a run skipped by its busy `skip` job, runs waiting behind a busy `queue`
job (the first claim's page fills with them: it looks again past that job), a run of an
`allow` job
that starts anyway, a run due soon (claimed ahead), a manual run with a payload, a retry
(its `started_at` kept), and a run of another queue (left alone).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import RunStatus
from cronkeeper.service import execution
from cronkeeper.store import jobs as job_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock

from .conftest import both_ways, ledger_with_jobs, stored

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
JOBS: dict[str, dict[str, Any]] = {
    "skipper": {"overlap": "skip"},
    "queuer": {"overlap": "queue"},
    "allower": {"overlap": "allow"},
    "soon": {},
    "manual": {},
    "retried": {"retry": {"max_attempts": 3}},
    "elsewhere": {"queue": "other"},
}


async def seed(url: str, clock: FakeClock, admin: Actor) -> None:
    async with ledger_with_jobs(url, clock, admin, JOBS, "every 1h") as (ctx, project):
        clock.set(NOW)
        async with ctx.db.write() as conn:
            for slug in JOBS:
                job = await job_store.get_job(conn, project.id, slug)
                assert job is not None
                for values in runs_of(slug, job.id, project.id, job.spec):
                    await run_store.insert_run(conn, values)


def runs_of(slug: str, job_id: Any, project_id: Any, spec: Any) -> list[dict[str, Any]]:
    """The runs a job has in the ledger before the claims."""

    def run(seconds: float, **changes: Any) -> dict[str, Any]:
        slot = NOW + timedelta(seconds=seconds)
        values = execution.new_run_values(
            project_id,
            job_id,
            spec,
            source="schedule",
            now=NOW - timedelta(seconds=60),
            scheduled_for=slot,
        )
        return {**values, **changes}

    busy = {"status": RunStatus.RUNNING.value, "node": "node-x", "attempts": 1}
    busy.update(
        started_at=NOW - timedelta(seconds=20), lease_expires_at=NOW + timedelta(seconds=60)
    )
    if slug in ("skipper", "queuer", "allower"):
        waiting = [run(-9 + k) for k in range(6 if slug == "queuer" else 1)]
        return [run(-20, **busy), *waiting]
    if slug == "soon":
        return [run(3)]
    if slug == "manual":
        return [{**run(-1, source="manual", scheduled_for=None), "payload": {"input": [1, "ü"]}}]
    if slug == "retried":
        return [run(-2, attempts=1, started_at=NOW - timedelta(seconds=5))]
    return [run(-30)]


async def test_claiming_on_the_thread_claims_and_stores_what_the_statement_path_does(
    sqlite_url: str, clock: FakeClock, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    await seed(path, clock, admin)
    shutil.copyfile(path, f"{path}.copy")
    everything = []

    for asked in ({"limit": 2}, {"limit": 100, "ahead": 5.0}, {"limit": 100, "ahead": 5.0}):
        claim = partial(execution.claim_runs, node="node-a", queues=["default"], lease=30, **asked)
        on_thread, one_by_one = await both_ways(path, clock, monkeypatch, claim)

        assert on_thread == one_by_one
        assert stored(path, "runs", "events") == stored(f"{path}.copy", "runs", "events")
        everything += on_thread
        clock.advance(0.25)

    assert sorted(item.spec.slug for item in everything) == ["allower", "manual", "retried", "soon"]
    statuses = [row[4] for row in stored(path, "runs")["runs"]]
    assert statuses.count("skipped") == 1
    assert statuses.count("queued") == 7  # the queue job's six, and the other queue's
    retried = next(item for item in everything if item.spec.slug == "retried")
    assert retried.run.started_at == NOW - timedelta(seconds=5)
    soon = next(item for item in everything if item.spec.slug == "soon")
    assert soon.starts_at == NOW + timedelta(seconds=3)

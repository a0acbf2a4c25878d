"""Recording outcomes on SQLite's thread (one `write_on_thread` call) writes the very same
rows as the statement-by-statement path PostgreSQL takes: two copies of one ledger record
the same outcomes, one each way, and every stored value is compared as SQLite holds it.

The batch covers a success with logs and a masked request, a failure that retries, a
success under `min_runtime`, an exception, a run cancelled meanwhile and one now running
on another node (both dropped); then the retries' second attempts, recorded without a
node.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import update

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.models import Actor
from cronkeeper.domain.outcomes import LogLine, Outcome
from cronkeeper.domain.settlement import Settlement
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.service import execution
from cronkeeper.service import runs as run_service
from cronkeeper.service.setup import open_context
from cronkeeper.store.tables import runs
from cronkeeper.testing import FakeClock

from .conftest import both_ways, ledger_with_jobs, stored

SLOT = datetime(2026, 3, 1, 12, 1, tzinfo=UTC)
JOBS: dict[str, dict[str, Any]] = {
    "ok": {},
    "flaky": {"retry": {"max_attempts": 3}},
    "quick": {"min_runtime": 30},
    "broken": {},
    "cancelled": {},
    "stolen": {},
}


def outcome_of(slug: str, at: datetime) -> Outcome:
    if slug == "flaky":
        return Outcome(
            status=AttemptStatus.HTTP_ERROR,
            failure_reason=FailureReason.HTTP_5XX,
            status_code=503,
            latency_ms=12,
            body_preview="busy",
            response_headers={"retry-after": "1"},
            retry_after=1.0,
        )
    if slug == "broken":
        return Outcome(
            status=AttemptStatus.EXCEPTION,
            failure_reason=FailureReason.EXCEPTION,
            error_class="ValueError",
            error="boom",
        )
    resolved = {"method": "GET", "url": "https://x.test/", "headers": {"Authorization": "k"}}
    return Outcome(
        status=AttemptStatus.SUCCESS,
        status_code=200,
        latency_ms=3,
        body_preview="fine",
        response_headers={"content-type": "text/plain"},
        resolved=resolved,
        logs=(LogLine(at, "info", "hello"), LogLine(at, "error", "ünïcode")),
    )


@pytest.fixture
async def claimed(
    sqlite_url: str, clock: FakeClock, admin: Actor
) -> AsyncIterator[list[execution.ClaimedRun]]:
    """A ledger with one claimed run per job of JOBS (one cancelled, one moved to another
    node), closed so that it can be copied."""
    async with ledger_with_jobs(sqlite_url, clock, admin, JOBS, "every 1m") as (ctx, _):
        clock.set(SLOT)
        await execution.fire_due_slots(ctx, lookahead=timedelta(0))
        found = await execution.claim_runs(
            ctx, node="node-a", queues=["default"], limit=100, lease=60
        )
        by_slug = {item.spec.slug: item.run.id for item in found}
        clock.advance(0.5)
        await run_service.cancel_run(ctx, admin, "default", str(by_slug["cancelled"]))
        async with ctx.db.write() as conn:
            moved = update(runs).where(runs.c.id == by_slug["stolen"]).values(node="node-b")
            await conn.execute(moved)
    yield found


async def record_both_ways(
    url: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    finished: list[execution.Finished],
    node: str | None,
) -> tuple[list[Settlement | None], list[Settlement | None]]:
    """Record `finished` on the ledger at `url` on the thread and on its copy `*.copy`
    statement by statement; the decisions of each."""
    path = url.removeprefix("sqlite:///")
    shutil.copyfile(path, f"{path}.copy")
    record = partial(execution.record_outcomes, finished=finished, node=node, random=lambda: 0.5)
    return await both_ways(path, clock, monkeypatch, record)


def recorded(path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables recording writes, as SQLite holds them (attempt ids are
    random: left out)."""
    db = sqlite3.connect(path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(attempts)") if row[1] != "id"]
        attempts = db.execute(
            f"SELECT {', '.join(columns)} FROM attempts ORDER BY run_id, number"
        ).fetchall()
    finally:
        db.close()
    return {**stored(path, "runs", "events", "jobs"), "attempts": attempts}


def assert_same_rows(path: str) -> None:
    on_thread, one_by_one = recorded(path), recorded(f"{path}.copy")
    for table, rows in one_by_one.items():
        assert on_thread[table] == rows, table


async def test_recording_on_the_thread_stores_what_the_statement_path_stores(
    claimed: list[execution.ClaimedRun],
    sqlite_url: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    clock.advance(2)
    now = clock.now()
    finished = [
        execution.Finished(
            item, outcome_of(item.spec.slug, now), SLOT, now - timedelta(seconds=0.2)
        )
        for item in claimed
    ]

    first, second = await record_both_ways(sqlite_url, clock, monkeypatch, finished, "node-a")

    assert first == second
    dropped = {item.spec.slug for item, d in zip(claimed, first, strict=True) if d is None}
    assert dropped == {"cancelled", "stolen"}
    assert_same_rows(path)
    before = recorded(path)
    assert len(before["attempts"]) == 4
    assert any(row[-1] is None for row in before["events"])  # events without data

    shutil.copyfile(f"{path}.copy", path)  # go on from one ledger
    clock.advance(60)
    ctx = await open_context(path, clock=clock, migrate=False)
    try:
        again = await execution.claim_runs(
            ctx, node="node-a", queues=["default"], limit=100, lease=60
        )
    finally:
        await ctx.db.dispose()
    assert sorted(item.spec.slug for item in again) == ["broken", "flaky"]  # their retries
    outcomes = {"flaky": outcome_of("ok", clock.now()), "broken": outcome_of("flaky", clock.now())}
    retry = [execution.Finished(item, outcomes[item.spec.slug], clock.now()) for item in again]

    first, second = await record_both_ways(sqlite_url, clock, monkeypatch, retry, None)

    assert first == second and None not in first
    assert_same_rows(path)
    assert len(recorded(path)["events"]) > len(before["events"])

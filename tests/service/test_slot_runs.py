"""The runs the scheduler writes for one pass keep every column of each, whatever their
mix: a batch's INSERT takes its columns from its first row, so a missed (or skipped)
slot run written after a queued one once lost its reason, outage flag and message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from cronkeeper.domain.models import Actor
from cronkeeper.service import execution
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store.tables import runs
from cronkeeper.testing import FakeClock


async def test_missed_slots_fired_after_a_queued_one_keep_their_reason_and_outage_flag(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    async with ctx.db.write() as conn:
        await ensure_project(conn, "default", clock.now())
    body = {"slug": "backup", "kind": "command", "schedule": "every 1m", "catch_up": "latest"}
    body.update(target={"command": ["true"]}, start_grace="10s")
    await job_service.create_job(ctx, admin, "default", body)
    clock.set(datetime(2026, 3, 1, 12, 5, 30, tzinfo=UTC))  # 12:01 … 12:05 went by

    assert await execution.fire_due_slots(ctx, lookahead=timedelta(0)) == 1

    async with ctx.db.read() as conn:
        query = select(runs).order_by(runs.c.scheduled_for)
        stored = (await conn.execute(query)).mappings().all()
    assert [row["status"] for row in stored] == ["missed"] * 4 + ["queued"]
    for row in stored[:4]:
        assert (row["failure_reason"], row["during_outage"]) == ("missed", True)
        assert "Cronkeeper was not running" in row["error"]
    assert (stored[4]["failure_reason"], stored[4]["during_outage"], stored[4]["error"]) == (
        None,
        False,
        None,
    )

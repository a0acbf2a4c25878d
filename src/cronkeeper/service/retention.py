"""Retention: runs (with their attempts and events) older than the project's retention
(30 days by default) are deleted in small batches, one short transaction each, so
writers never wait long behind the pruning. Flips — the uptime history — and the alerts
and notifications they caused are kept MONITOR_HISTORY_DAYS (DESIGN §4: at least 93)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cronkeeper.service.context import Context
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import runs as run_store

BATCH = 500
MONITOR_HISTORY_DAYS = 93


async def prune_old_runs(ctx: Context, batch: int = BATCH) -> int:
    """Delete every run past its project's retention; returns how many were deleted."""
    async with ctx.db.read() as conn:
        projects = await project_store.list_projects(conn)
    deleted = 0
    for project in projects:
        before = ctx.clock.now() - timedelta(days=project.retention_days)
        while True:
            async with ctx.db.write() as conn:
                count = await run_store.delete_old_runs(conn, project.id, before, batch)
            deleted += count
            if count < batch:
                break
            await asyncio.sleep(0)  # let queued writers in between batches
    return deleted


async def prune_monitor_history(ctx: Context, batch: int = BATCH) -> int:
    """Delete flips and processed alerts (with their notifications) older than
    MONITOR_HISTORY_DAYS; returns how many rows were deleted."""
    before = ctx.clock.now() - timedelta(days=MONITOR_HISTORY_DAYS)
    deleted = 0
    while True:
        async with ctx.db.write() as conn:
            count = await monitor_store.delete_old_monitor_history(conn, before, batch)
        deleted += count
        if count == 0:
            return deleted
        await asyncio.sleep(0)  # let queued writers in between batches

"""Helpers of the service tests that compare SQLite's one-hop thread forms with the
statement-by-statement path PostgreSQL takes: a ledger seeded with command jobs, one
action run both ways on two copies of it, and the stored rows to compare.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from cronkeeper.domain.models import Actor, Project
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.service.setup import open_context
from cronkeeper.store import claims
from cronkeeper.testing import FakeClock

T = TypeVar("T")


@asynccontextmanager
async def ledger_with_jobs(
    url: str, clock: FakeClock, admin: Actor, jobs: dict[str, dict[str, Any]], schedule: str
) -> AsyncIterator[tuple[Context, Project]]:
    """The ledger at `url` with project `default` and a `command` job per entry of `jobs`
    (slug → fields over the body) on `schedule`; closed on leaving, so it can be copied."""
    ctx = await open_context(url, clock=clock)
    try:
        async with ctx.db.write() as conn:
            project = await ensure_project(conn, "default", clock.now())
        for slug, fields in jobs.items():
            body: dict[str, Any] = {"slug": slug, "kind": "command", "schedule": schedule}
            body.update(target={"command": ["true"]}, **fields)
            await job_service.create_job(ctx, admin, "default", body)
        yield ctx, project
    finally:
        await ctx.db.dispose()


async def both_ways(
    path: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    action: Callable[[Context], Awaitable[T]],
) -> tuple[T, T]:
    """`action` on the SQLite ledger at `path` in one hop on SQLite's thread, then on its
    copy `{path}.copy` statement by statement (as on PostgreSQL); what each returned."""
    results = []
    for target, one_hop in ((path, True), (f"{path}.copy", False)):
        ctx = await open_context(target, clock=clock, migrate=False)
        try:
            assert claims.on_thread(ctx.db)
            with monkeypatch.context() as patch:
                if not one_hop:
                    patch.setattr(claims, "on_thread", lambda db: False)
                results.append(await action(ctx))
        finally:
            await ctx.db.dispose()
    return results[0], results[1]


def stored(path: str, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `tables` by id, as SQLite holds them."""
    db = sqlite3.connect(path)
    try:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() for table in tables
        }
    finally:
        db.close()

"""store/monitor.py's shared values: a key stored for the first time by two processes at
once (two monitors ticking on PostgreSQL) is stored once, and neither write fails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cronkeeper.service.context import Context
from cronkeeper.store import monitor as monitor_store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_two_first_writes_of_one_key_both_succeed_and_the_later_wins(
    ctx: Context,
) -> None:
    first_written = asyncio.Event()

    async def first() -> None:
        async with ctx.db.write() as conn:
            await monitor_store.set_value(conn, "monitor_tick", "first", T0)
            first_written.set()
            await asyncio.sleep(0.3)  # the second writer is now waiting on this row

    async def second() -> None:
        await first_written.wait()
        async with ctx.db.write() as conn:
            await monitor_store.set_value(conn, "monitor_tick", "second", T0 + timedelta(1))

    await asyncio.gather(first(), second())

    async with ctx.db.read() as conn:
        assert await monitor_store.get_value(conn, "monitor_tick") == "second"


async def test_a_stored_value_is_replaced(ctx: Context) -> None:
    for value in ("one", "two"):
        async with ctx.db.write() as conn:
            await monitor_store.set_value(conn, "monitor_outages", value, T0)
    async with ctx.db.read() as conn:
        assert await monitor_store.get_value(conn, "monitor_outages") == "two"

"""Numbers for `/metrics` that come from the ledger (the same from every process)."""

from __future__ import annotations

import asyncio

from cronkeeper.service.context import Context
from cronkeeper.store import runs as run_store


async def metrics_exposition(ctx: Context) -> bytes:
    """Refresh the queue gauges from the ledger and render every metric."""
    now = ctx.clock.now()
    async with ctx.db.read() as conn:
        queues = await run_store.queue_summary(conn)
    ctx.metrics.queue_depth.clear()
    ctx.metrics.queue_oldest_age.clear()
    for queue, (depth, oldest) in queues.items():
        ctx.metrics.queue_depth.labels(queue).set(depth)
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        ctx.metrics.queue_oldest_age.labels(queue).set(max(0.0, age))
    # Rendering many series takes a while: do it off the event loop the runtime shares.
    return await asyncio.to_thread(ctx.metrics.exposition)

"""Node registry use cases: a process announces itself, heartbeats, and signs off."""

from __future__ import annotations

import os
import socket

from cronkeeper import __version__
from cronkeeper.service.context import Context
from cronkeeper.store import nodes as node_store


async def register(ctx: Context, node_id: str, *, roles: str) -> None:
    """Record this process as a node."""
    async with ctx.db.write() as conn:
        await node_store.register_node(
            conn,
            node_id,
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            roles=roles,
            version=__version__,
            now=ctx.clock.now(),
        )


async def heartbeat(ctx: Context, node_id: str) -> None:
    """This node is alive."""
    async with ctx.db.write() as conn:
        await node_store.heartbeat_node(conn, node_id, ctx.clock.now())


async def stop(ctx: Context, node_id: str) -> None:
    """This node stopped cleanly."""
    async with ctx.db.write() as conn:
        await node_store.stop_node(conn, node_id, ctx.clock.now())

"""Nodes: each running `cronkeeper serve` process registers and heartbeats here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.store.tables import nodes


async def register_node(
    conn: AsyncConnection,
    node_id: str,
    *,
    hostname: str,
    pid: int,
    roles: str,
    version: str,
    now: datetime,
) -> None:
    """Record a starting process."""
    await conn.execute(
        nodes.insert().values(
            id=node_id,
            hostname=hostname,
            pid=pid,
            roles=roles,
            version=version,
            started_at=now,
            heartbeat_at=now,
        )
    )


async def heartbeat_node(conn: AsyncConnection, node_id: str, now: datetime) -> None:
    """The process is alive."""
    await conn.execute(update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=now))


async def stop_node(conn: AsyncConnection, node_id: str, now: datetime) -> None:
    """The process stopped cleanly."""
    await conn.execute(update(nodes).where(nodes.c.id == node_id).values(stopped_at=now))

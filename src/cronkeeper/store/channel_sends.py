"""The channels' send log: the per-channel rate limit every notifier process shares.

One row per message sent to a channel (a digest is one row for all the notifications it
carries), written in the transaction that claims the message, before it is sent.

Race prevented: two notifiers both taking the last free place in a channel's window.
`lock_channels` locks the channels' rows first — on PostgreSQL `FOR NO KEY UPDATE` (which
does not block inserting notifications that reference the channel), in id order so two
claims never deadlock; on SQLite the write transaction already excludes every other
writer — then `recent_sends` reads the window and `record_sends` takes the places, all in
one transaction. A second notifier waits for the lock and then counts the first's places
(PostgreSQL's read committed: each statement sees what committed before it began).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.store.tables import channel_sends, channels


async def lock_channels(conn: AsyncConnection, channel_ids: Sequence[uuid.UUID]) -> None:
    """Hold the channels' send windows until this transaction ends (see the module)."""
    if not channel_ids or conn.dialect.name != "postgresql":
        return
    query = (
        select(channels.c.id)
        .where(channels.c.id.in_(set(channel_ids)))
        .order_by(channels.c.id)
        .with_for_update(key_share=True)
    )
    await conn.execute(query)


async def recent_sends(
    conn: AsyncConnection, channel_ids: Sequence[uuid.UUID], since: datetime
) -> dict[uuid.UUID, list[datetime]]:
    """When each channel was sent a message after `since`, oldest first (channels with
    none are absent)."""
    if not channel_ids:
        return {}
    query = (
        select(channel_sends.c.channel_id, channel_sends.c.sent_at)
        .where(channel_sends.c.channel_id.in_(set(channel_ids)), channel_sends.c.sent_at > since)
        .order_by(channel_sends.c.sent_at)
    )
    found: dict[uuid.UUID, list[datetime]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.channel_id, []).append(row.sent_at)
    return found


async def record_sends(
    conn: AsyncConnection, sends: Sequence[tuple[uuid.UUID, datetime, int]]
) -> None:
    """Log messages (channel, sent at, how many notifications each carries), one
    executemany."""
    if sends:
        rows = [
            {"channel_id": channel_id, "sent_at": at, "notification_count": count}
            for channel_id, at, count in sends
        ]
        await conn.execute(channel_sends.insert(), rows)


async def forget_sends(
    conn: AsyncConnection, channel_ids: Sequence[uuid.UUID], before: datetime
) -> None:
    """Delete the channels' log rows at or before `before` (out of the window): the log
    keeps about `limit` rows per channel."""
    if channel_ids:
        await conn.execute(
            delete(channel_sends).where(
                channel_sends.c.channel_id.in_(set(channel_ids)),
                channel_sends.c.sent_at <= before,
            )
        )

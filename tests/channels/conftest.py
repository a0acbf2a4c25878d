"""Fixtures for the channel and notifier tests: a context whose SSRF policy allows
127.0.0.1 (where every peer listens), the real peers, and helpers that seed jobs,
channels and alerts. Alerts are inserted as rows, the way the monitor queues them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from cronkeeper.api.app import create_app
from cronkeeper.domain.models import Actor
from cronkeeper.domain.notifications import SendWindow
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.domain.states import KeyRole
from cronkeeper.runtime.notifier import Notifier
from cronkeeper.service import channels as channel_service
from cronkeeper.service import jobs as job_service
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.service.setup import open_context
from cronkeeper.store.tables import alerts, channels, flips, jobs, notifications
from cronkeeper.testing import FakeClock

from .peers import Receiver, SmtpServer

ALLOW_LOOPBACK = SsrfPolicy.from_settings_values("127.0.0.1/32", "", "")
CHANNELS = "/api/v1/projects/default/channels"


@pytest.fixture
async def ctx(db_url: str, clock: FakeClock) -> AsyncIterator[Context]:
    """The ledger with the fake clock, allowed to reach peers on 127.0.0.1."""
    context = await open_context(
        db_url, clock=clock, base_url="http://cronkeeper.test", ssrf=ALLOW_LOOPBACK
    )
    async with context.db.write() as conn:
        await ensure_project(conn, "default", clock.now())
    yield context
    await context.db.dispose()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    peer = await Receiver().start()
    yield peer
    await peer.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@dataclass(frozen=True)
class Keys:
    read: str
    write: str
    admin: str


@pytest.fixture
async def keys(ctx: Context, admin: Actor) -> Keys:
    async def make(role: KeyRole, name: str) -> str:
        created = await key_service.create_key(
            ctx, admin, project_slug="default", role=role, name=name
        )
        return created.plaintext

    return Keys(
        await make(KeyRole.READ, "reader"),
        await make(KeyRole.WRITE, "writer"),
        await make(KeyRole.ADMIN, "boss"),
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def client(ctx: Context, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """An API client acting with the admin key of project `default`."""
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=bearer(keys.admin)
    ) as http:
        yield http


# ---------------------------------------------------------------------------
# seeding


async def make_channel(
    ctx: Context, admin: Actor, name: str, kind: str, config: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    body = {"name": name, "kind": kind, "config": config, **fields}
    created = await channel_service.create_channel(ctx, admin, "default", body)
    return created.model_dump()


async def make_job(
    ctx: Context, admin: Actor, slug: str, channels: list[str] | None = None, state: str = "down"
) -> uuid.UUID:
    """A heartbeat job of project `default` in monitor `state`."""
    body: dict[str, Any] = {"slug": slug, "name": f"Job {slug}", "kind": "heartbeat"}
    if channels is not None:
        body["alerts"] = {"channels": channels}
    created = await job_service.create_job(ctx, admin, "default", body)
    job_id = uuid.UUID(created.id)
    await set_state(ctx, job_id, state)
    return job_id


async def set_state(ctx: Context, job_id: uuid.UUID, state: str) -> None:
    async with ctx.db.write() as conn:
        await conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(monitor_state=state, state_since=ctx.clock.now())
        )


async def add_alert(
    ctx: Context,
    job_id: uuid.UUID,
    event: str,
    *,
    delay: float = 0.0,
    reminder: bool = False,
    reason: str = "missed",
    run_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> int:
    """A flip (unless a reminder) and the alert the monitor would queue for it."""
    at = at or ctx.clock.now()
    async with ctx.db.write() as conn:
        flip_id = None
        if not reminder and event in ("down", "up"):
            old, new = ("up", "down") if event == "down" else ("down", "up")
            result = await conn.execute(
                flips.insert()
                .values(job_id=job_id, old_state=old, new_state=new, reason=reason, created_at=at)
                .returning(flips.c.id)
            )
            flip_id = result.scalar_one()
        project_id = (
            await conn.execute(select(jobs.c.project_id).where(jobs.c.id == job_id))
        ).scalar_one()
        result = await conn.execute(
            alerts.insert()
            .values(
                project_id=project_id,
                job_id=job_id,
                flip_id=flip_id,
                run_id=run_id,
                event=event,
                reminder=reminder,
                reason=reason,
                created_at=at,
                deliver_at=at + timedelta(seconds=delay),
            )
            .returning(alerts.c.id)
        )
        alert_id: int = result.scalar_one()
    return alert_id


async def alert_row(ctx: Context, alert_id: int) -> Any:
    async with ctx.db.read() as conn:
        return (await conn.execute(select(alerts).where(alerts.c.id == alert_id))).mappings().one()


async def notification_rows(ctx: Context) -> list[Any]:
    async with ctx.db.read() as conn:
        query = select(notifications, channels.c.name.label("channel")).join(
            channels, channels.c.id == notifications.c.channel_id
        )
        rows = await conn.execute(query.order_by(notifications.c.created_at, channels.c.name))
        return list(rows.mappings())


async def channel_row(ctx: Context, name: str) -> Any:
    async with ctx.db.read() as conn:
        return (
            (await conn.execute(select(channels).where(channels.c.name == name))).mappings().one()
        )


async def pass_once(notifier: Notifier) -> int:
    """One notifier pass, waiting for the deliveries it started."""
    started = await notifier.tick()
    await notifier.drain()
    return started


@pytest.fixture
async def notifier(ctx: Context) -> AsyncIterator[Notifier]:
    loop = Notifier(ctx, window=SendWindow(limit=30, window=60.0))
    yield loop
    await loop.drain()
    await loop.dispatcher.close()

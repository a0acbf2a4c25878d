"""Channel use cases: create, list, show, edit, delete, test, and a channel's deliveries.

Mutations need an admin key (DESIGN §2) and are audited as `channel.*` with secrets
masked in the diff. An update (any PATCH) clears `disabled_reason`: that is how a
channel disabled by a permanent delivery error is switched back on.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronkeeper.channels import Dispatcher
from cronkeeper.domain.jobs import changed_fields, merge_patch
from cronkeeper.domain.models import Actor
from cronkeeper.domain.notifications import (
    Channel,
    Delivery,
    JobRef,
    Message,
    message_to_payload,
)
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import CronkeeperError, FieldError, InvalidInput, NotFound
from cronkeeper.service.audit import project_mutation
from cronkeeper.service.channel_schemas import (
    NAME_PATTERN,
    ChannelOut,
    NotificationOut,
    mask_config,
    parse_channel_body,
    unmask_config,
)
from cronkeeper.service.context import Context
from cronkeeper.service.pagination import decode_cursor, encode_cursor, invalid_cursor
from cronkeeper.service.projects import require_project, require_role
from cronkeeper.service.validation import load_body
from cronkeeper.store import channel_sends
from cronkeeper.store import channels as channel_store
from cronkeeper.store.channels import Notification
from cronkeeper.store.engine import Connection

ADMIN = KeyRole.ADMIN


@dataclass(frozen=True)
class ChannelPage:
    items: list[ChannelOut]
    next_cursor: str | None


@dataclass(frozen=True)
class NotificationPage:
    items: list[NotificationOut]
    next_cursor: str | None


def masked_body(channel: Channel) -> dict[str, Any]:
    """The channel body with secrets masked (responses and audit diffs)."""
    return {
        "name": channel.name,
        "kind": channel.kind,
        "config": mask_config(channel.kind, channel.config),
        "default": channel.is_default,
    }


def channel_out(channel: Channel) -> ChannelOut:
    return ChannelOut(
        **masked_body(channel),
        id=str(channel.id),
        disabled=channel.disabled_reason is not None,
        disabled_reason=channel.disabled_reason,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


def notification_out(item: Notification, channel_name: str) -> NotificationOut:
    return NotificationOut(
        **{k: v for k, v in item.__dict__.items() if k not in ("id", "channel_id")},
        id=str(item.id),
        channel=channel_name,
    )


async def require_channel(conn: Connection, project_id: uuid.UUID, name: str) -> Channel:
    """The named channel of the project; NotFound otherwise."""
    if not _valid_name(name):  # no such channel can exist; NUL bytes would upset PostgreSQL
        raise NotFound("channel", name)
    channel = await channel_store.get_channel(conn, project_id, name)
    if channel is None:
        raise NotFound("channel", name)
    return channel


def _valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


async def create_channel(ctx: Context, actor: Actor, project_slug: str, body: object) -> ChannelOut:
    """Validate and store a new channel; Conflict if the name is taken in the project."""
    async with project_mutation(
        ctx, actor, project_slug, "channel.create", "channel:?", role=ADMIN
    ) as (conn, mutation, project):
        body = load_body(body)
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            mutation.target = f"channel:{body['name'][:100]}"
        name, kind, config, default = parse_channel_body(body)
        now = ctx.clock.now()
        channel = Channel(uuid.uuid4(), project.id, name, kind, config, default, None, now, now)
        await channel_store.insert_channel(conn, channel)
        mutation.diff = changed_fields({}, masked_body(channel))
    return channel_out(channel)


async def get_channel(ctx: Context, actor: Actor, project_slug: str, name: str) -> ChannelOut:
    """One channel (secrets masked; `disabled_reason` says why it is off, if it is)."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        return channel_out(await require_channel(conn, project.id, name))


async def list_channels(
    ctx: Context, actor: Actor, project_slug: str, cursor: str | None, limit: int
) -> ChannelPage:
    """A page of the project's channels by name."""
    after = decode_cursor(cursor, ("name",))["name"] if cursor else None
    if after is not None and not (isinstance(after, str) and _valid_name(after)):
        raise invalid_cursor()
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        found = await channel_store.list_channels(conn, project.id, after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return ChannelPage(
        [channel_out(c) for c in page], encode_cursor({"name": page[-1].name}) if more else None
    )


async def update_channel(
    ctx: Context, actor: Actor, project_slug: str, name: str, patch: object
) -> ChannelOut:
    """Apply a JSON merge patch, re-validate the whole channel, and switch it back on."""
    async with project_mutation(
        ctx, actor, project_slug, "channel.update", f"channel:{name}", role=ADMIN
    ) as (conn, mutation, project):
        channel = await require_channel(conn, project.id, name)
        patch = load_body(patch)
        if not isinstance(patch, dict):
            raise InvalidInput(FieldError("body", "must be a JSON object"))
        stored = {
            "name": channel.name,
            "kind": channel.kind,
            "config": channel.config,
            "default": channel.is_default,
        }
        merged = merge_patch(stored, patch)
        if isinstance(merged.get("config"), dict) and merged.get("kind") == channel.kind:
            merged["config"] = unmask_config(channel.kind, merged["config"], channel.config)
        new_name, kind, config, default = parse_channel_body(merged)
        if new_name != name:
            mutation.target = f"channel:{name}→{new_name}"
        updated = Channel(
            channel.id,
            channel.project_id,
            new_name,
            kind,
            config,
            default,
            None,
            channel.created_at,
            ctx.clock.now(),
        )
        await channel_store.update_channel(conn, updated)
        mutation.diff = changed_fields(
            {**masked_body(channel), "disabled_reason": channel.disabled_reason},
            {**masked_body(updated), "disabled_reason": None},
        )
    ctx.wakeups.alerts_pending.set()  # pending deliveries may go again
    return channel_out(updated)


async def delete_channel(ctx: Context, actor: Actor, project_slug: str, name: str) -> None:
    """Delete a channel and its delivery history (jobs naming it fall back to nothing)."""
    async with project_mutation(
        ctx, actor, project_slug, "channel.delete", f"channel:{name}", role=ADMIN
    ) as (conn, mutation, project):
        channel = await require_channel(conn, project.id, name)
        await channel_store.delete_channel(conn, channel.id)
        mutation.diff = changed_fields(masked_body(channel), {})


def test_message(ctx: Context, project_slug: str, now: datetime) -> Message:
    """What `channels test` sends: event `test`, an example job, no run."""
    return Message(
        event="test",
        project=project_slug,
        job=JobRef("example-job", "Example job", f"{ctx.base_url}/jobs/example-job"),
        status="test",
        reason="test message: if you read this, the channel works",
        at=now,
    )


async def test_channel(ctx: Context, actor: Actor, project_slug: str, name: str) -> NotificationOut:
    """Send a test message now and record it; a failed delivery is answered (status
    `failed` with its error), not raised. A test never disables the channel, and is not
    held back by its rate limit (it counts toward it)."""
    target = f"channel:{name}"
    try:
        async with ctx.db.read() as conn:
            project = await require_project(conn, actor, project_slug)
            require_role(actor, ADMIN)
            channel = await require_channel(conn, project.id, name)
    except CronkeeperError:  # audit the refusal the way every mutation does
        async with project_mutation(
            ctx, actor, project_slug, "channel.test", target, role=ADMIN
        ) as (
            conn,
            _,
            project,
        ):
            await require_channel(conn, project.id, name)
        raise
    message = test_message(ctx, project_slug, ctx.clock.now())
    async with Dispatcher(ctx.ssrf) as dispatcher:
        delivery = await dispatcher.send(channel.kind, channel.config, message)
    async with project_mutation(ctx, actor, project_slug, "channel.test", target, role=ADMIN) as (
        conn,
        mutation,
        project,
    ):
        channel = await require_channel(conn, project.id, name)
        item = _test_notification(channel, message, delivery, ctx.clock.now())
        await channel_store.insert_notification(conn, item)
        # sent at once, never held back, but the receiver got it: it counts toward the
        # channel's rate limit like any message
        await channel_sends.record_sends(conn, [(channel.id, item.created_at, 1)])
        mutation.diff = {"status": [None, item.status]}
        if item.error:
            mutation.diff["error"] = [None, item.error]
    return notification_out(item, channel.name)


def _test_notification(
    channel: Channel, message: Message, delivery: Delivery, now: datetime
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        alert_id=None,
        channel_id=channel.id,
        event="test",
        payload=message_to_payload(message),
        status="sent" if delivery.ok else "failed",
        attempts=1,
        error=delivery.error,
        latency_ms=delivery.latency_ms,
        created_at=message.at,
        sent_at=now if delivery.ok else None,
        next_attempt_at=None,
    )


async def list_notifications(
    ctx: Context, actor: Actor, project_slug: str, name: str, cursor: str | None, limit: int
) -> NotificationPage:
    """A channel's deliveries, newest first (keyset pages)."""
    before = _notification_cursor(cursor) if cursor else None
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        channel = await require_channel(conn, project.id, name)
        found = await channel_store.list_notifications(conn, channel.id, before, limit + 1)
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]
        next_cursor = encode_cursor({"at": last.created_at.isoformat(), "id": str(last.id)})
    return NotificationPage([notification_out(n, channel.name) for n in page], next_cursor)


def _notification_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    values = decode_cursor(cursor, ("at", "id"))
    try:
        at = datetime.fromisoformat(values["at"])
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, uuid.UUID(values["id"])
    except (TypeError, ValueError):
        raise invalid_cursor() from None

"""What dashboard sessions need from the ledger: the signing secret shared by every
process, the actor behind a session's key, and the projects a viewer may switch to."""

from __future__ import annotations

import secrets

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service.context import Context
from cronkeeper.store import keys as key_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import users as user_store


async def session_secret(ctx: Context) -> bytes:
    """The secret that signs session cookies: created on first use in `system_values`
    (key `session_secret`), so several processes on one database accept each other's."""
    async with ctx.db.write() as conn:
        value = await user_store.get_or_create_secret(
            conn, user_store.SESSION_SECRET, secrets.token_urlsafe(48), ctx.clock.now()
        )
    return value.encode()


async def key_actor(ctx: Context, prefix: str, ip: str | None) -> Actor | None:
    """The actor of the key with this prefix, or None once it is revoked or gone."""
    async with ctx.db.read() as conn:
        key = await key_store.get_key_by_prefix(conn, prefix)
    if key is None or key.revoked_at is not None:
        return None
    return Actor(name=key.name, role=key.role, project_slug=key.project_slug, ip=ip)


async def visible_projects(ctx: Context, actor: Actor) -> list[str]:
    """Slugs of the projects the actor may open: all of them for admins, else their own."""
    if actor.role is not KeyRole.ADMIN and actor.project_slug is not None:
        return [actor.project_slug]
    async with ctx.db.read() as conn:
        return [project.slug for project in await project_store.list_projects(conn)]

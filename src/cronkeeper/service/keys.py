"""API keys: create (shown once), list, revoke, and authenticate a presented key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cronkeeper.domain import keys as key_format
from cronkeeper.domain.models import Actor, ApiKey
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import Conflict, FieldError, InvalidInput, NotFound, Unauthenticated
from cronkeeper.service.audit import audited
from cronkeeper.service.context import Context
from cronkeeper.service.projects import DEFAULT_PROJECT, ensure_project
from cronkeeper.store import keys as key_store
from cronkeeper.store import projects as project_store

#: last_used_at is refreshed at most this often, so reads do not turn into writes.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    plaintext: str


async def create_key(
    ctx: Context, actor: Actor, *, project_slug: str, role: KeyRole, name: str
) -> CreatedKey:
    """Create a key (and its project if new); the plaintext is returned once, never stored."""
    name = name.strip()
    async with audited(ctx, actor, "key.create", name or "?") as (conn, mutation):
        if not name or len(name) > 100:
            raise InvalidInput(FieldError("name", "must be 1-100 characters"))
        now = ctx.clock.now()
        project = await ensure_project(conn, project_slug, now)
        new = key_format.generate_key()
        await key_store.insert_key(
            conn,
            project_id=project.id,
            name=name,
            prefix=new.prefix,
            secret_hash=new.secret_hash,
            role=role,
            now=now,
        )
        mutation.project_id = project.id
        mutation.target = f"key:{new.prefix}"
        mutation.diff = {"name": [None, name], "role": [None, role.value]}
        key = await key_store.get_key_by_prefix(conn, new.prefix)
        assert key is not None
        return CreatedKey(key, new.plaintext)


async def list_keys(ctx: Context, project_slug: str | None = None) -> list[ApiKey]:
    """Keys of one project, or of all projects."""
    async with ctx.db.read() as conn:
        project_id = None
        if project_slug is not None:
            project = await project_store.get_project(conn, project_slug)
            if project is None:
                raise NotFound("project", project_slug)
            project_id = project.id
        return await key_store.list_keys(conn, project_id)


async def revoke_key(ctx: Context, actor: Actor, key_ref: str) -> ApiKey:
    """Revoke a key given its prefix (or the whole key); NotFound if no such key."""
    prefix = _prefix_of(key_ref)
    async with audited(ctx, actor, "key.revoke", f"key:{prefix}") as (conn, mutation):
        key = await key_store.get_key_by_prefix(conn, prefix)
        if key is None:
            raise NotFound("key", prefix)
        mutation.project_id = key.project_id
        if not await key_store.revoke_key(conn, key.id, ctx.clock.now()):
            raise Conflict(f"key {prefix} is already revoked", field="key")
        mutation.diff = {"revoked": [False, True], "name": [key.name, key.name]}
        return key


def _prefix_of(key_ref: str) -> str:
    parts = key_format.split_key(key_ref)
    return parts[0] if parts else key_ref.strip()


async def authenticate(ctx: Context, presented: str, ip: str | None) -> Actor:
    """The actor behind a presented key; Unauthenticated for malformed/unknown/revoked keys."""
    parts = key_format.split_key(presented)
    if parts is None:
        raise Unauthenticated("malformed API key (expected ck_<prefix>_<secret>)")
    prefix, secret = parts
    async with ctx.db.read() as conn:
        key = await key_store.get_key_by_prefix(conn, prefix)
    if key is None or not key_format.secret_matches(secret, key.secret_hash):
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated("this API key has been revoked")
    now = ctx.clock.now()
    if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
        async with ctx.db.write() as conn:
            await key_store.touch_key(conn, key.id, now)
    return Actor(name=key.name, role=key.role, project_slug=key.project_slug, ip=ip)


async def bootstrap(ctx: Context) -> str | None:
    """On a fresh ledger: project `default` plus an admin key, returned once. Else None."""
    system = Actor(name="cronkeeper", role=KeyRole.ADMIN, project_slug=None)
    async with ctx.db.read() as conn:
        if await key_store.count_active_admin_keys(conn) > 0:
            return None
    created = await create_key(
        ctx, system, project_slug=DEFAULT_PROJECT, role=KeyRole.ADMIN, name="first-admin"
    )
    return created.plaintext


def local_actor() -> Actor:
    """The actor for commands run on the server's own machine against the database."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "local"
    return Actor(name=f"local:{user}", role=KeyRole.ADMIN, project_slug=None)

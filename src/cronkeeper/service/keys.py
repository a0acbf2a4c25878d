"""API keys: create (shown once), list, revoke, and authenticate a presented key."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

from cronkeeper.domain import keys as key_format
from cronkeeper.domain.models import Actor, ApiKey
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import Conflict, FieldError, InvalidInput, NotFound, Unauthenticated
from cronkeeper.service.audit import audited
from cronkeeper.service.context import Context
from cronkeeper.service.projects import DEFAULT_PROJECT, ensure_project
from cronkeeper.store import keys as key_store
from cronkeeper.store import projects as project_store
from cronkeeper.store.engine import Database

#: last_used_at is refreshed at most this often, so reads do not turn into writes.
TOUCH_EVERY = timedelta(minutes=1)

#: A key read from the ledger and found unrevoked is trusted this many seconds before it
#: is read again, so most API requests authenticate without a read transaction. Revoking
#: through this process forgets every trusted key at once; a key revoked by another
#: process (`cronkeeper keys revoke` runs apart from the server) is refused here within
#: this time. The dashboard re-checks its sessions' keys as often (web/auth.py).
TRUST_SECONDS = 5.0


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
    _trusted(ctx).forget_all()  # committed: no request of this process may use it now
    return key


def _prefix_of(key_ref: str) -> str:
    parts = key_format.split_key(key_ref)
    return parts[0] if parts else key_ref.strip()


async def authenticate(ctx: Context, presented: str, ip: str | None) -> Actor:
    """The actor behind a presented key; Unauthenticated for malformed/unknown/revoked keys.
    A valid key is read from the ledger at most every TRUST_SECONDS (see there)."""
    parts = key_format.split_key(presented)
    if parts is None:
        raise Unauthenticated("malformed API key (expected ck_<prefix>_<secret>)")
    prefix, secret = parts
    trusted = _trusted(ctx)
    key = trusted.get(prefix, ctx.clock.monotonic())
    if key is None:
        key = await _read_key(ctx, trusted, prefix)
    if key is None or not key_format.secret_matches(secret, key.secret_hash):
        raise Unauthenticated("unknown API key")
    if key.revoked_at is not None:
        raise Unauthenticated("this API key has been revoked")
    now = ctx.clock.now()
    if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
        async with ctx.db.write() as conn:
            await key_store.touch_key(conn, key.id, now)
        trusted.touched(key, now)
    return Actor(name=key.name, role=key.role, project_slug=key.project_slug, ip=ip)


@dataclass
class _TrustedKeys:
    """Unrevoked keys by prefix, each with when it was read. `generation` moves on with
    every revocation here, so a read that began before one does not store what it saw."""

    keys: dict[str, tuple[float, ApiKey]] = field(default_factory=dict)
    generation: int = 0

    def get(self, prefix: str, now: float) -> ApiKey | None:
        found = self.keys.get(prefix)
        return found[1] if found is not None and now - found[0] < TRUST_SECONDS else None

    def store(self, key: ApiKey, read_at: float, generation: int) -> None:
        if generation == self.generation and key.revoked_at is None:
            self.keys[key.prefix] = (read_at, key)

    def touched(self, key: ApiKey, now: datetime) -> None:
        found = self.keys.get(key.prefix)
        if found is not None and found[1].id == key.id:
            self.keys[key.prefix] = (found[0], replace(found[1], last_used_at=now))

    def forget_all(self) -> None:
        self.generation += 1
        self.keys.clear()


#: Per database (tests run several in one process), gone with it.
_trusted_by_database: WeakKeyDictionary[Database, _TrustedKeys] = WeakKeyDictionary()


def _trusted(ctx: Context) -> _TrustedKeys:
    trusted = _trusted_by_database.get(ctx.db)
    if trusted is None:
        trusted = _trusted_by_database[ctx.db] = _TrustedKeys()
    return trusted


async def _read_key(ctx: Context, trusted: _TrustedKeys, prefix: str) -> ApiKey | None:
    """The key as the ledger has it now, trusted from here on if it is not revoked."""
    read_at, generation = ctx.clock.monotonic(), trusted.generation
    async with ctx.db.read() as conn:
        key = await key_store.get_key_by_prefix(conn, prefix)
    trusted.keys.pop(prefix, None)
    if key is not None:
        trusted.store(key, read_at, generation)
    return key


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

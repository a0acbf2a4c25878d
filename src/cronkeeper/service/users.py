"""Dashboard users: create (argon2-hashed password), and log in with a password.

Hashing and verifying take tens of milliseconds of CPU on purpose, so they run in a
thread and never stall the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.domain.users import User, check_new_user
from cronkeeper.errors import InvalidInput, Unauthenticated
from cronkeeper.service.audit import audited
from cronkeeper.service.context import Context
from cronkeeper.service.projects import ensure_project
from cronkeeper.store import users as user_store

_hasher = PasswordHasher()
#: Verified when the username is unknown, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def create_user(
    ctx: Context, actor: Actor, *, project_slug: str, role: KeyRole, username: str, password: str
) -> User:
    """Create a user (and the project if new); InvalidInput for a bad name or password,
    Conflict if the name is taken. Audited as `user.create` (never the password)."""
    async with audited(ctx, actor, "user.create", f"user:{username[:64]}") as (conn, mutation):
        if errors := check_new_user(username, password):
            raise InvalidInput(errors)
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        now = ctx.clock.now()
        project = await ensure_project(conn, project_slug, now)
        mutation.project_id = project.id
        await user_store.insert_user(
            conn,
            project_id=project.id,
            username=username,
            password_hash=password_hash,
            role=role,
            now=now,
        )
        mutation.diff = {"name": [None, username], "role": [None, role.value]}
        user = await user_store.get_user(conn, username)
    assert user is not None
    return user


async def log_in(ctx: Context, username: str, password: str, ip: str | None) -> Actor:
    """The actor behind a username and password; Unauthenticated (one message for every
    failure, so it does not reveal which names exist) otherwise."""
    async with ctx.db.read() as conn:
        user = await user_store.get_user(conn, username[:100])
    stored = user.password_hash if user and user.disabled_at is None else _DUMMY_HASH
    if not await asyncio.to_thread(_verifies, stored, password[:1024]) or stored == _DUMMY_HASH:
        raise Unauthenticated("unknown user name or wrong password")
    assert user is not None
    return user_actor(user, ip)


def _verifies(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def user_actor(user: User, ip: str | None) -> Actor:
    """The audit actor of a user: their name, role and project."""
    return Actor(name=user.username, role=user.role, project_slug=user.project_slug, ip=ip)


async def active_user(ctx: Context, username: str, ip: str | None) -> Actor | None:
    """The actor of a user who still exists and is not disabled (sessions re-check it)."""
    async with ctx.db.read() as conn:
        user = await user_store.get_user(conn, username)
    if user is None or user.disabled_at is not None:
        return None
    return user_actor(user, ip)

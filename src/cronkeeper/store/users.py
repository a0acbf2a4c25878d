"""Dashboard users (password logins), and the shared secret that signs their sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import RowMapping, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.states import KeyRole
from cronkeeper.domain.users import User
from cronkeeper.errors import Conflict
from cronkeeper.store.errors import is_unique_violation
from cronkeeper.store.tables import projects, system_values, users


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"],
        project_id=row["project_id"],
        project_slug=row["project_slug"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=KeyRole(row["role"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


async def insert_user(
    conn: AsyncConnection,
    *,
    project_id: uuid.UUID,
    username: str,
    password_hash: str,
    role: KeyRole,
    now: datetime,
) -> uuid.UUID:
    """Store a new user; Conflict (field `name`) if the username is taken."""
    user_id = uuid.uuid4()
    statement = users.insert().values(
        id=user_id,
        project_id=project_id,
        username=username,
        password_hash=password_hash,
        role=role.value,
        created_at=now,
    )
    try:
        async with conn.begin_nested():
            await conn.execute(statement)
    except IntegrityError as error:
        if is_unique_violation(error):
            raise Conflict(f"a user named {username!r} already exists", field="name") from None
        raise
    return user_id


async def get_user(conn: AsyncConnection, username: str) -> User | None:
    """The user with this username (disabled or not), or None."""
    query = (
        select(users, projects.c.slug.label("project_slug"))
        .join(projects, projects.c.id == users.c.project_id)
        .where(users.c.username == username)
    )
    row = (await conn.execute(query)).mappings().first()
    return _user(row) if row else None


SESSION_SECRET = "session_secret"  # noqa: S105  (the name of a row, not a secret)


async def get_or_create_secret(
    conn: AsyncConnection, key: str, candidate: str, now: datetime
) -> str:
    """The value stored under `key` in `system_values`, storing `candidate` if there is none.

    Several processes may start together: the primary key lets one insert win; the others
    read the winner's value, so every process signs with the same secret."""
    query = select(system_values.c.value).where(system_values.c.key == key)
    found = (await conn.execute(query)).scalar_one_or_none()
    if found is not None:
        return str(found)
    try:
        async with conn.begin_nested():
            await conn.execute(
                system_values.insert().values(key=key, value=candidate, updated_at=now)
            )
    except IntegrityError:
        return str((await conn.execute(query)).scalar_one())
    return candidate

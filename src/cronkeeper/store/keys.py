"""API keys: stored as prefix + hash, never in clear."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import ApiKey
from cronkeeper.domain.states import KeyRole
from cronkeeper.store.tables import api_keys, projects

_columns = (api_keys, projects.c.slug.label("project_slug"))


def _key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        project_id=row["project_id"],
        project_slug=row["project_slug"],
        name=row["name"],
        prefix=row["prefix"],
        secret_hash=row["secret_hash"],
        role=KeyRole(row["role"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def _select() -> Select[Any]:
    return select(*_columns).join(projects, projects.c.id == api_keys.c.project_id)


async def insert_key(
    conn: AsyncConnection,
    *,
    project_id: uuid.UUID,
    name: str,
    prefix: str,
    secret_hash: str,
    role: KeyRole,
    now: datetime,
) -> uuid.UUID:
    """Store a new key; returns its id."""
    key_id = uuid.uuid4()
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            project_id=project_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            role=role.value,
            created_at=now,
        )
    )
    return key_id


async def get_key_by_prefix(conn: AsyncConnection, prefix: str) -> ApiKey | None:
    """The key with this prefix (revoked or not), or None."""
    row = (await conn.execute(_select().where(api_keys.c.prefix == prefix))).mappings().first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection, project_id: uuid.UUID | None) -> list[ApiKey]:
    """Keys of one project (or all), oldest first."""
    query = _select().order_by(api_keys.c.created_at, api_keys.c.prefix)
    if project_id is not None:
        query = query.where(api_keys.c.project_id == project_id)
    return [_key(row) for row in (await conn.execute(query)).mappings()]


async def count_active_admin_keys(conn: AsyncConnection) -> int:
    """How many unrevoked admin keys exist anywhere (bootstrap creates one when zero)."""
    query = select(func.count()).where(
        api_keys.c.role == KeyRole.ADMIN.value, api_keys.c.revoked_at.is_(None)
    )
    return int((await conn.execute(query)).scalar_one())


async def revoke_key(conn: AsyncConnection, key_id: uuid.UUID, now: datetime) -> bool:
    """Mark a key revoked; False if it was already revoked."""
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


async def touch_key(conn: AsyncConnection, key_id: uuid.UUID, now: datetime) -> None:
    """Record that a key was just used."""
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))

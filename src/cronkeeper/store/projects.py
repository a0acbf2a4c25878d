"""Projects: the tenants every other row belongs to."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import Project
from cronkeeper.store.tables import projects


def _project(row: RowMapping) -> Project:
    return Project(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        retention_days=row["retention_days"],
        ping_key=row["ping_key"],
        badge_key=row["badge_key"],
        created_at=row["created_at"],
    )


async def get_project(conn: AsyncConnection, slug: str) -> Project | None:
    """The project with this slug, or None."""
    row = (await conn.execute(select(projects).where(projects.c.slug == slug))).mappings().first()
    return _project(row) if row else None


async def insert_project(
    conn: AsyncConnection,
    slug: str,
    name: str,
    ping_key: str,
    now: datetime,
    badge_key: str | None = None,
) -> Project:
    """Insert a project (the caller checked the slug is free); a random badge key unless
    one is given."""
    values = {
        "id": uuid.uuid4(),
        "slug": slug,
        "name": name,
        "retention_days": 30,
        "ping_key": ping_key,
        "badge_key": badge_key or secrets.token_urlsafe(16),
        "created_at": now,
    }
    await conn.execute(projects.insert().values(**values))
    return Project(**values)  # type: ignore[arg-type]


async def list_projects(conn: AsyncConnection) -> list[Project]:
    """Every project, by slug."""
    rows = (await conn.execute(select(projects).order_by(projects.c.slug))).mappings()
    return [_project(row) for row in rows]

"""Projects: lookup with access checks, and the first-start bootstrap."""

from __future__ import annotations

import secrets
from datetime import datetime

from pydantic import BaseModel

from cronkeeper.domain.jobs import SLUG_RULE, is_valid_slug
from cronkeeper.domain.models import Actor, Project
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import FieldError, Forbidden, InvalidInput, NotFound
from cronkeeper.service.context import Context
from cronkeeper.store import projects as project_store
from cronkeeper.store.engine import Connection

DEFAULT_PROJECT = "default"


async def require_project(conn: Connection, actor: Actor, slug: str) -> Project:
    """The project, if it exists and the actor may act in it; NotFound / Forbidden if not."""
    require_access(actor, slug)
    project = await project_store.get_project(conn, slug)
    if project is None:
        raise NotFound("project", slug)
    return project


def require_access(actor: Actor, slug: str) -> None:
    """Forbidden if the actor may not act in the project; NotFound if no project can have
    this slug. Checked before the project is read."""
    if not actor.may_act_in(slug):
        raise Forbidden(f"this key belongs to project {actor.project_slug!r}, not {slug!r}")
    if not is_valid_slug(slug):  # no such project can exist; NUL bytes would upset PostgreSQL
        raise NotFound("project", slug)


async def ensure_project(conn: Connection, slug: str, now: datetime) -> Project:
    """The project with this slug, created if missing (local commands and bootstrap)."""
    if not is_valid_slug(slug):
        raise InvalidInput(FieldError("project", f"must be {SLUG_RULE}"))
    project = await project_store.get_project(conn, slug)
    if project is None:
        project = await project_store.insert_project(conn, slug, slug, new_ping_key(), now)
    return project


def require_role(actor: Actor, role: KeyRole) -> None:
    """Forbidden unless the actor's role includes `role`."""
    if not actor.role.allows(role):
        raise Forbidden(f"a {actor.role.value} key cannot do this; it needs {role.value}")


def new_ping_key() -> str:
    """An unguessable per-project key (slug-based ping URLs, public badge URLs)."""
    return secrets.token_urlsafe(16)


class ProjectOut(BaseModel):
    slug: str
    name: str
    retention_days: int
    ping_key: str | None  # shown to write and admin keys only: it can create heartbeat jobs
    ping_url_prefix: str | None  # {base_url}/ping/{ping_key}: append /<job-slug>
    badge_url_prefix: str | None = None  # {base_url}/badge/{badge_key}: append /<slug>.svg
    created_at: datetime


async def get_project(ctx: Context, actor: Actor, slug: str) -> ProjectOut:
    """The project's settings and (for write/admin keys) its ping key."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, slug)
    key = project.ping_key if actor.role.allows(KeyRole.WRITE) else None
    return ProjectOut(
        slug=project.slug,
        name=project.name,
        retention_days=project.retention_days,
        ping_key=key,
        ping_url_prefix=f"{ctx.base_url}/ping/{key}" if key else None,
        badge_url_prefix=f"{ctx.base_url}/badge/{project.badge_key}" if key else None,
        created_at=project.created_at,
    )

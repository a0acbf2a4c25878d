"""Recording and reading the audit log.

Successful mutations write their entry inside their own transaction (`record`); a
mutation that was refused is recorded afterwards in a transaction of its own
(`audited` does both), because the refused transaction rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cronkeeper.domain.models import Actor, AuditEntry, Project
from cronkeeper.domain.states import AuditOutcome, KeyRole
from cronkeeper.errors import CronkeeperError, InvalidInput
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project, require_role
from cronkeeper.store import audit as audit_store
from cronkeeper.store.engine import Connection


@dataclass
class Mutation:
    """An audit entry being filled in by a use case while it runs."""

    action: str
    target: str
    project_id: uuid.UUID | None = None
    diff: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def audited(
    ctx: Context, actor: Actor, action: str, target: str
) -> AsyncIterator[tuple[Connection, Mutation]]:
    """One write transaction that ends with a success audit entry, or, if the use case
    raises a CronkeeperError, a `failed` entry written after the rollback."""
    mutation = Mutation(action, target)
    try:
        async with ctx.db.write() as conn:
            yield conn, mutation
            await _insert(conn, ctx, actor, mutation, AuditOutcome.SUCCESS, None)
    except CronkeeperError as error:
        async with ctx.db.write() as conn:
            await _insert(conn, ctx, actor, mutation, AuditOutcome.FAILED, _describe(error))
        raise


@asynccontextmanager
async def project_mutation(
    ctx: Context,
    actor: Actor,
    project_slug: str,
    action: str,
    target: str,
    role: KeyRole = KeyRole.WRITE,
) -> AsyncIterator[tuple[Connection, Mutation, Project]]:
    """An audited write transaction in a project the actor may change (`role` needed):
    NotFound / Forbidden are raised, and audited as failed, before the use case runs."""
    async with audited(ctx, actor, action, target) as (conn, mutation):
        project = await require_project(conn, actor, project_slug)
        mutation.project_id = project.id
        require_role(actor, role)
        yield conn, mutation, project


def _describe(error: CronkeeperError) -> str:
    return error.detail if isinstance(error, InvalidInput) else str(error)


async def _insert(
    conn: Connection,
    ctx: Context,
    actor: Actor,
    mutation: Mutation,
    outcome: AuditOutcome,
    detail: str | None,
) -> None:
    await audit_store.insert_audit(
        conn,
        project_id=mutation.project_id,
        at=ctx.clock.now(),
        actor=actor.name,
        ip=actor.ip,
        action=mutation.action,
        target=_storable(mutation.target)[:200],
        diff=mutation.diff,
        outcome=outcome,
        detail=None if detail is None else _storable(detail),
    )


def _storable(text: str) -> str:
    """Text as the ledger can store it. A refused request may name a job with a NUL byte
    (PostgreSQL refuses NUL in text) or a lone surrogate; both are kept visible as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: tuple[datetime, int] | None = None
    limit: int = 50


async def list_audit(
    ctx: Context, actor: Actor, project_slug: str, query: AuditQuery
) -> list[AuditEntry]:
    """Audit entries of a project, newest first."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        where = audit_store.AuditFilter(project_id=project.id, **query.__dict__)
        return await audit_store.list_audit(conn, where)

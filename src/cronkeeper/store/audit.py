"""The audit log: append-only, one row per mutation attempt."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.domain.models import AuditEntry
from cronkeeper.domain.states import AuditOutcome
from cronkeeper.store.tables import audit_log


@dataclass(frozen=True)
class AuditFilter:
    project_id: uuid.UUID | None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: tuple[datetime, int] | None = None  # keyset cursor: (at, id) of the last row seen
    limit: int = 50


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        project_id=row["project_id"],
        at=row["at"],
        actor=row["actor"],
        ip=row["ip"],
        action=row["action"],
        target=row["target"],
        diff=row["diff"],
        outcome=AuditOutcome(row["outcome"]),
        detail=row["detail"],
    )


async def insert_audit(
    conn: AsyncConnection,
    *,
    project_id: uuid.UUID | None,
    at: datetime,
    actor: str,
    ip: str | None,
    action: str,
    target: str,
    diff: dict[str, Any],
    outcome: AuditOutcome,
    detail: str | None = None,
) -> None:
    """Append one audit entry."""
    await conn.execute(
        audit_log.insert().values(
            project_id=project_id,
            at=at,
            actor=actor,
            ip=ip,
            action=action,
            target=target,
            diff=diff,
            outcome=outcome.value,
            detail=detail,
        )
    )


async def list_audit(conn: AsyncConnection, where: AuditFilter) -> list[AuditEntry]:
    """Entries newest first, filtered; action filter matches a prefix (`job.` → all job actions)."""
    query = select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
    if where.project_id is not None:
        query = query.where(audit_log.c.project_id == where.project_id)
    if where.action:
        if where.action.endswith((".", "*")):
            query = query.where(audit_log.c.action.startswith(where.action.rstrip("*")))
        else:
            query = query.where(audit_log.c.action == where.action)
    if where.outcome:
        query = query.where(audit_log.c.outcome == where.outcome)
    if where.since:
        query = query.where(audit_log.c.at >= where.since)
    if where.until:
        query = query.where(audit_log.c.at < where.until)
    if where.before:
        at, entry_id = where.before
        query = query.where(
            or_(audit_log.c.at < at, and_(audit_log.c.at == at, audit_log.c.id < entry_id))
        )
    rows = (await conn.execute(query.limit(where.limit))).mappings()
    return [_entry(row) for row in rows]

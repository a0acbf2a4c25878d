"""`/api/v1/projects/{project}/audit`"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cronkeeper.api.deps import ActorDep, ContextDep
from cronkeeper.api.routes.common import problems
from cronkeeper.api.schemas import AuditOut, Data, Page
from cronkeeper.service import audit as audit_service
from cronkeeper.service.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/projects/{project}/audit", tags=["audit"])


@router.get("", responses=problems(404))
async def list_audit(
    ctx: ContextDep,
    actor: ActorDep,
    project: str,
    action: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_.*]+$")] = None,
    outcome: Literal["success", "failed"] | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Data[Page[AuditOut]]:
    """Who changed what, newest first. `action=job.` matches every job action."""
    before = None
    if cursor:
        position = decode_cursor(cursor, ("at", "id"))
        before = (datetime.fromisoformat(position["at"]), int(position["id"]))
    query = audit_service.AuditQuery(action, outcome, from_, to, before, limit + 1)
    entries = await audit_service.list_audit(ctx, actor, project, query)
    page = entries[:limit]
    next_cursor = None
    if len(entries) > limit:
        next_cursor = encode_cursor({"at": page[-1].at.isoformat(), "id": page[-1].id})
    items = [AuditOut(**{**e.__dict__, "outcome": e.outcome.value}) for e in page]
    return Data(data=Page(items=items, next_cursor=next_cursor))

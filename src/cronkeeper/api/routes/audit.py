"""`/api/v1/projects/{project}/audit`"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from cronkeeper.api.deps import ActorDep, ContextDep
from cronkeeper.api.routes.common import problems
from cronkeeper.api.schemas import AuditOut, Data, Page
from cronkeeper.service import audit as audit_service
from cronkeeper.service.pagination import decode_cursor, encode_cursor, invalid_cursor

router = APIRouter(prefix="/api/v1/projects/{project}/audit", tags=["audit"])


@router.get("", responses=problems(404))
async def list_audit(
    ctx: ContextDep,
    actor: ActorDep,
    project: str,
    action: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_.*]+$")] = None,
    outcome: Literal["success", "failed"] | None = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Data[Page[AuditOut]]:
    """Who changed what, newest first. `action=job.` matches every job action."""
    before = _position(cursor) if cursor else None
    query = audit_service.AuditQuery(action, outcome, from_, to, before, limit + 1)
    entries = await audit_service.list_audit(ctx, actor, project, query)
    page = entries[:limit]
    next_cursor = None
    if len(entries) > limit:
        next_cursor = encode_cursor({"at": page[-1].at.isoformat(), "id": page[-1].id})
    items = [AuditOut(**{**e.__dict__, "outcome": e.outcome.value}) for e in page]
    return Data(data=Page(items=items, next_cursor=next_cursor))


def _position(cursor: str) -> tuple[datetime, int]:
    """(at, id) of the last entry of the previous page; InvalidInput if tampered with."""
    position = decode_cursor(cursor, ("at", "id"))
    at, entry_id = position["at"], position["id"]
    if not isinstance(at, str) or type(entry_id) is not int or not 0 < entry_id < 2**63:
        raise invalid_cursor()
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise invalid_cursor() from None
    if moment.tzinfo is None:
        raise invalid_cursor()
    return moment, entry_id

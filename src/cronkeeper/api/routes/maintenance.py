"""`/api/v1/projects/{project}/maintenance…`"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from cronkeeper.api.deps import ActorDep, BodyDep, ContextDep
from cronkeeper.api.routes.common import problems
from cronkeeper.api.schemas import Data, Page
from cronkeeper.service import maintenance as maintenance_service
from cronkeeper.service.maintenance import MaintenanceIn, MaintenanceOut

router = APIRouter(prefix="/api/v1/projects/{project}/maintenance", tags=["maintenance"])


def _body() -> dict[str, Any]:
    """`openapi_extra` documenting the body the route reads itself."""
    schema = MaintenanceIn.model_json_schema()
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


@router.get("", responses=problems(404))
async def list_windows(
    ctx: ContextDep, actor: ActorDep, project: str
) -> Data[Page[MaintenanceOut]]:
    """The project's maintenance windows by name; `active_until` is set while one is on."""
    items = await maintenance_service.list_windows(ctx, actor, project)
    return Data(data=Page(items=items, next_cursor=None))


@router.post("", status_code=201, responses=problems(400, 404, 409), openapi_extra=_body())
async def create_window(
    ctx: ContextDep, actor: ActorDep, project: str, body: BodyDep, response: Response
) -> Data[MaintenanceOut]:
    """Create a window: one-off (`starts_at`, `ends_at`) or recurring (`schedule`,
    `duration`, `timezone`); `mode` mute (no alerts) or skip (slots not fired)."""
    window = await maintenance_service.create_window(ctx, actor, project, body)
    response.headers["Location"] = f"/api/v1/projects/{project}/maintenance/{window.name}"
    return Data(data=window)


@router.get("/{name}", responses=problems(404))
async def get_window(
    ctx: ContextDep, actor: ActorDep, project: str, name: str
) -> Data[MaintenanceOut]:
    """One maintenance window."""
    return Data(data=await maintenance_service.get_window(ctx, actor, project, name))


@router.delete("/{name}", status_code=204, responses=problems(404))
async def delete_window(ctx: ContextDep, actor: ActorDep, project: str, name: str) -> Response:
    """Remove a maintenance window."""
    await maintenance_service.delete_window(ctx, actor, project, name)
    return Response(status_code=204)

"""`/api/v1/projects/{project}/channels…`"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from cronkeeper.api.deps import ActorDep, BodyDep, ContextDep
from cronkeeper.api.routes.common import problems
from cronkeeper.api.schemas import Data, Page
from cronkeeper.service import channels as channel_service
from cronkeeper.service.channel_schemas import (
    CONFIG_MODELS,
    ChannelIn,
    ChannelOut,
    NotificationOut,
)

router = APIRouter(prefix="/api/v1/projects/{project}/channels", tags=["channels"])
Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=100)]


def channel_body(*, patch: bool) -> dict[str, Any]:
    """`openapi_extra` documenting the body the route reads itself: ChannelIn, its config
    one of the per-kind configs (a patch: the same with nothing required)."""
    schema = ChannelIn.model_json_schema()
    schema["properties"]["config"] = {
        "anyOf": [model.model_json_schema() for model in CONFIG_MODELS.values()],
        "description": "Depends on kind: webhook, email or apprise",
    }
    if patch:
        schema.pop("required", None)
        schema["title"] = "ChannelPatch"
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


@router.get("", responses=problems(404))
async def list_channels(
    ctx: ContextDep, actor: ActorDep, project: str, cursor: Cursor = None, limit: Limit = 50
) -> Data[Page[ChannelOut]]:
    """Channels of the project by name (secrets masked)."""
    page = await channel_service.list_channels(ctx, actor, project, cursor, limit)
    return Data(data=Page(items=page.items, next_cursor=page.next_cursor))


@router.post(
    "", status_code=201, responses=problems(400, 404, 409), openapi_extra=channel_body(patch=False)
)
async def create_channel(
    ctx: ContextDep, actor: ActorDep, project: str, body: BodyDep, response: Response
) -> Data[ChannelOut]:
    """Create a channel (admin keys). The config is checked for its kind (422 names the field)."""
    channel = await channel_service.create_channel(ctx, actor, project, body)
    response.headers["Location"] = f"/api/v1/projects/{project}/channels/{channel.name}"
    return Data(data=channel)


@router.get("/{name}", responses=problems(404))
async def get_channel(
    ctx: ContextDep, actor: ActorDep, project: str, name: str
) -> Data[ChannelOut]:
    """One channel; `disabled_reason` says why a permanent delivery error switched it off."""
    return Data(data=await channel_service.get_channel(ctx, actor, project, name))


@router.patch("/{name}", responses=problems(400, 404, 409), openapi_extra=channel_body(patch=True))
async def update_channel(
    ctx: ContextDep, actor: ActorDep, project: str, name: str, body: BodyDep
) -> Data[ChannelOut]:
    """Change a channel with a JSON merge patch (admin keys); any update re-enables it."""
    return Data(data=await channel_service.update_channel(ctx, actor, project, name, body))


@router.delete("/{name}", status_code=204, responses=problems(404))
async def delete_channel(ctx: ContextDep, actor: ActorDep, project: str, name: str) -> Response:
    """Delete a channel and its delivery history (admin keys)."""
    await channel_service.delete_channel(ctx, actor, project, name)
    return Response(status_code=204)


@router.post("/{name}/test", responses=problems(404))
async def test_channel(
    ctx: ContextDep, actor: ActorDep, project: str, name: str
) -> Data[NotificationOut]:
    """Send an `event: "test"` message now (admin keys). A failed delivery still answers
    200: the recorded notification has `status: "failed"` and the `error`."""
    return Data(data=await channel_service.test_channel(ctx, actor, project, name))


@router.get("/{name}/notifications", responses=problems(404))
async def list_notifications(
    ctx: ContextDep,
    actor: ActorDep,
    project: str,
    name: str,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Data[Page[NotificationOut]]:
    """The channel's deliveries, newest first: status, attempts, error, latency."""
    page = await channel_service.list_notifications(ctx, actor, project, name, cursor, limit)
    return Data(data=Page(items=page.items, next_cursor=page.next_cursor))

"""`/api/v1/projects/{project}/jobs…`"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from cronkeeper.api.deps import ActorDep, BodyDep, ContextDep
from cronkeeper.api.routes.common import json_body, problems
from cronkeeper.api.schemas import Data, Page
from cronkeeper.domain.jobs import TAG_PATTERN
from cronkeeper.service import jobs as job_service
from cronkeeper.service.schemas import JobOut

router = APIRouter(prefix="/api/v1/projects/{project}/jobs", tags=["jobs"])
SlugPath = Annotated[str, "job slug"]


@router.get("", responses=problems(404))
async def list_jobs(
    ctx: ContextDep,
    actor: ActorDep,
    project: str,
    tag: Annotated[str | None, Query(max_length=64, pattern=TAG_PATTERN)] = None,
    status: Literal["active", "paused"] | None = None,
    kind: Literal["http", "command", "python", "workflow", "heartbeat", "trigger"] | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Data[Page[JobOut]]:
    """Jobs of the project by slug, filtered by tag, status and kind (keyset pages)."""
    query = job_service.JobQuery(tag, status, kind, cursor, limit)
    page = await job_service.list_jobs(ctx, actor, project, query)
    return Data(data=Page(items=page.items, next_cursor=page.next_cursor))


@router.post(
    "", status_code=201, responses=problems(400, 404, 409), openapi_extra=json_body("JobIn")
)
async def create_job(
    ctx: ContextDep, actor: ActorDep, project: str, body: BodyDep, response: Response
) -> Data[JobOut]:
    """Create a job. Unknown fields, bad schedules, zones or targets are rejected (422)."""
    job = await job_service.create_job(ctx, actor, project, body)
    response.headers["Location"] = f"/api/v1/projects/{project}/jobs/{job.slug}"
    return Data(data=job)


@router.get("/{slug}", responses=problems(404))
async def get_job(ctx: ContextDep, actor: ActorDep, project: str, slug: str) -> Data[JobOut]:
    """One job, with its next three fire times (UTC) and last run."""
    return Data(data=await job_service.get_job(ctx, actor, project, slug))


@router.patch("/{slug}", responses=problems(400, 404, 409), openapi_extra=json_body("JobPatch"))
async def update_job(
    ctx: ContextDep, actor: ActorDep, project: str, slug: str, body: BodyDep
) -> Data[JobOut]:
    """Change a job with a JSON merge patch (RFC 7396: objects merge, null removes a field)."""
    return Data(data=await job_service.update_job(ctx, actor, project, slug, body))


@router.delete("/{slug}", status_code=204, responses=problems(404))
async def delete_job(ctx: ContextDep, actor: ActorDep, project: str, slug: str) -> Response:
    """Delete a job and its whole run history."""
    await job_service.delete_job(ctx, actor, project, slug)
    return Response(status_code=204)


@router.post("/{slug}/pause", responses=problems(404))
async def pause_job(ctx: ContextDep, actor: ActorDep, project: str, slug: str) -> Data[JobOut]:
    """Stop future fires; runs in flight finish."""
    return Data(data=await job_service.set_paused(ctx, actor, project, slug, paused=True))


@router.post("/{slug}/resume", responses=problems(404))
async def resume_job(ctx: ContextDep, actor: ActorDep, project: str, slug: str) -> Data[JobOut]:
    """Fire again from the next slot; missed slots are not replayed."""
    return Data(data=await job_service.set_paused(ctx, actor, project, slug, paused=False))

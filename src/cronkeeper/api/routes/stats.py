"""`/api/v1/projects/{project}` itself, its `/stats` and its `/queue`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from cronkeeper.api.deps import ActorDep, ContextDep
from cronkeeper.api.routes.common import problems
from cronkeeper.api.schemas import Data
from cronkeeper.domain.durations import DurationError, parse_duration
from cronkeeper.errors import FieldError, InvalidInput
from cronkeeper.service import projects as project_service
from cronkeeper.service import queue as queue_service
from cronkeeper.service import stats as stats_service
from cronkeeper.service.projects import ProjectOut
from cronkeeper.service.queue import QueueStatsOut as QueueOverview
from cronkeeper.service.stats import StatsOut

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["stats"])


@router.get("", responses=problems(404))
async def get_project(ctx: ContextDep, actor: ActorDep, project: str) -> Data[ProjectOut]:
    """The project: name, retention, and (for write/admin keys) its ping key, which forms
    the slug-based ping URLs `/ping/{ping_key}/{job-slug}`."""
    return Data(data=await project_service.get_project(ctx, actor, project))


@router.get("/queue", responses=problems(404))
async def queue_stats(ctx: ContextDep, actor: ActorDep, project: str) -> Data[QueueOverview]:
    """Per queue: due runs waiting (depth), runs created ahead of their slot, running runs,
    the oldest due run's wait; over the last hour: throughput and enqueue→start latency."""
    return Data(data=await queue_service.queue_stats(ctx, actor, project))


@router.get("/stats", responses=problems(404))
async def project_stats(
    ctx: ContextDep,
    actor: ActorDep,
    project: str,
    since: Annotated[
        str, Query(max_length=32, description="A duration back from now, e.g. 24h, 7d")
    ] = "24h",
) -> Data[StatsOut]:
    """Per job over the window: runs by status, success rate, p50/p95 duration and drift."""
    try:
        window = parse_duration(since)
    except DurationError as error:
        raise InvalidInput(FieldError("since", str(error))) from None
    start = ctx.clock.now() - timedelta(seconds=window)
    return Data(data=await stats_service.project_stats(ctx, actor, project, start))

"""Runs: `…/jobs/{slug}/runs`, `…/runs`, `…/runs/{id}[/events|/replay|/cancel]`, `…/trigger`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime

from cronkeeper.api.deps import ActorDep, BodyDep, ContextDep
from cronkeeper.api.routes.common import problems, serialized
from cronkeeper.api.schemas import Data, Page
from cronkeeper.errors import FieldError, InvalidInput
from cronkeeper.service import runs as run_service
from cronkeeper.service.run_schemas import EventOut, RunDetailOut, RunListItem, RunOut
from cronkeeper.service.validation import load_body

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["runs"])

RunStatusQuery = Literal[
    "queued", "running", "suspended", "succeeded", "failed", "cancelled", "missed", "skipped"
]
SourceQuery = Literal["schedule", "manual", "replay", "api", "trigger", "heartbeat"]


async def _query(  # async: a plain `def` dependency would run on a worker thread
    status: RunStatusQuery | None = None,
    source: SourceQuery | None = None,
    job: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: AwareDatetime | None = None,
    sort: Literal["created_at", "scheduled_for"] = "created_at",
    order: Literal["asc", "desc"] = "desc",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> run_service.RunQuery:
    return run_service.RunQuery(status, source, job, from_, to, sort, order, cursor, limit)


QueryDep = Annotated[run_service.RunQuery, Depends(_query)]


@router.get("/jobs/{slug}/runs", responses=problems(404), response_model=Data[Page[RunOut]])
async def list_job_runs(
    ctx: ContextDep, actor: ActorDep, project: str, slug: str, query: QueryDep
) -> Response:
    """A job's run history (newest first by default; keyset pages stable under inserts)."""
    page = await run_service.list_runs(ctx, actor, project, query, job_slug=slug)
    return _page_response(page)


@router.get("/runs", responses=problems(404), response_model=Data[Page[RunOut]])
async def list_runs(ctx: ContextDep, actor: ActorDep, project: str, query: QueryDep) -> Response:
    """Runs of every job of the project; `job` filters by slug or name substring."""
    page = await run_service.list_runs(ctx, actor, project, query)
    return _page_response(page)


def _page_response(page: run_service.RunPage) -> Response:
    """The page as `Data[Page[RunOut]]` JSON (the documented model), serialised once from
    the items as they are: the envelope is constructed, not validated again."""
    items = _ItemsPage.model_construct(items=page.items, next_cursor=page.next_cursor)
    return serialized(_ItemsData.model_construct(data=items))


_ItemsPage = Page[RunListItem]
_ItemsData = Data[_ItemsPage]


@router.get("/runs/{run_id}", responses=problems(404))
async def get_run(
    ctx: ContextDep, actor: ActorDep, project: str, run_id: str
) -> Data[RunDetailOut]:
    """One run with its attempts (status, codes, latency, previews, errors)."""
    return Data(data=await run_service.get_run(ctx, actor, project, run_id))


@router.get("/runs/{run_id}/events", responses=problems(404))
async def list_events(
    ctx: ContextDep,
    actor: ActorDep,
    project: str,
    run_id: str,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
    cursor: Annotated[str | None, Query(max_length=12, pattern=r"^[0-9]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Data[Page[EventOut]]:
    """The run's event log in `sequence_num` order; `after` (or the `next_cursor` of the
    previous page as `cursor`) continues from a sequence number."""
    start = int(cursor) if cursor else after
    events, more = await run_service.list_events(ctx, actor, project, run_id, start, limit)
    return Data(data=Page(items=events, next_cursor=None if more is None else str(more)))


@router.post("/runs/{run_id}/replay", status_code=201, responses=problems(404))
async def replay_run(ctx: ContextDep, actor: ActorDep, project: str, run_id: str) -> Data[RunOut]:
    """A new run of the same job and input (`source=replay`); the original is unchanged."""
    return Data(data=await run_service.replay_run(ctx, actor, project, run_id))


@router.post("/runs/{run_id}/cancel", responses=problems(404, 409))
async def cancel_run(ctx: ContextDep, actor: ActorDep, project: str, run_id: str) -> Data[RunOut]:
    """Cancel a queued or running run (a running attempt is aborted or killed)."""
    return Data(data=await run_service.cancel_run(ctx, actor, project, run_id))


@router.post(
    "/jobs/{slug}/trigger",
    status_code=201,
    responses=problems(400, 404),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TriggerIn"}}},
        }
    },
)
async def trigger_job(
    ctx: ContextDep, actor: ActorDep, project: str, slug: str, body: BodyDep
) -> Data[RunOut]:
    """Queue a run now (`source=manual`); optional body `{"payload": …}` reaches the job.
    Rate limited per job: 429 with Retry-After."""
    payload = _trigger_payload(body)
    return Data(data=await run_service.trigger_job(ctx, actor, project, slug, payload))


def _trigger_payload(body: bytes) -> Any:
    if not body.strip():
        return None
    value = load_body(body)
    if not isinstance(value, dict) or set(value) - {"payload"}:
        raise InvalidInput(FieldError("body", 'must be an object with only "payload"'))
    return value.get("payload")

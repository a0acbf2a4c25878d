"""`/healthz` (process up) and `/readyz` (database reachable)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, PlainTextResponse

from cronkeeper import __version__
from cronkeeper.api.deps import ContextDep
from cronkeeper.api.schemas import HealthOut
from cronkeeper.service import health, observability

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> HealthOut:
    """The process is up and serving."""
    return HealthOut(status="ok", version=__version__)


@router.get("/readyz", responses={503: {"model": HealthOut, "description": "Database down"}})
async def readyz(ctx: ContextDep) -> JSONResponse:
    """The database answers; 503 if it does not."""
    problem = await health.database_problem(ctx)
    body = HealthOut(
        status="ok" if problem is None else "unavailable",
        version=__version__,
        database=problem or "ok",
    )
    return JSONResponse(body.model_dump(), status_code=200 if problem is None else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(ctx: ContextDep) -> PlainTextResponse:
    """Prometheus text format: runs by job and status, duration and drift histograms, last
    success per job, queue depth and oldest queued age, scheduler lag."""
    body = await observability.metrics_exposition(ctx)
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4; charset=utf-8")

"""`create_app`: the FastAPI application over a service `Context`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.responses import JSONResponse

from cronkeeper import __version__
from cronkeeper.api import problems
from cronkeeper.api.routes import audit, channels, jobs, maintenance, ops, runs, stats, topology
from cronkeeper.api.routes.badges import badge_mount
from cronkeeper.api.routes.hc_v3 import hc_v3_mount
from cronkeeper.api.routes.pings import ping_mount
from cronkeeper.domain.ratelimit import TokenBuckets
from cronkeeper.service import pings
from cronkeeper.service.context import Context
from cronkeeper.service.schemas import TARGET_MODELS, JobIn, target_json_schema

log = logging.getLogger("cronkeeper.api")


def create_app(ctx: Context, *, auth_failures_per_minute: int = 20) -> FastAPI:
    """The API application; `ctx` carries the database, clock and public URL."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await pings.drain(ctx)  # answered pings are committed; write the queued ones too

    app = FastAPI(
        title="Cronkeeper",
        version=__version__,
        description="Cron runtime and run ledger. Authenticate with `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    app.state.context = ctx
    app.state.auth_failures = TokenBuckets(
        capacity=auth_failures_per_minute, per_second=auth_failures_per_minute / 60
    )
    problems.install(app)
    # The ping endpoints are plain Starlette routes, matched before any FastAPI route.
    app.router.routes.insert(0, ping_mount(ctx))
    app.router.routes[1:1] = [hc_v3_mount(ctx), badge_mount(ctx)]  # Healthchecks-style, public
    for module in (ops, jobs, runs, stats, audit, channels, maintenance, topology):
        app.include_router(module.router)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problems.problem(
            500, "/problems/internal", "Internal error", "an unexpected error occurred; see logs"
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the body models routes read themselves (JobIn, JobPatch)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    models: list[type[BaseModel]] = [JobIn, *TARGET_MODELS.values()]
    for model in models:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    components["TriggerIn"] = {
        "type": "object",
        "title": "TriggerIn",
        "properties": {"payload": {"description": "Any JSON value handed to the run"}},
        "additionalProperties": False,
    }
    job_in = components["JobIn"]
    job_in["properties"]["target"] = target_json_schema("#/components/schemas/{model}")
    patch = {k: v for k, v in components["JobIn"].items() if k != "required"}
    components["JobPatch"] = {**patch, "title": "JobPatch", "minProperties": 0}
    app.openapi_schema = schema
    return schema

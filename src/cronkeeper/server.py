"""The composition root of `cronkeeper serve`: ledger, first-start bootstrap, HTTP server.

The runtime loops (scheduler, workers, monitor, notifier) join here as they land.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import uvicorn

from cronkeeper import __version__
from cronkeeper.api.app import create_app
from cronkeeper.service.keys import bootstrap
from cronkeeper.service.setup import open_context
from cronkeeper.settings import Settings

log = logging.getLogger("cronkeeper.server")


async def serve(settings: Settings, announce: Callable[[str], None]) -> None:
    """Migrate, bootstrap, then serve HTTP until SIGINT/SIGTERM (uvicorn drains requests)."""
    if settings.app:
        importlib.import_module(settings.app)
    ctx = await open_context(settings.db, base_url=settings.base_url)
    try:
        first_key = await bootstrap(ctx)
        announce(_banner(settings, ctx.db.features.name, first_key))
        app = create_app(ctx, auth_failures_per_minute=settings.auth_failures_per_minute)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="info", access_log=False
        )
        await uvicorn.Server(config).serve()
    finally:
        await ctx.db.dispose()


def _banner(settings: Settings, dialect: str, first_key: str | None) -> str:
    where = settings.db.split("///", 1)[-1] if dialect == "sqlite" else "(PostgreSQL)"
    lines = [
        f"Cronkeeper {__version__} on {settings.base_url}  (database: {dialect} {where})",
        f"  API docs: {settings.base_url}/docs   health: {settings.base_url}/healthz",
    ]
    if first_key:
        lines += [
            "",
            "First start: created project 'default' and an admin API key.",
            "It is shown only this once; store it now:",
            "",
            f"    export CRONKEEPER_API_KEY={first_key}",
            "",
            "Then try:  cronkeeper jobs list",
        ]
    else:
        lines.append("  New key: cronkeeper keys create --project default --role admin --name me")
    return "\n".join(lines)

"""The composition root of `cronkeeper serve`: ledger, bootstrap, executors, runtime loops
and the HTTP server, started and stopped together.

Signals: SIGINT/SIGTERM stop the HTTP server (in-flight requests finish), stop the
scheduler, and let workers drain in-flight runs (bounded); the process then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn

from cronkeeper import __version__
from cronkeeper.api.app import create_app
from cronkeeper.api.ping_protocol import PingProtocol
from cronkeeper.api.routes.pings import with_pings_first
from cronkeeper.domain.outcomes import Executor
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.executors.command import CommandExecutor
from cronkeeper.executors.http import HttpExecutor
from cronkeeper.executors.python import PythonExecutor
from cronkeeper.runtime.supervisor import Supervisor
from cronkeeper.runtime.tracing import Tracing, provider_for
from cronkeeper.service.context import Context
from cronkeeper.service.keys import bootstrap
from cronkeeper.service.setup import open_context
from cronkeeper.settings import Settings, process_environment
from cronkeeper.web.app import dashboard_routes

log = logging.getLogger("cronkeeper.server")
USER_AGENT = f"Cronkeeper/{__version__} (cron runtime; +https://github.com/cronkeeper)"


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the supervisor owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(settings: Settings, announce: Callable[[str], None]) -> None:
    """`serve` until a signal, on the event loop `settings.event_loop` names: uvloop's by
    default where it is installed (on Linux: the same ping ingest on asyncio's loop
    answered ~20 % fewer pings per second of CPU), asyncio's otherwise."""
    with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
        runner.run(serve(settings, announce))


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def serve(settings: Settings, announce: Callable[[str], None]) -> None:
    """Migrate, bootstrap, start the loops of `settings.role` and the API; run until a signal."""
    policy = SsrfPolicy.from_settings_values(
        settings.allow_private, settings.deny_hosts, settings.deny_ips
    )
    if settings.app:
        importlib.import_module(settings.app)
    ctx = await open_context(
        settings.db, base_url=settings.base_url, ssrf=policy, outage_gap=settings.outage_gap
    )
    try:
        if settings.write_process and settings.role in ("all", "api"):
            ctx.db.start_write_process()  # pings come in through the API
        first_key = await bootstrap(ctx)
        announce(_banner(settings, ctx.db.features.name, first_key))
        async with _executors(ctx, policy) as executors:
            await _run_until_signal(ctx, settings, executors)
    finally:
        await ctx.db.dispose()


@contextlib.asynccontextmanager
async def _executors(ctx: Context, policy: SsrfPolicy) -> AsyncIterator[dict[str, Executor]]:
    async with HttpExecutor(policy, user_agent=USER_AGENT) as http:
        yield {
            "http": http,
            "command": CommandExecutor(process_environment()),
            "python": PythonExecutor(ctx.clock),
        }


async def _run_until_signal(
    ctx: Context, settings: Settings, executors: dict[str, Executor]
) -> None:
    provider = provider_for(settings.otel_endpoint)
    supervisor = Supervisor(ctx, executors, role=settings.role, tracing=Tracing(provider))
    server = None
    if settings.role in ("all", "api"):
        app = create_app(ctx, auth_failures_per_minute=settings.auth_failures_per_minute)
        app.router.routes.extend(dashboard_routes(ctx))  # the dashboard, at /
        config = uvicorn.Config(
            with_pings_first(app, ctx),  # pings skip FastAPI: DESIGN §6
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            http=PingProtocol.for_context(ctx),  # GET/HEAD pings skip ASGI: DESIGN §6
        )
        server = _Server(config)

    def stop() -> None:
        supervisor.stop()
        if server is not None:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    _settle_heap()
    runtime = asyncio.create_task(supervisor.run())
    try:
        if server is not None:
            await server.serve()  # returns after a signal, or if it cannot start
            supervisor.stop()
        await runtime
    finally:
        supervisor.stop()
        await asyncio.gather(runtime, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if provider is not None:
            provider.shutdown()  # flushes spans still batched


#: Allocations between young-generation collections (CPython's default is 700). A busy
#: server allocates thousands of short-lived objects per millisecond; at 700 the
#: collector runs every few requests and now and then a full collection walks every
#: object of the process, which shows up as p99 latency (measured: −18 % event-loop CPU
#: per ping). Cycles are still collected, just in larger, rarer steps.
GC_YOUNG_THRESHOLD = 50_000


def _settle_heap() -> None:
    """After start-up: move what start-up built (modules, tables, app, caches) out of the
    collector's sight, and collect young objects less often (GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _banner(settings: Settings, dialect: str, first_key: str | None) -> str:
    where = settings.db.split("///", 1)[-1] if dialect == "sqlite" else "(PostgreSQL)"
    lines = [
        f"Cronkeeper {__version__} on {settings.base_url}  (database: {dialect} {where}, "
        f"role: {settings.role})",
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
            f"The same key logs in to the dashboard at {settings.base_url}/login",
        ]
    else:
        lines.append("  New key: cronkeeper keys create --project default --role admin --name me")
    return "\n".join(lines)

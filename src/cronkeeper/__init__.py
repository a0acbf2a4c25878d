"""Cronkeeper: a self-hosted cron runtime and run ledger.

The small public Python API:

- `Client` — the async client of the HTTP API (jobs, runs, events, stats, trigger, …);
- `RunContext` — what a `python` job function receives as its `ctx` argument;
- `monitor` — `with cronkeeper.monitor("slug"):` / `@cronkeeper.monitor("slug")` pings a
  heartbeat job's start and success or failure around code that runs elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Client", "RunContext", "__version__", "monitor"]

if TYPE_CHECKING:
    from cronkeeper.client import Client
    from cronkeeper.executors.python import RunContext
    from cronkeeper.monitor import monitor


def __getattr__(name: str) -> Any:
    # Imported lazily so `import cronkeeper` stays cheap for the CLI and for job code.
    if name == "Client":
        from cronkeeper.client import Client

        return Client
    if name == "RunContext":
        from cronkeeper.executors.python import RunContext

        return RunContext
    if name == "monitor":
        from cronkeeper.monitor import monitor

        return monitor
    raise AttributeError(f"module 'cronkeeper' has no attribute {name!r}")

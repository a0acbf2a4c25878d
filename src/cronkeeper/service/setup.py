"""Open the ledger for a process: engine, migrations, the service context."""

from __future__ import annotations

from cronkeeper.clock import Clock, SystemClock
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.service.context import Context
from cronkeeper.store.engine import create_database
from cronkeeper.store.migrate import upgrade


async def open_context(
    db_url: str,
    *,
    base_url: str = "http://127.0.0.1:8080",
    clock: Clock | None = None,
    migrate: bool = True,
    ssrf: SsrfPolicy | None = None,
    outage_gap: float = 30.0,
) -> Context:
    """A Context on `db_url`, with the schema brought to the newest version first."""
    db = create_database(db_url)
    if migrate:
        try:
            await upgrade(db)
        except BaseException:
            await db.dispose()
            raise
    ssrf = ssrf or SsrfPolicy()
    return Context(
        db=db, clock=clock or SystemClock(), base_url=base_url, ssrf=ssrf, outage_gap=outage_gap
    )

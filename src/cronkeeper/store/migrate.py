"""Schema migrations (Alembic), run on start-up and by `cronkeeper db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from cronkeeper.store.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


#: PostgreSQL advisory lock held while migrating, so processes starting together on a
#: fresh database migrate one after the other instead of racing to create the tables.
MIGRATION_LOCK = 7_253_901_115


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent; safe with several processes at once)."""
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(_run, "upgrade", revision)


async def autogenerate(db: Database, message: str) -> None:
    """Write a new revision file from the difference between the DB and tables.py (dev tool)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_run, "revision", message)


def _run(sync_conn: Connection, action: str, argument: str) -> Any:
    config = alembic_config(sync_conn)
    if action == "upgrade":
        return command.upgrade(config, argument)
    return command.revision(config, message=argument, autogenerate=True)

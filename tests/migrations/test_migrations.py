"""Migrations: an empty database of each dialect upgrades to head and then matches tables.py."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from cronkeeper.store import projects as project_store
from cronkeeper.store.engine import Database, create_database
from cronkeeper.store.migrate import alembic_config, upgrade
from cronkeeper.store.tables import metadata

PG_ADMIN_DSN = os.environ.get("CRONKEEPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
CLI = Path(sys.executable).with_name("cronkeeper")


async def _pg_execute(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database with nothing in it (not the migrated template)."""
    name = f"ck_empty_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # refused, unknown host, auth… all mean "no server here"
        message = f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {error}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each dialect."""
    if request.param == "sqlite":
        return str(tmp_path / "empty.db")
    url: str = request.getfixturevalue("empty_postgres_url")
    return url


@pytest.fixture
async def empty_db(empty_db_url: str) -> AsyncIterator[Database]:
    """A `Database` on the empty database; the test decides when to migrate it."""
    db = create_database(empty_db_url)
    yield db
    await db.dispose()


def _revision(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


def _tables(sync_conn: Connection) -> set[str]:
    return set(inspect(sync_conn).get_table_names())


def _differences(sync_conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        sync_conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def _inspect(db: Database, probe: Any) -> Any:
    async with db.engine.connect() as conn:
        return await conn.run_sync(probe)


async def test_an_empty_database_upgrades_to_head_with_every_table(empty_db: Database) -> None:
    assert await _inspect(empty_db, _revision) is None
    assert await _inspect(empty_db, _tables) == set()

    await upgrade(empty_db)

    assert HEAD is not None
    assert await _inspect(empty_db, _revision) == HEAD
    assert await _inspect(empty_db, _tables) == set(metadata.tables) | {"alembic_version"}


async def test_upgrading_a_database_already_at_head_changes_nothing(empty_db: Database) -> None:
    await upgrade(empty_db)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    async with empty_db.write() as conn:
        await project_store.insert_project(conn, "default", "Default", "ping-key", now)
    tables_before = await _inspect(empty_db, _tables)

    await upgrade(empty_db)

    assert await _inspect(empty_db, _revision) == HEAD
    assert await _inspect(empty_db, _tables) == tables_before
    async with empty_db.read() as conn:
        assert [p.slug for p in await project_store.list_projects(conn)] == ["default"]


async def test_the_migrated_schema_matches_tables_py_with_no_differences(
    empty_db: Database,
) -> None:
    await upgrade(empty_db)
    assert await _inspect(empty_db, _differences) == []


def _cli_db_upgrade(db_path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("CRONKEEPER")}
    env |= {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}
    return subprocess.run(
        [str(CLI), "db", "upgrade", "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        check=False,
    )


def _file_revision(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        [(version,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return str(version)


def test_cronkeeper_db_upgrade_migrates_a_new_sqlite_file_and_says_so(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "ledger.db"
    db_path.parent.mkdir()

    result = _cli_db_upgrade(db_path, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "database is up to date"
    assert result.stderr == ""
    assert _file_revision(db_path) == HEAD
    assert not (tmp_path / "cronkeeper.db").exists()  # --db was honoured, not the default

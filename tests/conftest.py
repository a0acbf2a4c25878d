"""Shared fixtures: a scrubbed environment, a fake clock, and a real database per test.

`db_url` is parametrised over SQLite (a file in tmp_path) and PostgreSQL (a throwaway
database created per test session from a template). When no PostgreSQL server answers,
the postgres parameter is skipped locally and fails under CI (CI=true).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service.context import Context
from cronkeeper.service.setup import open_context
from cronkeeper.store.tables import metadata
from cronkeeper.testing import FakeClock

PG_ADMIN_DSN = os.environ.get("CRONKEEPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CRONKEEPER_* setting of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CRONKEEPER_") and name != "CRONKEEPER_TEST_PG":
            monkeypatch.delenv(name)


async def _pg_execute(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        asyncio.run(_pg_execute(PG_ADMIN_DSN, "SELECT 1"))
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database for this test session; dropped at the end."""
    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {problem}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"ck_tpl_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(PG_ADMIN_DSN, f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"

    async def migrate() -> None:
        ctx = await open_context(url)
        await ctx.db.dispose()

    asyncio.run(migrate())
    yield name
    asyncio.run(_pg_execute(PG_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def module_pg_url(pg_template: str) -> Iterator[str]:
    """One migrated PostgreSQL database per test module (copied from the template)."""
    name = f"ck_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(PG_ADMIN_DSN, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_pg_execute(PG_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(module_pg_url: str) -> str:
    """The module's PostgreSQL database with every row deleted: each test starts empty
    (copying a template per test costs ~0.3 s; emptying one costs a few ms)."""
    wipe = "; ".join(f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables))
    asyncio.run(_pg_execute(module_pg_url, wipe))
    return module_pg_url


@pytest.fixture(scope="module")
def module_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test module."""
    path = tmp_path_factory.mktemp("ledger") / "migrated.db"

    async def migrate() -> None:
        ctx = await open_context(str(path))
        await ctx.db.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture
def sqlite_url(module_sqlite_file: Path, tmp_path: Path) -> str:
    """A fresh copy of the module's migrated, empty SQLite file."""
    shutil.copyfile(module_sqlite_file, tmp_path / "cronkeeper.db")
    return f"sqlite:///{tmp_path}/cronkeeper.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A database URL, once for SQLite and once for PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def ctx(db_url: str, clock: FakeClock) -> AsyncIterator[Context]:
    """A migrated ledger on the parametrised database with the fake clock."""
    context = await open_context(db_url, clock=clock, base_url="http://cronkeeper.test")
    yield context
    await context.db.dispose()


@pytest.fixture
def admin() -> Actor:
    """A local admin actor (what `cronkeeper keys …` acts as)."""
    return Actor(name="test-admin", role=KeyRole.ADMIN, project_slug=None, ip="127.0.0.1")

"""store/keys.py and store/projects.py on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from cronkeeper.domain.models import Project
from cronkeeper.domain.states import KeyRole
from cronkeeper.service.context import Context
from cronkeeper.store import keys as key_store
from cronkeeper.store import projects as project_store
from cronkeeper.testing import FakeClock


async def new_project(ctx: Context, slug: str) -> Project:
    async with ctx.db.write() as conn:
        return await project_store.insert_project(
            conn, slug, slug.title(), f"ping-{slug}", ctx.clock.now()
        )


async def new_key(
    ctx: Context, project: Project, prefix: str, role: KeyRole = KeyRole.WRITE
) -> uuid.UUID:
    async with ctx.db.write() as conn:
        return await key_store.insert_key(
            conn,
            project_id=project.id,
            name=f"key {prefix}",
            prefix=prefix,
            secret_hash=f"hash-of-{prefix}",
            role=role,
            now=ctx.clock.now(),
        )


async def prefixes(ctx: Context, project: Project | None) -> list[str]:
    async with ctx.db.read() as conn:
        keys = await key_store.list_keys(conn, project.id if project else None)
    return [key.prefix for key in keys]


async def admin_count(ctx: Context) -> int:
    async with ctx.db.read() as conn:
        return await key_store.count_active_admin_keys(conn)


# --- keys ----------------------------------------------------------------------------


async def test_a_stored_key_is_found_by_its_prefix_with_its_project(ctx: Context) -> None:
    project = await new_project(ctx, "default")
    key_id = await new_key(ctx, project, "abcd1234", KeyRole.READ)

    async with ctx.db.read() as conn:
        key = await key_store.get_key_by_prefix(conn, "abcd1234")

    assert key is not None
    assert key.id == key_id
    assert key.project_id == project.id
    assert key.project_slug == "default"
    assert key.name == "key abcd1234"
    assert key.secret_hash == "hash-of-abcd1234"
    assert key.role is KeyRole.READ
    assert key.created_at == ctx.clock.now()
    assert key.last_used_at is None
    assert key.revoked_at is None


async def test_an_unknown_prefix_finds_no_key(ctx: Context) -> None:
    project = await new_project(ctx, "default")
    await new_key(ctx, project, "abcd1234")
    async with ctx.db.read() as conn:
        assert await key_store.get_key_by_prefix(conn, "abcd123") is None
        assert await key_store.get_key_by_prefix(conn, "ABCD1234") is None


async def test_two_keys_cannot_share_a_prefix_even_across_projects(ctx: Context) -> None:
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    await new_key(ctx, default, "samepref")
    with pytest.raises(IntegrityError):
        await new_key(ctx, other, "samepref", KeyRole.ADMIN)
    assert await prefixes(ctx, None) == ["samepref"]
    assert await admin_count(ctx) == 0


async def test_keys_are_listed_oldest_first_per_project_or_all_together(
    ctx: Context, clock: FakeClock
) -> None:
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    await new_key(ctx, default, "zzzz0001")
    clock.advance(1)
    await new_key(ctx, other, "mmmm0002")
    clock.advance(1)
    await new_key(ctx, default, "aaaa0003")
    await new_key(ctx, default, "0000same")  # same instant: ties go by prefix

    assert await prefixes(ctx, default) == ["zzzz0001", "0000same", "aaaa0003"]
    assert await prefixes(ctx, other) == ["mmmm0002"]
    assert await prefixes(ctx, None) == ["zzzz0001", "mmmm0002", "0000same", "aaaa0003"]


async def test_a_project_without_keys_lists_none(ctx: Context) -> None:
    default = await new_project(ctx, "default")
    empty = await new_project(ctx, "empty")
    await new_key(ctx, default, "abcd1234")
    assert await prefixes(ctx, empty) == []


async def test_revoking_a_key_works_once_and_then_reports_false(
    ctx: Context, clock: FakeClock
) -> None:
    project = await new_project(ctx, "default")
    key_id = await new_key(ctx, project, "abcd1234")
    other_id = await new_key(ctx, project, "efgh5678")
    clock.advance(60)
    revoked_at = clock.now()

    async with ctx.db.write() as conn:
        first = await key_store.revoke_key(conn, key_id, revoked_at)
    clock.advance(60)
    async with ctx.db.write() as conn:
        second = await key_store.revoke_key(conn, key_id, clock.now())
        unknown = await key_store.revoke_key(conn, uuid.uuid4(), clock.now())

    assert (first, second, unknown) == (True, False, False)
    async with ctx.db.read() as conn:
        key = await key_store.get_key_by_prefix(conn, "abcd1234")
        other = await key_store.get_key_by_prefix(conn, "efgh5678")
    assert key is not None and other is not None
    assert key.revoked_at == revoked_at  # the second call did not move it
    assert other.id == other_id
    assert other.revoked_at is None
    assert await prefixes(ctx, project) == ["abcd1234", "efgh5678"]  # revoked keys stay listed


async def test_only_unrevoked_admin_keys_of_every_project_count_as_active_admins(
    ctx: Context,
) -> None:
    assert await admin_count(ctx) == 0
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    first_admin = await new_key(ctx, default, "admin001", KeyRole.ADMIN)
    await new_key(ctx, other, "admin002", KeyRole.ADMIN)
    await new_key(ctx, default, "write001", KeyRole.WRITE)
    await new_key(ctx, other, "read0001", KeyRole.READ)
    assert await admin_count(ctx) == 2

    async with ctx.db.write() as conn:
        await key_store.revoke_key(conn, first_admin, ctx.clock.now())
    assert await admin_count(ctx) == 1


async def test_touching_a_key_records_when_it_was_last_used(ctx: Context, clock: FakeClock) -> None:
    project = await new_project(ctx, "default")
    key_id = await new_key(ctx, project, "abcd1234")
    untouched_id = await new_key(ctx, project, "efgh5678")
    for _ in range(2):
        clock.advance(30)
        async with ctx.db.write() as conn:
            await key_store.touch_key(conn, key_id, clock.now())

    async with ctx.db.read() as conn:
        keys = {key.id: key for key in await key_store.list_keys(conn, project.id)}
    assert keys[key_id].last_used_at == clock.now()
    assert keys[key_id].created_at == clock.now() - timedelta(seconds=60)
    assert keys[untouched_id].last_used_at is None


# --- projects ------------------------------------------------------------------------


async def test_an_inserted_project_reads_back_with_thirty_days_of_retention(
    ctx: Context,
) -> None:
    created = await new_project(ctx, "default")
    async with ctx.db.read() as conn:
        stored = await project_store.get_project(conn, "default")
    assert stored == created
    assert stored.retention_days == 30
    assert stored.ping_key == "ping-default"
    assert stored.created_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_an_unknown_project_slug_finds_nothing(ctx: Context) -> None:
    await new_project(ctx, "default")
    async with ctx.db.read() as conn:
        assert await project_store.get_project(conn, "defaults") is None


async def test_projects_are_listed_by_slug(ctx: Context) -> None:
    for slug in ("staging", "default", "billing"):
        await new_project(ctx, slug)
    async with ctx.db.read() as conn:
        listed = await project_store.list_projects(conn)
    assert [project.slug for project in listed] == ["billing", "default", "staging"]


async def test_two_projects_cannot_share_a_slug_or_a_ping_key(ctx: Context) -> None:
    await new_project(ctx, "default")
    now = ctx.clock.now()
    with pytest.raises(IntegrityError):
        async with ctx.db.write() as conn:
            await project_store.insert_project(conn, "default", "Again", "ping-fresh", now)
    with pytest.raises(IntegrityError):
        async with ctx.db.write() as conn:
            await project_store.insert_project(conn, "fresh", "Fresh", "ping-default", now)
    async with ctx.db.read() as conn:
        assert [p.slug for p in await project_store.list_projects(conn)] == ["default"]

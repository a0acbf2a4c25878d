"""The group writer on SQLite and PostgreSQL: a caller is answered only after its
transaction committed, concurrent writes share transactions, and a write that fails
(reported, or raising inside the shared transaction) fails alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cronkeeper.errors import NotFound
from cronkeeper.service.context import Context
from cronkeeper.store.tables import projects


async def insert_projects(conn: AsyncConnection, slugs: list[str]) -> Sequence[str | Exception]:
    """A batch function: one project per item; the slug `missing` is reported, not written."""
    results: list[str | Exception] = []
    for slug in slugs:
        if slug == "missing":
            results.append(NotFound("project", slug))
            continue
        await conn.execute(
            projects.insert().values(
                id=uuid.uuid4(),
                slug=slug,
                name=slug,
                ping_key=f"key-{slug}",
                badge_key=f"badge-{slug}",
                created_at=func.now(),
            )
        )
        results.append(slug)
    return results


async def stored_slugs(ctx: Context) -> set[str]:
    async with ctx.db.read() as conn:
        return set((await conn.execute(select(projects.c.slug))).scalars())


async def test_a_write_is_answered_after_its_transaction_committed(ctx: Context) -> None:
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(conn: AsyncConnection, slugs: list[str]) -> Sequence[str | Exception]:
        results = await insert_projects(conn, slugs)
        inside.set()
        await release.wait()  # the transaction is still open here
        return results

    waiter = asyncio.create_task(ctx.db.writer.submit(slow, "alpha"))
    await inside.wait()
    assert not waiter.done()
    release.set()

    assert await waiter == "alpha"
    assert await stored_slugs(ctx) == {"alpha"}  # visible to another connection


async def test_concurrent_writes_share_transactions(ctx: Context) -> None:
    writer = ctx.db.writer
    before = (writer.transactions, writer.items)

    answers = await asyncio.gather(*(writer.submit(insert_projects, f"p-{n}") for n in range(300)))

    assert answers == [f"p-{n}" for n in range(300)]
    assert len(await stored_slugs(ctx)) == 300
    transactions, items = writer.transactions - before[0], writer.items - before[1]
    assert items == 300
    assert transactions <= 3, transactions


async def test_batches_hold_at_most_max_batch_items(ctx: Context) -> None:
    writer = ctx.db.writer
    writer.max_batch = 10
    before = writer.transactions

    await asyncio.gather(*(writer.submit(insert_projects, f"p-{n}") for n in range(50)))

    assert writer.transactions - before >= 5


async def test_a_reported_failure_fails_only_its_caller(ctx: Context) -> None:
    before = ctx.db.writer.transactions

    answers = await asyncio.gather(
        *(ctx.db.writer.submit(insert_projects, slug) for slug in ("a", "missing", "b")),
        return_exceptions=True,
    )

    assert answers[0] == "a" and answers[2] == "b"
    assert isinstance(answers[1], NotFound)
    assert await stored_slugs(ctx) == {"a", "b"}
    assert ctx.db.writer.transactions - before == 1


async def test_a_write_that_breaks_the_shared_transaction_is_retried_alone(
    ctx: Context,
) -> None:
    await ctx.db.writer.submit(insert_projects, "taken")

    answers = await asyncio.gather(
        *(ctx.db.writer.submit(insert_projects, slug) for slug in ("x", "taken", "y")),
        return_exceptions=True,
    )

    assert answers[0] == "x" and answers[2] == "y"
    assert isinstance(answers[1], IntegrityError)
    assert await stored_slugs(ctx) == {"taken", "x", "y"}


async def test_close_writes_what_is_queued_and_a_later_submit_starts_again(
    ctx: Context,
) -> None:
    queued = [asyncio.create_task(ctx.db.writer.submit(insert_projects, s)) for s in "abc"]
    await asyncio.sleep(0)

    await ctx.db.writer.close()

    assert [task.result() for task in queued] == ["a", "b", "c"]
    assert await ctx.db.writer.submit(insert_projects, "d") == "d"
    assert await stored_slugs(ctx) == {"a", "b", "c", "d"}


async def test_a_caller_cancelled_before_its_batch_is_not_written(ctx: Context) -> None:
    release = asyncio.Event()

    async def blocking(conn: AsyncConnection, slugs: list[str]) -> Sequence[str | Exception]:
        await release.wait()
        return await insert_projects(conn, slugs)

    first = asyncio.create_task(ctx.db.writer.submit(blocking, "first"))
    await asyncio.sleep(0.01)  # the writer is now inside the first batch
    second = asyncio.create_task(ctx.db.writer.submit(insert_projects, "second"))
    await asyncio.sleep(0)
    second.cancel()
    release.set()

    assert await first == "first"
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await ctx.db.writer.submit(insert_projects, "third") == "third"
    assert await stored_slugs(ctx) == {"first", "third"}

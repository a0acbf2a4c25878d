"""store/audit.py on SQLite and PostgreSQL: append, filters, newest first, keyset pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete

from cronkeeper.domain.models import AuditEntry, Project
from cronkeeper.domain.states import AuditOutcome
from cronkeeper.service.context import Context
from cronkeeper.store import audit as audit_store
from cronkeeper.store import projects as project_store
from cronkeeper.store.tables import projects

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

#: (minutes after T0, action, outcome) — inserted in this order.
HISTORY = [
    (0, "job.create", "success"),
    (1, "job.update", "success"),
    (2, "key.create", "success"),
    (3, "job.delete", "failed"),
    (4, "run.replay", "success"),
    (5, "job.trigger", "success"),
    (6, "key.revoke", "failed"),
]


async def new_project(ctx: Context, slug: str = "default") -> Project:
    async with ctx.db.write() as conn:
        return await project_store.insert_project(conn, slug, slug, f"ping-{slug}", T0)


async def record(
    ctx: Context,
    project: Project | None,
    at: datetime,
    action: str,
    outcome: str = "success",
    **extra: Any,
) -> None:
    values: dict[str, Any] = {
        "actor": "ci",
        "ip": "10.0.0.7",
        "target": f"job:{action}",
        "diff": {},
    } | extra
    async with ctx.db.write() as conn:
        await audit_store.insert_audit(
            conn,
            project_id=project.id if project else None,
            at=at,
            action=action,
            outcome=AuditOutcome(outcome),
            **values,
        )


async def record_history(ctx: Context, project: Project) -> None:
    for minutes, action, outcome in HISTORY:
        await record(ctx, project, T0 + timedelta(minutes=minutes), action, outcome)


async def entries(ctx: Context, where: audit_store.AuditFilter) -> list[AuditEntry]:
    async with ctx.db.read() as conn:
        return await audit_store.list_audit(conn, where)


async def actions(ctx: Context, project: Project | None, **filters: Any) -> list[str]:
    where = audit_store.AuditFilter(project.id if project else None, **filters)
    return [entry.action for entry in await entries(ctx, where)]


async def test_an_audit_entry_reads_back_with_every_field(ctx: Context) -> None:
    project = await new_project(ctx)
    diff = {"schedule": ["0 2 * * *", "*/5 * * * *"], "target": {"headers": "***"}}
    await record(
        ctx,
        project,
        T0,
        "job.update",
        actor="key:deploy-bot",
        target="job:nightly",
        diff=diff,
        detail="changed by CI",
    )

    [entry] = await entries(ctx, audit_store.AuditFilter(project.id))

    assert isinstance(entry.id, int)
    assert entry.project_id == project.id
    assert entry.at == T0
    assert entry.at.tzinfo is UTC
    assert entry.actor == "key:deploy-bot"
    assert entry.ip == "10.0.0.7"
    assert entry.action == "job.update"
    assert entry.target == "job:nightly"
    assert entry.diff == diff
    assert entry.outcome is AuditOutcome.SUCCESS
    assert entry.detail == "changed by CI"


async def test_audit_entries_come_newest_first(ctx: Context) -> None:
    project = await new_project(ctx)
    await record(ctx, project, T0 + timedelta(minutes=5), "job.update")
    await record(ctx, project, T0, "job.create")
    await record(ctx, project, T0 + timedelta(minutes=5, microseconds=1), "job.pause")
    await record(ctx, project, T0 + timedelta(minutes=5), "job.resume")  # ties: last in first

    assert await actions(ctx, project) == ["job.pause", "job.resume", "job.update", "job.create"]


async def test_an_action_filter_matches_that_action_exactly(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)

    assert await actions(ctx, project, action="job.create") == ["job.create"]
    assert await actions(ctx, project, action="key.revoke") == ["key.revoke"]
    assert await actions(ctx, project, action="job") == []
    assert await actions(ctx, project, action="job.cre") == []


async def test_an_action_filter_ending_in_a_dot_or_star_matches_a_prefix(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)

    every_job_action = ["job.trigger", "job.delete", "job.update", "job.create"]
    assert await actions(ctx, project, action="job.") == every_job_action
    assert await actions(ctx, project, action="job.*") == every_job_action
    assert await actions(ctx, project, action="key.") == ["key.revoke", "key.create"]
    assert await actions(ctx, project, action="channel.") == []


async def test_an_outcome_filter_keeps_only_that_outcome(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)

    assert await actions(ctx, project, outcome="failed") == ["key.revoke", "job.delete"]
    assert len(await actions(ctx, project, outcome="success")) == 5
    assert await actions(ctx, project, action="job.", outcome="failed") == ["job.delete"]


async def test_since_is_inclusive_and_until_is_exclusive(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)

    since = T0 + timedelta(minutes=2)
    until = T0 + timedelta(minutes=5)
    assert await actions(ctx, project, since=since) == [
        "key.revoke",
        "job.trigger",
        "run.replay",
        "job.delete",
        "key.create",
    ]
    assert await actions(ctx, project, until=until) == [
        "run.replay",
        "job.delete",
        "key.create",
        "job.update",
        "job.create",
    ]
    assert await actions(ctx, project, since=since, until=until) == [
        "run.replay",
        "job.delete",
        "key.create",
    ]


async def test_time_filters_given_in_another_timezone_mean_the_same_instant(
    ctx: Context,
) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)
    new_york = ZoneInfo("America/New_York")

    since = (T0 + timedelta(minutes=4)).astimezone(new_york)  # 07:04 local
    until = (T0 + timedelta(minutes=6)).astimezone(new_york)
    assert await actions(ctx, project, since=since, until=until) == ["job.trigger", "run.replay"]


async def test_keyset_pages_walk_every_entry_once_newest_first(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)
    same_instant = T0 + timedelta(minutes=3)
    for action in ("job.pause", "job.resume", "run.cancel"):  # ties on `at` across pages
        await record(ctx, project, same_instant, action)
    everything = await entries(ctx, audit_store.AuditFilter(project.id, limit=100))

    walked: list[AuditEntry] = []
    before: tuple[datetime, int] | None = None
    for _ in range(20):  # bounded, so a cursor that never advances fails instead of hanging
        page = await entries(ctx, audit_store.AuditFilter(project.id, before=before, limit=2))
        if not page:
            break
        assert len(page) <= 2
        walked.extend(page)
        before = (page[-1].at, page[-1].id)

    assert len(everything) == 10
    assert walked == everything
    assert len({entry.id for entry in walked}) == 10
    assert [entry.at for entry in walked] == sorted((e.at for e in walked), reverse=True)


async def test_a_new_entry_does_not_shift_the_next_page(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)
    first = await entries(ctx, audit_store.AuditFilter(project.id, limit=3))
    await record(ctx, project, T0 + timedelta(hours=1), "job.create")  # newer than any page

    cursor = (first[-1].at, first[-1].id)
    second = await entries(ctx, audit_store.AuditFilter(project.id, before=cursor, limit=3))

    assert [e.action for e in first] == ["key.revoke", "job.trigger", "run.replay"]
    assert [e.action for e in second] == ["job.delete", "key.create", "job.update"]


async def test_a_project_sees_only_its_own_entries_and_none_means_all(ctx: Context) -> None:
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    await record(ctx, default, T0, "job.create")
    await record(ctx, other, T0 + timedelta(seconds=1), "key.create")
    await record(ctx, None, T0 + timedelta(seconds=2), "config.apply")

    assert await actions(ctx, default) == ["job.create"]
    assert await actions(ctx, other) == ["key.create"]
    assert await actions(ctx, None) == ["config.apply", "key.create", "job.create"]


async def test_audit_entries_outlive_the_project_they_were_about(ctx: Context) -> None:
    doomed = await new_project(ctx, "doomed")
    await record(ctx, doomed, T0, "job.delete", diff={"slug": ["backup", None]})
    async with ctx.db.write() as conn:
        await conn.execute(delete(projects).where(projects.c.id == doomed.id))

    [entry] = await entries(ctx, audit_store.AuditFilter(None))
    assert entry.project_id is None
    assert entry.action == "job.delete"
    assert entry.diff == {"slug": ["backup", None]}
    assert await entries(ctx, audit_store.AuditFilter(doomed.id)) == []


async def test_the_limit_caps_a_page(ctx: Context) -> None:
    project = await new_project(ctx)
    await record_history(ctx, project)
    assert await actions(ctx, project, limit=2) == ["key.revoke", "job.trigger"]
    assert len(await actions(ctx, project)) == len(HISTORY)
    unknown = audit_store.AuditFilter(uuid.uuid4())
    assert await entries(ctx, unknown) == []

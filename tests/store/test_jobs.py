"""store/jobs.py on SQLite and PostgreSQL: CRUD, filters, keyset pages, conflicts, cascades."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError

from cronkeeper.domain.jobs import AlertPolicy, JobSpec, RetryPolicy
from cronkeeper.domain.models import Job, Project
from cronkeeper.domain.states import AuditOutcome, JobKind, JobStatus, MonitorState
from cronkeeper.errors import Conflict
from cronkeeper.service.context import Context
from cronkeeper.store import audit as audit_store
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store.tables import attempts, events, job_tags, jobs, runs
from cronkeeper.testing import FakeClock


def http_spec(slug: str, **changes: object) -> JobSpec:
    spec = JobSpec(
        slug=slug,
        kind=JobKind.HTTP,
        name=slug.replace("-", " ").title(),
        schedule="0 2 * * *",
        target={"method": "POST", "url": f"https://example.com/{slug}"},
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


async def new_project(ctx: Context, slug: str = "default") -> Project:
    async with ctx.db.write() as conn:
        return await project_store.insert_project(
            conn, slug, slug.title(), f"ping-{slug}", ctx.clock.now()
        )


async def add_job(ctx: Context, project: Project, spec: JobSpec) -> Job:
    async with ctx.db.write() as conn:
        return await job_store.insert_job(
            conn,
            project_id=project.id,
            spec=spec,
            ping_uuid=None,
            next_fire_at=None,
            now=ctx.clock.now(),
        )


async def slugs(ctx: Context, where: job_store.JobFilter) -> list[str]:
    async with ctx.db.read() as conn:
        return [job.slug for job in await job_store.list_jobs(conn, where)]


async def count(ctx: Context, table: Table) -> int:
    async with ctx.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def add_run(ctx: Context, job: Job, scheduled_for: datetime | None) -> uuid.UUID:
    run_id = uuid.uuid4()
    row: dict[str, object] = {
        "id": run_id,
        "project_id": job.project_id,
        "job_id": job.id,
        "source": "schedule",
        "status": "succeeded",
        "scheduled_for": scheduled_for,
        "started_at": scheduled_for,
        "finished_at": scheduled_for,
        "duration_ms": 1200,
        "created_at": ctx.clock.now(),
    }
    if "ordered_at" in runs.c:  # the run-history sort key: the slot, else creation time
        row["ordered_at"] = scheduled_for or row["created_at"]
    async with ctx.db.write() as conn:
        await conn.execute(runs.insert().values(**row))
    return run_id


# --- insert / get --------------------------------------------------------------------


async def test_an_inserted_job_reads_back_exactly_as_stored(ctx: Context) -> None:
    project = await new_project(ctx)
    spec = http_spec(
        "nightly-report",
        timezone="Europe/Berlin",
        tags=("reports", "nightly"),
        retry=RetryPolicy(max_attempts=5, retry_on_statuses=(500, 503)),
        alerts=AlertPolicy(channels=("ops-webhook",), realert_every=3600.0),
        description="Renders yesterday's report",
        max_runtime=3600.0,
    )
    next_fire = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    ping = uuid.uuid4()
    async with ctx.db.write() as conn:
        inserted = await job_store.insert_job(
            conn,
            project_id=project.id,
            spec=spec,
            ping_uuid=ping,
            next_fire_at=next_fire,
            now=ctx.clock.now(),
        )
    async with ctx.db.read() as conn:
        stored = await job_store.get_job(conn, project.id, "nightly-report")

    assert stored == inserted
    assert stored.spec == spec
    assert stored.monitor_state is MonitorState.NEW
    assert stored.ping_uuid == ping
    assert stored.next_fire_at == next_fire
    assert stored.created_at == stored.updated_at == ctx.clock.now()


async def test_get_job_finds_nothing_for_an_unknown_slug_or_another_projects_job(
    ctx: Context,
) -> None:
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    await add_job(ctx, default, http_spec("backup"))
    async with ctx.db.read() as conn:
        assert await job_store.get_job(conn, default.id, "nope") is None
        assert await job_store.get_job(conn, other.id, "backup") is None
        assert await job_store.get_job(conn, default.id, "backup") is not None


async def test_duplicate_slug_in_a_project_is_a_conflict_and_leaves_nothing_written(
    ctx: Context,
) -> None:
    project = await new_project(ctx)
    first = await add_job(ctx, project, http_spec("backup", tags=("db",)))

    with pytest.raises(Conflict) as raised:
        async with ctx.db.write() as conn:
            await audit_store.insert_audit(
                conn,
                project_id=project.id,
                at=ctx.clock.now(),
                actor="ci",
                ip=None,
                action="job.create",
                target="backup",
                diff={},
                outcome=AuditOutcome.SUCCESS,
            )
            await job_store.insert_job(
                conn,
                project_id=project.id,
                spec=http_spec("backup", kind=JobKind.HEARTBEAT, target=None, tags=("x",)),
                ping_uuid=uuid.uuid4(),
                next_fire_at=None,
                now=ctx.clock.now(),
            )

    assert raised.value.field == "slug"
    assert "backup" in raised.value.detail
    async with ctx.db.read() as conn:
        assert await job_store.get_job(conn, project.id, "backup") == first
        assert await audit_store.list_audit(conn, audit_store.AuditFilter(project.id)) == []
    assert await count(ctx, jobs) == 1
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="x")) == []
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="db")) == ["backup"]


async def test_the_same_slug_in_another_project_is_accepted(ctx: Context) -> None:
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    mine = await add_job(ctx, default, http_spec("backup"))
    theirs = await add_job(ctx, other, http_spec("backup"))

    assert mine.id != theirs.id
    assert await slugs(ctx, job_store.JobFilter(default.id)) == ["backup"]
    assert await slugs(ctx, job_store.JobFilter(other.id)) == ["backup"]


async def test_a_job_in_a_project_that_does_not_exist_is_refused(ctx: Context) -> None:
    ghost = Project(
        uuid.uuid4(), "ghost", "Ghost", 30, "ping-ghost", "badge-ghost", ctx.clock.now()
    )
    with pytest.raises(IntegrityError):
        await add_job(ctx, ghost, http_spec("backup"))
    assert await count(ctx, jobs) == 0


# --- update --------------------------------------------------------------------------


async def test_updating_a_job_replaces_its_spec_tags_and_next_fire(
    ctx: Context, clock: FakeClock
) -> None:
    project = await new_project(ctx)
    job = await add_job(ctx, project, http_spec("backup", tags=("db", "nightly")))
    clock.advance(90)
    new_spec = http_spec("backup", schedule="*/5 * * * *", tags=("db", "frequent"))
    next_fire = clock.now() + timedelta(minutes=5)

    async with ctx.db.write() as conn:
        updated = await job_store.update_job(conn, job, new_spec, next_fire, clock.now())
    async with ctx.db.read() as conn:
        stored = await job_store.get_job(conn, project.id, "backup")

    assert stored == updated
    assert stored.id == job.id
    assert stored.spec.schedule == "*/5 * * * *"
    assert stored.next_fire_at == next_fire
    assert stored.created_at == job.created_at
    assert stored.updated_at == job.created_at + timedelta(seconds=90)
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="nightly")) == []
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="frequent")) == ["backup"]
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="db")) == ["backup"]


async def test_pausing_a_job_pauses_its_monitor_and_resuming_starts_it_afresh(
    ctx: Context,
) -> None:
    project = await new_project(ctx)
    job = await add_job(ctx, project, http_spec("backup"))
    async with ctx.db.write() as conn:
        await conn.execute(update(jobs).where(jobs.c.id == job.id).values(monitor_state="up"))
        job = replace(job, monitor_state=MonitorState.UP)

    async with ctx.db.write() as conn:
        paused_spec = replace(job.spec, status=JobStatus.PAUSED)
        paused = await job_store.update_job(conn, job, paused_spec, None, ctx.clock.now())
    async with ctx.db.read() as conn:
        stored_paused = await job_store.get_job(conn, project.id, "backup")
    async with ctx.db.write() as conn:
        active_spec = replace(job.spec, status=JobStatus.ACTIVE)
        resumed = await job_store.update_job(conn, paused, active_spec, None, ctx.clock.now())
    async with ctx.db.read() as conn:
        stored_resumed = await job_store.get_job(conn, project.id, "backup")

    assert stored_paused is not None and stored_resumed is not None
    assert stored_paused.monitor_state is MonitorState.PAUSED
    assert stored_paused.spec.status is JobStatus.PAUSED
    assert stored_resumed.monitor_state is MonitorState.NEW
    assert resumed.monitor_state is MonitorState.NEW
    assert await slugs(ctx, job_store.JobFilter(project.id, status="active")) == ["backup"]


async def test_renaming_a_job_to_a_slug_already_taken_is_a_conflict(ctx: Context) -> None:
    project = await new_project(ctx)
    await add_job(ctx, project, http_spec("backup"))
    report = await add_job(ctx, project, http_spec("report", tags=("r",)))

    with pytest.raises(Conflict):
        async with ctx.db.write() as conn:
            renamed = replace(report.spec, slug="backup", tags=("changed",))
            await job_store.update_job(conn, report, renamed, None, ctx.clock.now())

    assert await slugs(ctx, job_store.JobFilter(project.id)) == ["backup", "report"]
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="r")) == ["report"]


# --- list ----------------------------------------------------------------------------


async def test_list_jobs_filters_by_tag_status_and_kind(ctx: Context) -> None:
    project = await new_project(ctx)
    heartbeat = {"kind": JobKind.HEARTBEAT, "target": None, "schedule": "@hourly"}
    paused = JobStatus.PAUSED
    await add_job(ctx, project, http_spec("api-sync", tags=("sync", "prod")))
    await add_job(ctx, project, http_spec("api-old", tags=("sync",), status=paused))
    await add_job(ctx, project, http_spec("backup-ping", tags=("prod",), **heartbeat))
    await add_job(ctx, project, http_spec("dev-ping", tags=("dev",), status=paused, **heartbeat))
    await add_job(ctx, project, http_spec("plain"))

    def where(**filters: str) -> job_store.JobFilter:
        return job_store.JobFilter(project.id, **filters)  # type: ignore[arg-type]

    assert await slugs(ctx, where()) == [
        "api-old",
        "api-sync",
        "backup-ping",
        "dev-ping",
        "plain",
    ]
    assert await slugs(ctx, where(tag="sync")) == ["api-old", "api-sync"]
    assert await slugs(ctx, where(tag="prod")) == ["api-sync", "backup-ping"]
    assert await slugs(ctx, where(tag="missing")) == []
    assert await slugs(ctx, where(status="paused")) == ["api-old", "dev-ping"]
    assert await slugs(ctx, where(status="active")) == ["api-sync", "backup-ping", "plain"]
    assert await slugs(ctx, where(kind="heartbeat")) == ["backup-ping", "dev-ping"]
    assert await slugs(ctx, where(kind="command")) == []
    assert await slugs(ctx, where(kind="heartbeat", status="active", tag="prod")) == ["backup-ping"]
    assert await slugs(ctx, where(kind="http", status="paused", tag="prod")) == []


async def test_list_jobs_shows_only_the_projects_own_jobs(ctx: Context) -> None:
    default = await new_project(ctx, "default")
    other = await new_project(ctx, "other")
    await add_job(ctx, default, http_spec("mine", tags=("t",)))
    await add_job(ctx, other, http_spec("theirs", tags=("t",)))

    assert await slugs(ctx, job_store.JobFilter(default.id)) == ["mine"]
    assert await slugs(ctx, job_store.JobFilter(other.id, tag="t")) == ["theirs"]


async def walk_pages(
    ctx: Context, project: Project, limit: int, cursor: str | None = None
) -> list[list[str]]:
    """Every page after `cursor` until an empty one (at most 20, so a stuck cursor fails)."""
    pages: list[list[str]] = []
    for _ in range(20):
        page = await slugs(ctx, job_store.JobFilter(project.id, after_slug=cursor, limit=limit))
        if not page:
            return pages
        pages.append(page)
        cursor = page[-1]
    raise AssertionError(f"pagination never ended: {pages[:4]} ...")


async def test_keyset_pages_by_slug_have_no_duplicates_and_no_gaps(ctx: Context) -> None:
    project = await new_project(ctx)
    # Hyphens and digits sort before letters byte-wise; the pages must still agree.
    names = ["b", "a-b", "ab", "a", "a-c", "a0", "zz-top", "m-1", "m-10", "m-2", "aa"]
    for name in names:
        await add_job(ctx, project, http_spec(name))

    pages = await walk_pages(ctx, project, limit=3)

    seen = [slug for page in pages for slug in page]
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(seen))
    assert [len(page) for page in pages] == [3, 3, 3, 2]
    assert seen == await slugs(ctx, job_store.JobFilter(project.id, limit=100))


async def test_a_job_inserted_between_page_fetches_does_not_shift_the_pages(
    ctx: Context,
) -> None:
    project = await new_project(ctx)
    for number in range(1, 7):
        await add_job(ctx, project, http_spec(f"job-0{number}"))

    first = await slugs(ctx, job_store.JobFilter(project.id, limit=2))
    await add_job(ctx, project, http_spec("job-00"))  # behind the cursor: not seen
    await add_job(ctx, project, http_spec("job-025"))  # ahead of the cursor: seen once
    rest = [slug for page in await walk_pages(ctx, project, 2, cursor=first[-1]) for slug in page]

    assert first == ["job-01", "job-02"]
    assert rest == ["job-025", "job-03", "job-04", "job-05", "job-06"]


async def test_the_page_size_limits_how_many_jobs_come_back(ctx: Context) -> None:
    project = await new_project(ctx)
    for number in range(5):
        await add_job(ctx, project, http_spec(f"job-{number}"))

    assert await slugs(ctx, job_store.JobFilter(project.id, limit=1)) == ["job-0"]
    assert len(await slugs(ctx, job_store.JobFilter(project.id, limit=4))) == 4
    assert len(await slugs(ctx, job_store.JobFilter(project.id))) == 5


# --- delete --------------------------------------------------------------------------


async def test_deleting_a_job_takes_its_tags_runs_attempts_and_events_with_it(
    ctx: Context,
) -> None:
    project = await new_project(ctx)
    doomed = await add_job(ctx, project, http_spec("doomed", tags=("a", "b")))
    kept = await add_job(ctx, project, http_spec("kept", tags=("a",)))
    slot = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    doomed_run = await add_run(ctx, doomed, slot)
    await add_run(ctx, doomed, None)
    await add_run(ctx, kept, slot)
    async with ctx.db.write() as conn:
        await conn.execute(
            attempts.insert().values(
                id=uuid.uuid4(), run_id=doomed_run, number=1, status="success", started_at=slot
            )
        )
        await conn.execute(
            events.insert().values(run_id=doomed_run, sequence_num=1, type="run_queued", at=slot)
        )

    async with ctx.db.write() as conn:
        await job_store.delete_job(conn, doomed.id)

    async with ctx.db.read() as conn:
        assert await job_store.get_job(conn, project.id, "doomed") is None
        remaining_runs = (await conn.execute(select(runs.c.job_id))).scalars().all()
        remaining_tags = (await conn.execute(select(job_tags.c.job_id))).scalars().all()
    assert remaining_runs == [kept.id]
    assert remaining_tags == [kept.id]
    assert await count(ctx, attempts) == 0
    assert await count(ctx, events) == 0
    assert await slugs(ctx, job_store.JobFilter(project.id, tag="a")) == ["kept"]


async def test_deleting_a_job_that_is_already_gone_changes_nothing(ctx: Context) -> None:
    project = await new_project(ctx)
    await add_job(ctx, project, http_spec("kept"))
    async with ctx.db.write() as conn:
        await job_store.delete_job(conn, uuid.uuid4())
    assert await slugs(ctx, job_store.JobFilter(project.id)) == ["kept"]


# --- last runs -----------------------------------------------------------------------


async def test_last_runs_gives_the_latest_run_of_each_job_that_has_one(ctx: Context) -> None:
    project = await new_project(ctx)
    ran = await add_job(ctx, project, http_spec("ran"))
    never = await add_job(ctx, project, http_spec("never"))
    older = await add_run(ctx, ran, datetime(2026, 3, 1, 1, 0, tzinfo=UTC))
    newest_slot = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    newest = await add_run(ctx, ran, newest_slot)
    async with ctx.db.write() as conn:
        await conn.execute(update(jobs).where(jobs.c.id == ran.id).values(last_run_id=newest))

    async with ctx.db.read() as conn:
        summaries = await job_store.last_runs(conn, [ran.id, never.id])
        nothing = await job_store.last_runs(conn, [])
        none_ran = await job_store.last_runs(conn, [never.id])

    assert set(summaries) == {ran.id}
    summary = summaries[ran.id]
    assert summary.id == newest != older
    assert summary.status == "succeeded"
    assert summary.source == "schedule"
    assert summary.scheduled_for == newest_slot
    assert summary.finished_at == newest_slot
    assert summary.duration_ms == 1200
    assert summary.failure_reason is None
    assert nothing == {}
    assert none_ran == {}

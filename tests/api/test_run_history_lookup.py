"""A job's run history names its job by slugs that the page's own statement looks up: what
a missing project or job, an empty history, another project's key and the `job` filter
answer there — the same as when the project and the job were read one by one."""

from __future__ import annotations

from datetime import timedelta

import httpx

from cronkeeper.service.context import Context

from .conftest import Keys, bearer
from .test_runs_api import NOON, add_run, assert_problem, create_job, ids, job_runs

OTHER_JOBS = "/api/v1/projects/other/jobs"


async def test_a_job_without_runs_has_an_empty_history(api: httpx.AsyncClient) -> None:
    await create_job(api, "quiet")

    response = await api.get(job_runs("quiet"))

    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"items": [], "next_cursor": None}}


async def test_the_history_of_a_job_in_an_unknown_project_is_404_naming_the_project(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    url = "/api/v1/projects/nowhere/jobs/backup/runs"

    problem = assert_problem(await api.get(url, headers=bearer(keys.admin)), 404)

    assert problem["type"] == "/problems/not-found"
    assert "project" in problem["detail"]


async def test_the_history_of_an_unknown_job_is_404_naming_the_job(api: httpx.AsyncClient) -> None:
    problem = assert_problem(await api.get(job_runs("no-such-job")), 404)

    assert "job" in problem["detail"]


async def test_a_job_of_another_project_is_not_found_in_this_one(
    api: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    created = await api.post(
        OTHER_JOBS,
        json={"slug": "theirs", "kind": "heartbeat", "schedule": "0 3 * * *"},
        headers=bearer(keys.other),
    )
    assert created.status_code == 201, created.text

    problem = assert_problem(await api.get(job_runs("theirs"), headers=bearer(keys.admin)), 404)

    assert "job" in problem["detail"]


async def test_a_key_of_another_project_is_forbidden_even_for_an_existing_history(
    api: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    await create_job(api, "backup")
    await add_run(ctx, "backup", at=NOON)

    response = await api.get(job_runs("backup"), headers=bearer(keys.other))

    assert_problem(response, 403)


async def test_a_filter_that_matches_nothing_is_an_empty_page_not_a_404(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "backup")
    await add_run(ctx, "backup", at=NOON)

    assert await ids(api, job_runs("backup"), status="failed") == []
    assert await ids(api, job_runs("backup"), job="no-match") == []


async def test_the_job_filter_on_a_jobs_history_still_applies(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "backup")
    first = await add_run(ctx, "backup", at=NOON)
    second = await add_run(ctx, "backup", at=NOON + timedelta(minutes=1))

    assert await ids(api, job_runs("backup"), job="BACK") == [second, first]

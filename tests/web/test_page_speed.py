"""Every dashboard page works with a long history and a full overview, and does a bounded
amount of work: a job with 10,000 runs, 49 more jobs with 20 runs each.

No stopwatch here: timings flake on a loaded machine, and how fast the pages are is
measured by `python -m bench pages` (bench/README.md, "Dashboard pages"). Checked
instead, deterministically, is the shape of the work: each page sends the ledger a small
fixed number of SQL statements, the same with 5 jobs and 100 runs as with 50 jobs and
10,000 runs, so no page reads per job or per run of the history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from cronkeeper.domain.models import Actor
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context
from cronkeeper.testing import dashboard_pages
from cronkeeper.web import auth

from .conftest import Keys, LogIn, http_job
from .ledger import add_runs

HISTORY = 10_000
JOBS = 50
OTHER_RUNS = 20
EVERY = timedelta(minutes=5)
#: The most statements any page may send, BEGINs and the session's key lookup included.
MAX_STATEMENTS = 12
ROW = re.compile(r'<tr id="run-([0-9a-f-]+)" class="run-row')


@pytest.fixture
def statements(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the ledger receives from now on. A session's key is looked up
    again on every request (not once per RECHECK_SECONDS), so equal pages count equal."""
    monkeypatch.setattr(auth, "RECHECK_SECONDS", 0.0)
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    engine = ctx.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


async def add_jobs(ctx: Context, admin: Actor, numbers: range) -> None:
    for number in numbers:
        slug = f"job-{number:02d}"
        await job_service.create_job(ctx, admin, "default", http_job(slug))
        await add_runs(ctx, slug, OTHER_RUNS)


async def count_statements(
    client: httpx.AsyncClient, paths: dict[str, str], statements: list[str]
) -> dict[str, int]:
    counts = {}
    for name, path in paths.items():
        statements.clear()
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        counts[name] = len(statements)
    return counts


@pytest.mark.slow
async def test_every_page_sends_as_many_statements_for_50_jobs_and_10000_runs_as_for_5(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys, statements: list[str]
) -> None:
    # A small ledger first: `big` with its 100 oldest runs, 4 more jobs.
    await job_service.create_job(ctx, admin, "default", http_job("big"))
    end = ctx.clock.now() - EVERY * (HISTORY - 100)
    run_ids = await add_runs(ctx, "big", 100, end=end, every=EVERY)
    await add_jobs(ctx, admin, range(4))
    client = await logged_in(keys.write)
    small = await count_statements(client, await dashboard_pages(client, run_ids), statements)

    # Then the full one: `big`'s 9,900 newer runs up to now, 45 more jobs.
    run_ids += await add_runs(ctx, "big", HISTORY - 100, every=EVERY)
    await add_jobs(ctx, admin, range(4, JOBS - 1))
    full = await count_statements(client, await dashboard_pages(client, run_ids), statements)

    print(f"\nSQL statements per page (5 jobs, 100 runs → 50 jobs, 10,000 runs): {full}")
    assert full == small
    assert max(full.values()) <= MAX_STATEMENTS, full


@pytest.fixture
async def full_ledger(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> tuple[httpx.AsyncClient, list[Any]]:
    """Job `big` with 10,000 runs (one every 5 minutes up to now, every 4th failed), 49
    more jobs with 20 runs each; a client logged in with a write key."""
    await job_service.create_job(ctx, admin, "default", http_job("big"))
    run_ids = await add_runs(ctx, "big", HISTORY, every=EVERY)
    await add_jobs(ctx, admin, range(JOBS - 1))
    return await logged_in(keys.write), run_ids


async def page(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, (path, response.text[:300])
    return response.text


@pytest.mark.slow
async def test_overview_lists_all_50_jobs_with_their_last_20_outcomes(
    full_ledger: tuple[httpx.AsyncClient, list[Any]],
) -> None:
    client, run_ids = full_ledger
    html = await page(client, "/")
    slugs = re.findall(r'<a href="/jobs/([^"]+)" class="job-link">', html)
    assert slugs == ["big", *(f"job-{number:02d}" for number in range(JOBS - 1))]
    assert html.count('aria-label="last 20 outcomes"') == JOBS
    assert f'href="/runs/{run_ids[-1]}"' in html  # big's newest run, on its strip
    assert f'href="/runs/{run_ids[-21]}"' not in html  # older than the strip reaches
    assert "Next page" not in html


async def test_overview_shows_50_jobs_a_page_and_links_to_the_next(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    for number in range(JOBS + 1):
        await job_service.create_job(ctx, admin, "default", http_job(f"job-{number:02d}"))
    client = await logged_in(keys.read)
    html = await page(client, "/")
    slugs = re.findall(r'<a href="/jobs/([^"]+)" class="job-link">', html)
    assert slugs == [f"job-{number:02d}" for number in range(JOBS)]
    assert html.count('aria-label="last 0 outcomes"') == JOBS  # none of them ran yet
    following = re.search(r'href="(/\?cursor=[^"]+)">Next page', html)
    assert following, "no link to the next page"

    html = await page(client, following.group(1).replace("&amp;", "&"))
    slugs = re.findall(r'<a href="/jobs/([^"]+)" class="job-link">', html)
    assert slugs == [f"job-{JOBS:02d}"]
    assert "Next page" not in html


@pytest.mark.slow
async def test_job_detail_pages_through_10000_runs_newest_first(
    full_ledger: tuple[httpx.AsyncClient, list[Any]],
) -> None:
    client, run_ids = full_ledger
    newest = [str(run_id) for run_id in reversed(run_ids)]
    html = await page(client, "/jobs/big")
    assert ROW.findall(html) == newest[:25]
    assert 'class="charts"' in html
    older = re.search(r'href="(/jobs/big\?cursor=[^"]+)">Older runs', html)
    assert older, "no link to the older runs"

    html = await page(client, older.group(1).replace("&amp;", "&"))
    assert ROW.findall(html) == newest[25:50]
    assert 'href="/jobs/big">← Newest' in html
    assert "Older runs" in html
    assert 'class="charts"' not in html


@pytest.mark.slow
async def test_run_pages_of_a_long_history_show_the_run_and_its_events(
    full_ledger: tuple[httpx.AsyncClient, list[Any]],
) -> None:
    client, run_ids = full_ledger
    middle = run_ids[HISTORY // 2]  # succeeded
    html = await page(client, f"/runs/{middle}")
    assert str(middle) in html
    for text in ("run_queued", "queued (schedule)", "attempt 1", "run_succeeded", "HTTP 200"):
        assert text in html

    html = await page(client, f"/runs/{run_ids[-1]}/expand")  # the newest, failed
    for text in ("Why it failed", "http_5xx", "HTTP 503 Service Unavailable", "run_failed"):
        assert text in html

    html = await page(client, "/jobs/big/watch")
    assert 'id="watcher"' in html
    assert ROW.findall(html)[0] == str(run_ids[-1])


@pytest.mark.slow
async def test_edit_audit_queue_and_topology_pages_cover_every_job(
    full_ledger: tuple[httpx.AsyncClient, list[Any]],
) -> None:
    client, _ = full_ledger
    html = await page(client, "/jobs/big/edit")
    assert 'action="/jobs/big/edit"' in html
    assert "https://reports.example.com/run" in html
    assert "s3cret" not in html  # the Authorization header stays masked

    html = await page(client, "/audit")
    assert html.count("<code>job.create</code>") == JOBS
    assert "Older entries" in html  # and the key creations before them

    html = await page(client, "/queue")
    assert f"{JOBS * 12} runs finished in the last hour" in html  # one per 5 minutes

    html = await page(client, "/topology")
    jobs = re.findall(r'class="node job [^"]*" data-job="([^"]+)"', html)
    assert sorted(jobs) == ["big", *(f"job-{number:02d}" for number in range(JOBS - 1))]

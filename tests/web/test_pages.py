"""Every dashboard page renders from the services, with 404s for what does not exist."""

from __future__ import annotations

import re
import uuid

from cronkeeper.domain.models import Actor
from cronkeeper.service import jobs as job_service
from cronkeeper.service import runs as run_service
from cronkeeper.service.context import Context

from .conftest import Keys, LogIn, http_job
from .ledger import add_runs


async def test_the_overview_lists_jobs_with_badges_countdown_and_outcomes(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly", tags=["reports"]))
    await job_service.create_job(ctx, admin, "default", http_job("hourly", schedule="@hourly"))
    await add_runs(ctx, "nightly", 8)
    client = await logged_in(keys.read)
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    assert '<a href="/jobs/nightly" class="job-link">nightly</a>' in html
    assert "Every fifth minute of every hour" in html
    assert 'class="countdown"' in html
    assert html.count('class="tick s-') == 8
    assert "Content-Security-Policy" in page.headers
    filtered = await client.get("/?tag=reports")
    assert "/jobs/nightly" in filtered.text and "/jobs/hourly" not in filtered.text
    searched = await client.get("/?q=HOUR")
    assert "/jobs/hourly" in searched.text and "/jobs/nightly" not in searched.text
    by_state = await client.get("/?state=paused")
    assert "No job matches these filters." in by_state.text


async def test_an_empty_project_explains_how_to_create_a_first_job(
    logged_in: LogIn, keys: Keys
) -> None:
    client = await logged_in(keys.read)
    html = (await client.get("/")).text
    assert "No jobs yet" in html
    for way in ("cronkeeper jobs create", "curl -X POST", "cronkeeper apply -f"):
        assert way in html


async def test_a_bad_tag_filter_is_named_not_a_crash(logged_in: LogIn, keys: Keys) -> None:
    client = await logged_in(keys.read)
    response = await client.get("/?tag=%3Cscript%3E")
    assert response.status_code == 200
    assert "Tag is not a tag" in response.text
    assert "<script>" not in response.text.split("<body", 1)[1].replace("<script src=", "")


async def test_the_job_page_shows_history_charts_and_pages_by_keyset(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    await add_runs(ctx, "nightly", 40)
    client = await logged_in(keys.read)
    page = await client.get("/jobs/nightly")
    assert page.status_code == 200
    html = page.text
    assert html.count('class="run-row') == 25
    assert html.count("<rect ") >= 2 * 40
    assert "Duration" in html and "Start drift" in html
    assert 'id="watcher"' in html
    assert "http_5xx" in html
    older = re.search(r'href="/jobs/nightly\?cursor=([^"]+)"', html)
    assert older
    second = await client.get(f"/jobs/nightly?cursor={older.group(1)}")
    assert second.text.count('class="run-row') == 15
    assert 'id="watcher"' not in second.text


async def test_a_history_row_expands_to_reason_error_payload_attempts_and_events(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    ids = await add_runs(ctx, "nightly", 4)
    client = await logged_in(keys.read)
    detail = await client.get(f"/runs/{ids[3]}/expand")
    assert detail.status_code == 200
    html = detail.text
    assert "http_5xx" in html
    assert "The target answered with a 5xx server error." in html
    assert "HTTP 503 Service Unavailable" in html
    assert "reports.example.com" in html
    assert "attempt_started" in html and "run_failed" in html
    row = await client.get(f"/runs/{ids[3]}/row")
    assert 'id="run-' in row.text and "hx-trigger" not in row.text


async def test_the_run_page_shows_every_field(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    ids = await add_runs(ctx, "nightly", 4)
    client = await logged_in(keys.write)
    html = (await client.get(f"/runs/{ids[3]}")).text
    for text in ("Trace id", "Scheduled for", "Drift", "upstream down", "HTTP 503", "Replay"):
        assert text in html
    assert 'id="cancel"' not in html  # a final run cannot be cancelled


async def test_the_watcher_returns_runs_created_after_the_newest_shown(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    await add_runs(ctx, "nightly", 3)
    client = await logged_in(keys.read)
    html = (await client.get("/jobs/nightly")).text
    since = re.search(r"/jobs/nightly/watch\?since=([^\"]+)\"", html)
    assert since
    nothing = await client.get(f"/jobs/nightly/watch?since={since.group(1)}")
    assert 'id="watcher"' in nothing.text and "run-row" not in nothing.text
    ctx.clock.advance(1)  # type: ignore[attr-defined]
    run = await run_service.trigger_job(ctx, admin, "default", "nightly")
    new = await client.get(f"/jobs/nightly/watch?since={since.group(1)}")
    assert f'id="run-{run.id}"' in new.text
    assert 'hx-trigger="every 1s"' in new.text  # a queued row refreshes itself
    bad = await client.get("/jobs/nightly/watch?since=garbage")
    assert bad.status_code == 400


async def test_audit_and_queue_pages_render_with_filters(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    await job_service.set_paused(ctx, admin, "default", "nightly", paused=True)
    client = await logged_in(keys.read)
    audit = await client.get("/audit")
    assert audit.status_code == 200
    assert "job.create" in audit.text and "job.pause" in audit.text
    assert "127.0.0.1" in audit.text
    only = await client.get("/audit?action=job.pause&outcome=success")
    assert "<code>job.pause</code>" in only.text and "<code>job.create</code>" not in only.text
    window = await client.get("/audit?from=2000-01-01T00:00&to=2000-01-02T00:00")
    assert "No audit entries match." in window.text
    bad = await client.get("/audit?from=yesterday&action=drop.table")
    assert "From is not a date and time" in bad.text
    assert "Action is not an audit action" in bad.text
    queue = await client.get("/queue")
    assert queue.status_code == 200
    assert "Enqueue → start" in queue.text


async def test_unknown_jobs_and_runs_are_404_pages(logged_in: LogIn, keys: Keys) -> None:
    client = await logged_in(keys.read)
    for path in ("/jobs/nope", "/jobs/NOT..VALID", f"/runs/{uuid.uuid4()}", "/runs/not-a-uuid"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "text/html" in response.headers["content-type"]
        assert "Not found" in response.text


async def test_keys_of_another_project_cannot_see_its_jobs(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("secret-job"))
    client = await logged_in(keys.other)
    assert "secret-job" not in (await client.get("/")).text
    assert (await client.get("/jobs/secret-job")).status_code == 404


async def test_the_api_and_pings_still_answer_beside_the_dashboard(
    browser: object, keys: Keys
) -> None:
    client = browser()  # type: ignore[operator]
    api = await client.get(
        "/api/v1/projects/default/jobs", headers={"Authorization": f"Bearer {keys.read}"}
    )
    assert api.status_code == 200
    assert (await client.get("/ping/" + str(uuid.uuid4()))).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/static/htmx.min.js")).status_code == 200

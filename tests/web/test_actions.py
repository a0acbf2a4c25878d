"""The dashboard's buttons: CSRF and role checks, per-field errors that write nothing,
trigger (and its rate limit), pause/resume, edit destination, delete with confirmation."""

from __future__ import annotations

import re

import httpx

from cronkeeper.domain.models import Actor
from cronkeeper.service import audit as audit_service
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context

from .conftest import Keys, LogIn, http_job, page_csrf
from .ledger import add_runs

HTMX = {"HX-Request": "true"}


async def _audit_actions(ctx: Context, admin: Actor) -> list[tuple[str, str, str]]:
    entries = await audit_service.list_audit(ctx, admin, "default", audit_service.AuditQuery())
    return [(e.action, e.outcome.value, e.actor) for e in entries]


async def test_posts_without_the_csrf_token_are_refused_and_change_nothing(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    client = await logged_in(keys.write)
    for token in (None, "forged"):
        data = {"csrf": token} if token else {}
        response = await client.post("/jobs/nightly/pause", data=data)
        assert response.status_code == 403
        assert "This form has expired" in response.text
    job = await job_service.get_job(ctx, admin, "default", "nightly")
    assert job.status == "active"


async def test_read_only_viewers_see_no_buttons_and_their_posts_are_refused(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    ids = await add_runs(ctx, "nightly", 2)
    client = await logged_in(keys.read)
    html = (await client.get("/jobs/nightly")).text
    for button in ('id="trigger"', 'id="pause"', 'id="edit"', 'id="delete"', "delete-dialog"):
        assert button not in html
    assert 'id="replay"' not in (await client.get(f"/runs/{ids[0]}")).text
    csrf = await page_csrf(client, "/jobs/nightly")
    for action in ("trigger", "pause", "resume", "edit", "delete"):
        response = await client.post(f"/jobs/nightly/{action}", data={"csrf": csrf})
        assert response.status_code == 403, action
        assert "read-only" in response.text
    assert (await client.post(f"/runs/{ids[0]}/replay", data={"csrf": csrf})).status_code == 403
    job = await job_service.get_job(ctx, admin, "default", "nightly")
    assert job.status == "active"
    assert (await client.get("/jobs/nightly/edit")).status_code == 403


async def test_trigger_through_htmx_answers_a_message_and_queues_a_run(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    client = await logged_in(keys.write)
    csrf = await page_csrf(client, "/jobs/nightly")
    response = await client.post("/jobs/nightly/trigger", headers={**HTMX, "X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert "Run queued" in response.text
    assert response.headers["HX-Trigger"] == "runs-changed"
    plain = await client.post("/jobs/nightly/trigger", data={"csrf": csrf})
    assert plain.status_code == 303
    assert plain.headers["location"] == "/jobs/nightly?msg=triggered"
    assert ("job.trigger", "success", "writer") in await _audit_actions(ctx, admin)


async def test_a_rate_limited_trigger_gets_a_friendly_message(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    client = await logged_in(keys.write)
    csrf = await page_csrf(client, "/jobs/nightly")
    answers = []
    for _ in range(6):
        response = await client.post(
            "/jobs/nightly/trigger", headers={**HTMX, "X-CSRF-Token": csrf}
        )
        answers.append(response)
    assert all(a.status_code == 200 for a in answers)
    assert "Easy there" in answers[-1].text
    assert "Try again in" in answers[-1].text
    plain = await client.post("/jobs/nightly/trigger", data={"csrf": csrf})
    assert plain.status_code == 429
    assert "Easy there" in plain.text


async def test_pause_and_resume_redirect_back_with_a_message(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    client = await logged_in(keys.write)
    csrf = await page_csrf(client, "/jobs/nightly")
    paused = await client.post("/jobs/nightly/pause", data={"csrf": csrf})
    assert paused.headers["location"] == "/jobs/nightly?msg=paused"
    html = (await client.get("/jobs/nightly?msg=paused")).text
    assert "Job paused" in html and 'id="resume"' in html
    await client.post("/jobs/nightly/resume", data={"csrf": csrf})
    assert (await job_service.get_job(ctx, admin, "default", "nightly")).status == "active"
    actions = [a for a, _, _ in await _audit_actions(ctx, admin)]
    assert actions[:2] == ["job.resume", "job.pause"]


def _edit_form(html: str) -> dict[str, str]:
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
    textareas = re.findall(r'name="([^"]+)" rows="4">([^<]*)</textarea>', html)
    fields.update(dict(textareas))
    fields["target.method"] = "POST"
    return fields


async def test_editing_with_a_bad_url_names_the_field_and_writes_nothing(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    before = await job_service.get_job(ctx, admin, "default", "nightly")
    client = await logged_in(keys.write)
    page = await client.get("/jobs/nightly/edit")
    assert page.status_code == 200
    form = _edit_form(page.text)
    assert form["target.url"] == "https://reports.example.com/run"
    assert "Authorization: ********" in form["target.headers"]
    bad = {**form, "target.url": "ftp://nowhere", "schedule": "61 * * * *"}
    response = await client.post("/jobs/nightly/edit", data=bad)
    assert response.status_code == 200  # the form again, with its errors
    errors = dict(
        re.findall(r'<p class="field-error" id="e-([^"]+)" role="alert">([^<]+)</p>', response.text)
    )
    assert "http:// or https://" in errors["target-url"]
    assert "schedule" in errors
    assert 'value="ftp://nowhere"' in response.text  # what was typed stays in the form
    headers = {**form, "target.headers": "no colon here"}
    response = await client.post("/jobs/nightly/edit", data=headers)
    assert "Nothing was saved" in response.text
    assert "write each header as" in response.text
    after = await job_service.get_job(ctx, admin, "default", "nightly")
    assert after.target == before.target and after.schedule == before.schedule
    good = {**form, "target.url": "https://reports.example.com/v2", "timeout": "45s"}
    saved = await client.post("/jobs/nightly/edit", data=good)
    assert saved.status_code == 303
    job = await job_service.get_job(ctx, admin, "default", "nightly")
    assert job.target is not None and job.target["url"] == "https://reports.example.com/v2"
    assert job.timeout == 45
    assert job.target["headers"] == {"Authorization": "********"}  # the secret was kept


async def test_edit_forms_follow_the_job_kind(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    body = {
        "slug": "dump",
        "kind": "command",
        "schedule": "@daily",
        "target": {"command": ["pg_dump", "app db"]},
    }
    await job_service.create_job(ctx, admin, "default", body)
    client = await logged_in(keys.write)
    page = await client.get("/jobs/dump/edit")
    assert "pg_dump &#39;app db&#39;" in page.text or "pg_dump 'app db'" in page.text
    csrf = await page_csrf(client, "/jobs/dump/edit")
    data = {
        "csrf": csrf,
        "target.command": "pg_dump 'unclosed",
        "schedule": "@daily",
        "timezone": "UTC",
        "timeout": "30",
    }
    response = await client.post("/jobs/dump/edit", data=data)
    assert "Nothing was saved" in response.text
    assert "cannot be split into arguments" in response.text
    data["target.command"] = "pg_dump other"
    assert (await client.post("/jobs/dump/edit", data=data)).status_code == 303
    job = await job_service.get_job(ctx, admin, "default", "dump")
    assert job.target is not None and job.target["command"] == ["pg_dump", "other"]


async def test_delete_needs_the_slug_typed(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    client = await logged_in(keys.write)
    csrf = await page_csrf(client, "/jobs/nightly/delete")
    wrong = await client.post("/jobs/nightly/delete", data={"csrf": csrf, "confirm": "nightl"})
    assert wrong.status_code == 200 and 'aria-invalid="true"' in wrong.text
    assert "type the job&#39;s slug, nightly, to confirm" in wrong.text
    assert (await client.get("/jobs/nightly")).status_code == 200
    right = await client.post("/jobs/nightly/delete", data={"csrf": csrf, "confirm": "nightly"})
    assert right.status_code == 303 and right.headers["location"] == "/?msg=deleted"
    assert (await client.get("/jobs/nightly")).status_code == 404
    assert "Job deleted" in (await client.get("/?msg=deleted")).text


async def test_replay_and_cancel_from_the_run_page(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    ids = await add_runs(ctx, "nightly", 1)
    client = await logged_in(keys.write)
    csrf = await page_csrf(client, f"/runs/{ids[0]}")
    replay = await client.post(f"/runs/{ids[0]}/replay", data={"csrf": csrf})
    assert replay.status_code == 303
    new_page = await client.get(replay.headers["location"])
    assert "Replay queued" in new_page.text and 'id="cancel"' in new_page.text
    new_id = replay.headers["location"].split("/")[2].split("?")[0]
    cancelled = await client.post(f"/runs/{new_id}/cancel", data={"csrf": csrf})
    assert cancelled.status_code == 303
    again = await client.post(f"/runs/{new_id}/cancel", data={"csrf": csrf})
    assert again.status_code == 400
    assert "cannot be cancelled" in again.text


async def test_posting_to_unknown_jobs_is_a_404_page(logged_in: LogIn, keys: Keys) -> None:
    client: httpx.AsyncClient = await logged_in(keys.write)
    csrf = await page_csrf(client)
    response = await client.post("/jobs/ghost/pause", data={"csrf": csrf})
    assert response.status_code == 404

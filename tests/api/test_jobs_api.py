"""Jobs through HTTP: create, list, show, merge-patch, delete, pause and resume, and the
problem documents for every kind of bad input — on SQLite and PostgreSQL.

The fake clock stands at 2026-03-01 12:00 UTC (a Sunday); expected fire times are worked
out by hand from that instant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cronkeeper.service.context import Context
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store

from .conftest import AUDIT, JOBS, PROBLEM_JSON, Keys, bearer, http_job

SECRET = "Bearer s3cret-token-value"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def times(values: list[str]) -> list[datetime]:
    return [datetime.fromisoformat(value) for value in values]


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(JOBS, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def slugs(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get(JOBS, params=params)
    assert response.status_code == 200, response.text
    return [job["slug"] for job in response.json()["data"]["items"]]


def assert_problem(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    """The response is a problem document with this status naming this field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"].startswith("/problems/")
    assert problem["detail"]
    assert field in [error["field"] for error in problem["errors"]], problem
    return problem


async def latest_audit(api: httpx.AsyncClient, action: str) -> dict[str, Any]:
    response = await api.get(AUDIT, params={"action": action, "limit": 1})
    entry: dict[str, Any] = response.json()["data"]["items"][0]
    return entry


# ---------------------------------------------------------------------------
# create


async def test_creating_a_job_answers_201_with_its_location_and_the_job_in_an_envelope(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(JOBS, json=http_job("nightly-report", name="Nightly report"))

    assert response.status_code == 201
    assert response.headers["location"] == f"{JOBS}/nightly-report"
    assert set(response.json()) == {"data"}
    job = response.json()["data"]
    assert job["slug"] == "nightly-report"
    assert job["name"] == "Nightly report"
    assert job["status"] == "active"
    assert job["monitor_state"] == "new"
    assert job["timezone"] == "UTC"
    assert job["timeout"] == 30
    assert job["retry"]["max_attempts"] == 3
    assert job["last_run"] is None
    assert job["created_at"] == job["updated_at"]
    assert datetime.fromisoformat(job["created_at"]) == utc(2026, 3, 1, 12)
    followed = await api.get(response.headers["location"])
    assert followed.json()["data"]["id"] == job["id"]


async def test_a_new_job_shows_its_next_three_fires_in_utc_and_its_schedule_in_words(
    api: httpx.AsyncClient,
) -> None:
    job = await create(api, http_job("nightly", schedule="0 2 * * *"))

    assert times(job["next_fires"]) == [utc(2026, 3, 2, 2), utc(2026, 3, 3, 2), utc(2026, 3, 4, 2)]
    assert job["schedule_description"] == "At 02:00 every day"


async def test_next_fires_follow_the_job_timezone_and_are_given_in_utc(
    api: httpx.AsyncClient,
) -> None:
    # Berlin is UTC+1 until the last Sunday of March: 02:00 there is 01:00 UTC.
    job = await create(api, http_job("berlin", schedule="0 2 * * *", timezone="Europe/Berlin"))

    assert times(job["next_fires"]) == [utc(2026, 3, 2, 1), utc(2026, 3, 3, 1), utc(2026, 3, 4, 1)]
    assert all(value.endswith(("Z", "+00:00")) for value in job["next_fires"])


async def test_created_jobs_come_back_with_secret_headers_masked(api: httpx.AsyncClient) -> None:
    target = {
        "method": "POST",
        "url": "https://reports.example.com/run",
        "headers": {"Authorization": SECRET, "X-Team": "reports"},
    }
    response = await api.post(JOBS, json=http_job("masked", target=target))

    assert response.json()["data"]["target"]["headers"] == {
        "Authorization": "********",
        "X-Team": "reports",
    }
    assert SECRET not in response.text
    shown = await api.get(f"{JOBS}/masked")
    assert SECRET not in shown.text


async def test_command_env_values_come_back_masked(api: httpx.AsyncClient) -> None:
    target = {"command": ["pg_dump", "app"], "cwd": "/srv", "env": {"PGPASSWORD": "hunter2"}}
    body = {"slug": "backup", "kind": "command", "schedule": "@daily", "target": target}
    response = await api.post(JOBS, json=body)

    assert response.status_code == 201, response.text
    assert response.json()["data"]["target"]["env"] == {"PGPASSWORD": "********"}
    assert response.json()["data"]["target"]["command"] == ["pg_dump", "app"]
    assert "hunter2" not in response.text


async def test_a_heartbeat_job_gets_a_ping_url_and_uuid(api: httpx.AsyncClient) -> None:
    job = await create(api, {"slug": "backups", "kind": "heartbeat", "schedule": "*/5 * * * *"})

    assert job["target"] is None
    assert job["ping_uuid"]
    assert job["ping_url"] == f"http://cronkeeper.test/ping/{job['ping_uuid']}"
    assert times(job["next_fires"]) == [
        utc(2026, 3, 1, 12, 5),
        utc(2026, 3, 1, 12, 10),
        utc(2026, 3, 1, 12, 15),
    ]


async def test_an_http_job_has_no_ping_url(api: httpx.AsyncClient) -> None:
    job = await create(api, http_job("plain"))

    assert job["ping_url"] is None
    assert job["ping_uuid"] is None


# ---------------------------------------------------------------------------
# list and show


async def seed_five(api: httpx.AsyncClient) -> None:
    await create(api, http_job("alpha", tags=["reports"]))
    await create(api, http_job("bravo", tags=["reports", "nightly"]))
    await create(api, {"slug": "charlie", "kind": "heartbeat", "tags": ["nightly"]})
    await create(api, {"slug": "delta", "kind": "heartbeat"})
    await create(api, http_job("echo"))
    await api.post(f"{JOBS}/delta/pause")


async def test_jobs_are_listed_by_slug_and_filtered_by_tag_status_and_kind(
    api: httpx.AsyncClient,
) -> None:
    await seed_five(api)

    assert await slugs(api) == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert await slugs(api, tag="reports") == ["alpha", "bravo"]
    assert await slugs(api, tag="nightly") == ["bravo", "charlie"]
    assert await slugs(api, status="paused") == ["delta"]
    assert await slugs(api, status="active") == ["alpha", "bravo", "charlie", "echo"]
    assert await slugs(api, kind="heartbeat") == ["charlie", "delta"]
    assert await slugs(api, kind="heartbeat", status="active") == ["charlie"]
    assert await slugs(api, tag="nobody") == []


async def test_paging_two_at_a_time_shows_every_job_once_and_ends_with_a_null_cursor(
    api: httpx.AsyncClient,
) -> None:
    await seed_five(api)

    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await api.get(JOBS, params=params)).json()["data"]
        pages += 1
        seen += [job["slug"] for job in page["items"]]
        assert len(page["items"]) <= 2
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}

    assert seen == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert pages == 3


async def test_paging_keeps_the_filters_across_pages(api: httpx.AsyncClient) -> None:
    await seed_five(api)

    first = (await api.get(JOBS, params={"kind": "http", "limit": 2})).json()["data"]
    cursor = first["next_cursor"]
    second = (await api.get(JOBS, params={"kind": "http", "limit": 2, "cursor": cursor})).json()

    assert [job["slug"] for job in first["items"]] == ["alpha", "bravo"]
    assert [job["slug"] for job in second["data"]["items"]] == ["echo"]
    assert second["data"]["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["not-a-cursor!", "eyJzbHVnIjogMX0", "e30"])
async def test_a_tampered_cursor_is_rejected_naming_the_cursor(
    api: httpx.AsyncClient, cursor: str
) -> None:
    await seed_five(api)

    response = await api.get(JOBS, params={"limit": 2, "cursor": cursor})

    assert_problem(response, 422, "cursor")


@pytest.mark.parametrize("limit", [0, 101])
async def test_a_page_size_outside_1_to_100_is_rejected_naming_limit(
    api: httpx.AsyncClient, limit: int
) -> None:
    response = await api.get(JOBS, params={"limit": limit})

    assert_problem(response, 422, "limit")


async def test_getting_a_job_returns_it_and_an_unknown_slug_is_404(api: httpx.AsyncClient) -> None:
    created = await create(api, http_job("nightly"))

    shown = await api.get(f"{JOBS}/nightly")
    missing = await api.get(f"{JOBS}/nope")

    assert shown.status_code == 200
    assert shown.json()["data"] == created
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON
    assert "nope" in missing.json()["detail"]


async def test_an_unknown_project_is_404(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/projects/ghost/jobs", headers=bearer(keys.admin))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


# ---------------------------------------------------------------------------
# PATCH (JSON merge patch)


async def test_patching_the_schedule_moves_the_next_fires(api: httpx.AsyncClient) -> None:
    await create(api, http_job("nightly", schedule="0 2 * * *"))

    response = await api.patch(f"{JOBS}/nightly", json={"schedule": "30 14 * * *"})

    assert response.status_code == 200, response.text
    job = response.json()["data"]
    assert job["schedule"] == "30 14 * * *"
    assert job["schedule_description"] == "At 14:30 every day"
    assert times(job["next_fires"]) == [
        utc(2026, 3, 1, 14, 30),
        utc(2026, 3, 2, 14, 30),
        utc(2026, 3, 3, 14, 30),
    ]
    assert (await api.get(f"{JOBS}/nightly")).json()["data"]["schedule"] == "30 14 * * *"


async def test_patching_target_url_keeps_the_other_target_fields(api: httpx.AsyncClient) -> None:
    target = {
        "method": "POST",
        "url": "https://old.example.com/run",
        "headers": {"X-Team": "reports"},
        "body": '{"a": 1}',
    }
    await create(api, http_job("nightly", target=target))

    response = await api.patch(
        f"{JOBS}/nightly", json={"target": {"url": "https://new.example.com/run"}}
    )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["target"] == {**target, "url": "https://new.example.com/run"}


async def test_patching_a_field_to_null_puts_it_back_to_its_default(
    api: httpx.AsyncClient,
) -> None:
    await create(api, http_job("nightly", timeout="10s", description="x", tags=["a"]))

    response = await api.patch(
        f"{JOBS}/nightly", json={"timeout": None, "description": None, "tags": None}
    )

    job = response.json()["data"]
    assert (job["timeout"], job["description"], job["tags"]) == (30, "", [])
    assert await slugs(api, tag="a") == []


async def test_patching_with_the_masked_header_value_keeps_the_real_secret(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    target = {"url": "https://reports.example.com/run", "headers": {"Authorization": SECRET}}
    created = await create(api, http_job("nightly", target=target))
    echoed = {**created["target"], "url": "https://reports.example.com/v2"}

    response = await api.patch(f"{JOBS}/nightly", json={"target": echoed})

    assert response.status_code == 200, response.text
    assert response.json()["data"]["target"]["headers"] == {"Authorization": "********"}
    # A client cannot see the stored secret, so look at the ledger itself.
    async with ctx.db.read() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        stored = await job_store.get_job(conn, project.id, "nightly")
    assert stored is not None and stored.spec.target is not None
    assert stored.spec.target["headers"] == {"Authorization": SECRET}
    entry = await latest_audit(api, "job.update")
    assert entry["diff"]["target"][1]["headers"] == {"Authorization": "********"}
    assert SECRET not in str(entry)


async def test_patching_only_the_masked_value_back_records_no_target_change(
    api: httpx.AsyncClient,
) -> None:
    target = {"url": "https://reports.example.com/run", "headers": {"Authorization": SECRET}}
    created = await create(api, http_job("nightly", target=target))

    response = await api.patch(
        f"{JOBS}/nightly", json={"target": created["target"], "description": "same target"}
    )

    assert response.status_code == 200, response.text
    entry = await latest_audit(api, "job.update")
    assert entry["outcome"] == "success"
    assert set(entry["diff"]) == {"description"}


async def test_a_patch_that_makes_the_job_invalid_is_rejected_and_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    created = await create(api, http_job("nightly"))

    response = await api.patch(f"{JOBS}/nightly", json={"schedule": "61 * * * *", "name": "x"})

    assert_problem(response, 422, "schedule")
    assert (await api.get(f"{JOBS}/nightly")).json()["data"] == created


async def test_a_patch_body_that_is_not_an_object_is_rejected(api: httpx.AsyncClient) -> None:
    await create(api, http_job("nightly"))

    array = await api.patch(f"{JOBS}/nightly", json=["schedule"])
    garbage = await api.patch(f"{JOBS}/nightly", content=b"{schedule")

    assert_problem(array, 422, "body")
    assert_problem(garbage, 400, "body")


async def test_patching_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    response = await api.patch(f"{JOBS}/nope", json={"name": "x"})

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_renaming_a_slug_onto_a_taken_one_is_a_conflict(api: httpx.AsyncClient) -> None:
    await create(api, http_job("one"))
    await create(api, http_job("two"))

    response = await api.patch(f"{JOBS}/two", json={"slug": "one"})

    assert_problem(response, 409, "slug")
    assert await slugs(api) == ["one", "two"]


# ---------------------------------------------------------------------------
# delete, pause, resume


async def test_deleting_a_job_answers_204_then_it_is_gone_and_the_delete_is_audited(
    api: httpx.AsyncClient,
) -> None:
    await create(api, http_job("nightly"))

    deleted = await api.delete(f"{JOBS}/nightly")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await api.get(f"{JOBS}/nightly")).status_code == 404
    assert (await api.delete(f"{JOBS}/nightly")).status_code == 404
    assert await slugs(api) == []
    entry = await latest_audit(api, "job.delete")
    assert (entry["target"], entry["outcome"]) == ("job:nightly", "failed")
    entries = (await api.get(AUDIT, params={"action": "job.delete"})).json()["data"]["items"]
    assert [(e["target"], e["outcome"]) for e in entries] == [
        ("job:nightly", "failed"),
        ("job:nightly", "success"),
    ]


async def test_pausing_clears_next_fires_and_resuming_brings_them_back(
    api: httpx.AsyncClient,
) -> None:
    await create(api, http_job("nightly"))

    paused = await api.post(f"{JOBS}/nightly/pause")

    assert paused.status_code == 200
    assert paused.json()["data"]["status"] == "paused"
    assert paused.json()["data"]["monitor_state"] == "paused"
    assert paused.json()["data"]["next_fires"] == []
    assert (await api.get(f"{JOBS}/nightly")).json()["data"]["status"] == "paused"

    resumed = await api.post(f"{JOBS}/nightly/resume")

    assert resumed.status_code == 200
    assert resumed.json()["data"]["status"] == "active"
    assert times(resumed.json()["data"]["next_fires"]) == [
        utc(2026, 3, 2, 2),
        utc(2026, 3, 3, 2),
        utc(2026, 3, 4, 2),
    ]


async def test_pausing_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.post(f"{JOBS}/nope/pause")).status_code == 404
    assert (await api.post(f"{JOBS}/nope/resume")).status_code == 404


# ---------------------------------------------------------------------------
# invalid input: a problem document naming the field, and nothing created


INVALID_BODIES = [
    pytest.param(http_job("bad-cron", schedule="61 * * * *"), "schedule", id="bad-cron"),
    pytest.param(http_job("bad-tz", timezone="Mars/Olympus_Mons"), "timezone", id="unknown-tz"),
    pytest.param(http_job("Bad_Slug"), "slug", id="bad-slug"),
    pytest.param({"slug": "no-target", "kind": "http"}, "target", id="http-without-target"),
    pytest.param(http_job("no-url", target={"method": "GET"}), "target.url", id="target-no-url"),
    pytest.param(http_job("bad-type", concurrency="x"), "concurrency", id="wrong-type"),
    pytest.param(http_job("bad-kind", kind="teleport"), "kind", id="unknown-kind"),
    pytest.param(
        http_job("bad-retry", retry={"max_attempts": 0}), "retry.max_attempts", id="nested"
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID_BODIES)
async def test_an_invalid_job_is_rejected_with_422_naming_the_field_and_nothing_is_created(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post(JOBS, json=body)

    assert_problem(response, 422, field)
    assert response.json()["type"] == "/problems/validation"
    assert "location" not in response.headers
    assert await slugs(api) == []


async def test_an_unknown_field_is_named_and_called_unknown(api: httpx.AsyncClient) -> None:
    response = await api.post(JOBS, json=http_job("colourful", colour="red"))

    problem = assert_problem(response, 422, "colour")
    assert {"field": "colour", "message": "unknown field"} in problem["errors"]
    assert await slugs(api) == []


async def test_a_body_that_is_not_json_is_a_400_naming_the_body(api: httpx.AsyncClient) -> None:
    response = await api.post(
        JOBS, content=b"slug: nightly", headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 400, "body")
    assert await slugs(api) == []


async def test_a_json_array_body_is_a_422_naming_the_body(api: httpx.AsyncClient) -> None:
    response = await api.post(JOBS, json=[http_job("nightly")])

    assert_problem(response, 422, "body")
    assert await slugs(api) == []


async def test_a_duplicate_slug_is_a_409_naming_the_slug_and_the_first_job_is_kept(
    api: httpx.AsyncClient,
) -> None:
    first = await create(api, http_job("nightly", name="first"))

    response = await api.post(JOBS, json=http_job("nightly", name="second"))

    assert_problem(response, 409, "slug")
    assert await slugs(api) == ["nightly"]
    assert (await api.get(f"{JOBS}/nightly")).json()["data"] == first


# ---------------------------------------------------------------------------
# text the ledger cannot store (PostgreSQL refuses NUL; lone surrogates are not UTF-8)


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        pytest.param(b'{"description": "a\\u0000b"}', "description", id="nul-in-description"),
        pytest.param(b'{"name": "\\ud800"}', "name", id="lone-surrogate-in-name"),
        pytest.param(b'{"tags": ["ok", "b\\u0000"]}', "tags[1]", id="nul-in-list"),
    ],
)
async def test_text_the_ledger_cannot_store_is_a_422_naming_the_field(
    api: httpx.AsyncClient, raw_body: bytes, field: str
) -> None:
    base = b'{"slug": "nightly", "kind": "http", "target": {"url": "https://a.example.com"}, '
    body = base + raw_body.removeprefix(b"{")

    created = await api.post(JOBS, content=body, headers={"Content-Type": "application/json"})
    await create(api, http_job("nightly"))
    patched = await api.patch(
        f"{JOBS}/nightly", content=raw_body, headers={"Content-Type": "application/json"}
    )

    assert_problem(created, 422, field)
    assert_problem(patched, 422, field)


async def test_a_nul_in_a_python_job_kwargs_key_is_rejected(api: httpx.AsyncClient) -> None:
    body = b'{"slug": "py", "kind": "python", "target": {"callable": "app.jobs:run", '
    body += b'"kwargs": {"k\\u0000": 1}}}'

    response = await api.post(JOBS, content=body, headers={"Content-Type": "application/json"})

    assert_problem(response, 422, "target.kwargs.'k\\x00'")
    assert await slugs(api) == []


@pytest.mark.parametrize(
    "slug", [pytest.param("a%00b", id="nul"), pytest.param("x" * 300, id="too-long")]
)
async def test_a_job_slug_that_cannot_exist_is_simply_not_found(
    api: httpx.AsyncClient, slug: str
) -> None:
    answers = [
        await api.get(f"{JOBS}/{slug}"),
        await api.patch(f"{JOBS}/{slug}", json={"name": "x"}),
        await api.delete(f"{JOBS}/{slug}"),
        await api.post(f"{JOBS}/{slug}/pause"),
        await api.post(f"{JOBS}/{slug}/resume"),
    ]

    assert [response.status_code for response in answers] == [404] * 5
    failed = await api.get(AUDIT, params={"action": "job.", "outcome": "failed"})
    targets = [entry["target"] for entry in failed.json()["data"]["items"]]
    assert len(targets) == 4
    assert all(target.startswith("job:") and len(target) <= 200 for target in targets)


async def test_a_project_slug_that_cannot_exist_is_not_found_for_an_admin(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/api/v1/projects/a%00b/jobs", headers=bearer(keys.admin))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON


async def test_a_tag_filter_that_no_tag_could_match_is_a_422_naming_tag(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(JOBS, params={"tag": "a\x00b"})

    assert_problem(response, 422, "tag")

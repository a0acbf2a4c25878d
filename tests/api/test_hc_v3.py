"""Healthchecks' Management API v3 through HTTP (ASGI app over the real ledger, SQLite and
PostgreSQL), with requests shaped like the curl examples of
https://healthchecks.io/docs/api/ — `X-Api-Key` (or `api_key` in the body), bodies sent
the way `curl --data` sends them (form content type, JSON text).

The fake clock stands at 2026-03-01 12:00 UTC and moves only when a test advances it.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cronkeeper.domain.healthchecks import TAG_RULE, unique_key
from cronkeeper.service.context import Context
from cronkeeper.store.tables import channels, flips, jobs
from cronkeeper.testing import FakeClock

from .conftest import JOBS, Keys, bearer, http_job

CHECKS = "/api/v3/checks/"
BASE = "http://cronkeeper.test"
CURL = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "curl/8.5.0"}
SIMPLE_CHECK_FIELDS = {
    "name", "slug", "tags", "desc", "grace", "n_pings", "status", "started", "last_ping",
    "next_ping", "manual_resume", "methods", "subject", "subject_fail", "start_kw",
    "success_kw", "failure_kw", "filter_subject", "filter_body", "badge_url", "uuid",
    "ping_url", "update_url", "pause_url", "resume_url", "channels", "timeout",
}  # fmt: skip
DOCS_EXAMPLE = {"name": "backups", "tags": "prod www", "timeout": 3600, "grace": 60}


def key(value: str) -> dict[str, str]:
    return {**CURL, "X-Api-Key": value}


async def post(client: httpx.AsyncClient, path: str, api_key: str, body: Any) -> httpx.Response:
    """`curl <url> --header "X-Api-Key: …" --data '<json>'`."""
    return await client.post(path, headers=key(api_key), content=json.dumps(body))


async def create(client: httpx.AsyncClient, keys: Keys, **fields: Any) -> dict[str, Any]:
    response = await post(client, CHECKS, keys.write, {**DOCS_EXAMPLE, **fields})
    assert response.status_code == 201, response.text
    check: dict[str, Any] = response.json()
    return check


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message: str = response.json()["error"]
    return message


async def test_create_as_in_the_docs_answers_201_with_the_check_in_healthchecks_shape(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await post(client, CHECKS, keys.write, DOCS_EXAMPLE)

    assert response.status_code == 201, response.text
    check = response.json()
    assert set(check) == SIMPLE_CHECK_FIELDS
    code = check["uuid"]
    assert check | {"uuid": None, "badge_url": None} == {
        "name": "backups", "slug": "backups", "tags": "prod www", "desc": "", "grace": 60,
        "n_pings": 0, "status": "new", "started": False, "last_ping": None,
        "next_ping": None, "manual_resume": False, "methods": "", "subject": "",
        "subject_fail": "", "start_kw": "", "success_kw": "", "failure_kw": "",
        "filter_subject": False, "filter_body": False, "badge_url": None, "uuid": None,
        "ping_url": f"{BASE}/ping/{code}", "update_url": f"{BASE}/api/v3/checks/{code}",
        "pause_url": f"{BASE}/api/v3/checks/{code}/pause",
        "resume_url": f"{BASE}/api/v3/checks/{code}/resume", "channels": "", "timeout": 3600,
    }  # fmt: skip
    assert check["badge_url"].startswith(f"{BASE}/badge/")
    assert check["badge_url"].endswith("/backups.svg")


async def test_a_created_check_is_a_heartbeat_job_audited_under_the_keys_name(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, desc="nightly dump")

    job = (await client.get(f"{JOBS}/backups", headers=bearer(keys.read))).json()["data"]
    assert (job["kind"], job["schedule"], job["start_grace"]) == ("heartbeat", "every 3600s", 60)
    assert (job["tags"], job["description"], job["name"]) == (
        ["prod", "www"],
        "nightly dump",
        "backups",
    )
    audit = await client.get("/api/v1/projects/default/audit", headers=bearer(keys.admin))
    entry = audit.json()["data"]["items"][0]
    assert (entry["actor"], entry["action"], entry["target"]) == (
        "writer",
        "job.create",
        "job:backups",
    )


async def test_the_api_key_may_come_in_the_json_body(client: httpx.AsyncClient, keys: Keys) -> None:
    body = {
        "api_key": keys.write,
        "name": "Backups",
        "schedule": "*/5 * * * *",
        "tz": "Europe/Riga",
    }
    response = await client.post(CHECKS, headers=CURL, content=json.dumps(body))

    assert response.status_code == 201, response.text
    check = response.json()
    assert (check["slug"], check["schedule"], check["tz"]) == (
        "backups",
        "*/5 * * * *",
        "Europe/Riga",
    )
    assert "timeout" not in check


async def test_unique_upserts_the_matching_check_with_200(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first = await post(client, CHECKS, keys.write, {**DOCS_EXAMPLE, "unique": ["name"]})
    again = await post(
        client, CHECKS, keys.write, {"name": "backups", "timeout": 7200, "unique": ["name"]}
    )

    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["uuid"] == first.json()["uuid"]
    assert (again.json()["timeout"], again.json()["grace"]) == (7200, 60)
    listed = (await client.get(CHECKS, headers=key(keys.read))).json()["checks"]
    assert len(listed) == 1


async def test_same_name_without_unique_makes_a_second_check_with_its_own_slug(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys)
    second = await create(client, keys)

    assert second["slug"] == "backups-2"
    taken = await post(client, CHECKS, keys.write, {"name": "x", "slug": "backups"})
    assert "already exists" in error(taken, 409)


async def test_list_filters_by_every_tag_given_and_by_slug(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, name="web", tags="prod www")
    await create(client, keys, name="db", tags="prod")
    await client.post(JOBS, json=http_job("report"), headers=bearer(keys.write))  # not a check

    def names(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return sorted(check["name"] for check in response.json()["checks"])

    headers = key(keys.read)
    assert names(await client.get(CHECKS, headers=headers)) == ["db", "web"]
    assert names(await client.get(f"{CHECKS}?tag=prod&tag=www", headers=headers)) == ["web"]
    assert names(await client.get(f"{CHECKS}?tag=prod", headers=headers)) == ["db", "web"]
    assert names(await client.get(f"{CHECKS}?slug=db", headers=headers)) == ["db"]
    assert names(await client.get(f"{CHECKS}?tag=n%C3%B8pe", headers=headers)) == []
    assert names(await client.get("/api/v3/checks", headers=headers)) == ["db", "web"]


async def test_read_keys_see_unique_keys_instead_of_uuids_and_urls(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys))["uuid"]

    (listed,) = (await client.get(CHECKS, headers=key(keys.read))).json()["checks"]
    expected = unique_key(uuid.UUID(code))
    assert listed["unique_key"] == expected
    assert not {"uuid", "ping_url", "update_url", "pause_url", "resume_url", "channels"} & set(
        listed
    )
    by_unique = await client.get(f"{CHECKS}{expected}", headers=key(keys.read))
    assert by_unique.status_code == 200 and by_unique.json()["name"] == "backups"
    by_uuid = await client.get(f"{CHECKS}{code}", headers=key(keys.write))
    assert by_uuid.json()["uuid"] == code


async def test_update_changes_only_the_given_fields(client: httpx.AsyncClient, keys: Keys) -> None:
    code = (await create(client, keys))["uuid"]
    body = {"name": "Backups", "desc": "to S3", "schedule": "0 3 * * *", "tz": "Europe/Berlin"}

    response = await post(client, f"{CHECKS}{code}", keys.write, body)

    assert response.status_code == 200, response.text
    check = response.json()
    assert (check["name"], check["slug"], check["desc"]) == ("Backups", "backups", "to S3")
    assert (check["schedule"], check["tz"], check["grace"], check["tags"]) == (
        "0 3 * * *", "Europe/Berlin", 60, "prod www",
    )  # fmt: skip
    assert "timeout" not in check
    back = await post(client, f"{CHECKS}{code}", keys.write, {"timeout": 600})
    assert back.json()["timeout"] == 600 and "schedule" not in back.json()


async def test_pause_and_resume(client: httpx.AsyncClient, keys: Keys) -> None:
    code = (await create(client, keys))["uuid"]

    paused = await client.post(f"{CHECKS}{code}/pause", headers=key(keys.write), content="")
    assert (paused.status_code, paused.json()["status"]) == (200, "paused")
    resumed = await client.post(f"{CHECKS}{code}/resume", headers=key(keys.write), content="")
    assert (resumed.status_code, resumed.json()["status"]) == (200, "new")
    again = await client.post(f"{CHECKS}{code}/resume", headers=key(keys.write), content="")
    assert error(again, 409) == "check is not paused"


async def test_delete_answers_with_the_check_and_then_it_is_gone(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys))["uuid"]

    deleted = await client.delete(f"{CHECKS}{code}", headers=key(keys.write))

    assert (deleted.status_code, deleted.json()["uuid"]) == (200, code)
    assert error(await client.get(f"{CHECKS}{code}", headers=key(keys.write)), 404) == "not found"


async def test_pings_are_listed_newest_first_as_healthchecks_ping_objects(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    code = (await create(client, keys))["uuid"]
    rid = str(uuid.uuid4())
    ua = {"User-Agent": "curl/8.5.0"}
    assert (await client.get(f"/ping/{code}/start", headers=ua)).status_code == 200
    started = (await client.get(f"{CHECKS}{code}", headers=key(keys.write))).json()
    assert (started["status"], started["started"]) == ("started", True)
    clock.advance(5)
    await client.post(f"/ping/{code}", content="all good", headers=ua)
    clock.advance(5)
    await client.post(f"/ping/{code}/log", content="50% done", headers=ua)
    clock.advance(10)
    await client.get(f"/ping/{code}/start?rid={rid}", headers=ua)
    clock.advance(2.5)
    await client.get(f"/ping/{code}/1?rid={rid}", headers=ua)

    response = await client.get(f"{CHECKS}{code}/pings/", headers=key(keys.write))

    assert response.status_code == 200, response.text
    pings = response.json()["pings"]
    assert [(p["type"], p["n"], p.get("duration"), p["rid"]) for p in pings] == [
        ("fail", 5, 2.5, rid), ("start", 4, None, rid), ("log", 3, None, None),
        ("success", 2, 5.0, None), ("start", 1, None, None),
    ]  # fmt: skip
    noon = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert pings[0]["date"] == (noon + timedelta(seconds=22.5)).isoformat()
    assert {(p["scheme"], p["method"], p["ua"], p["remote_addr"]) for p in pings} == {
        ("http", "GET", "curl/8.5.0", "127.0.0.1"), ("http", "POST", "curl/8.5.0", "127.0.0.1"),
    }  # fmt: skip
    check = (await client.get(f"{CHECKS}{code}", headers=key(keys.write))).json()
    assert (check["n_pings"], check["started"], check["last_duration"]) == (5, False, 2)
    assert check["last_ping"] == "2026-03-01T12:00:22+00:00"
    assert check["next_ping"] == "2026-03-01T13:00:22+00:00"


async def _job_id(client: httpx.AsyncClient, keys: Keys, slug: str) -> uuid.UUID:
    job = await client.get(f"{JOBS}/{slug}", headers=bearer(keys.read))
    return uuid.UUID(job.json()["data"]["id"])


async def test_flips_newest_first_within_seconds_start_and_end(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    code = (await create(client, keys))["uuid"]
    job_id = await _job_id(client, keys, "backups")
    noon = ctx.clock.now()
    history = [
        ("new", "up", 3600),
        ("up", "late", 1800),
        ("late", "down", 1200),
        ("down", "up", 60),
    ]
    async with ctx.db.write() as conn:
        for old, new, ago in history:
            at = noon - timedelta(seconds=ago)
            await conn.execute(
                flips.insert().values(
                    job_id=job_id, old_state=old, new_state=new, reason="test", created_at=at
                )
            )

    async def get(query: str = "") -> list[dict[str, Any]]:
        response = await client.get(f"{CHECKS}{code}/flips/{query}", headers=key(keys.read))
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["flips"]
        return found

    assert await get() == [
        {"timestamp": "2026-03-01T11:59:00+00:00", "up": 1},
        {"timestamp": "2026-03-01T11:40:00+00:00", "up": 0},
        {"timestamp": "2026-03-01T11:00:00+00:00", "up": 1},
    ]
    assert len(await get("?seconds=1500")) == 2
    start, end = int((noon - timedelta(seconds=3600)).timestamp()), int(noon.timestamp()) - 600
    assert [f["up"] for f in await get(f"?start={start}&end={end}")] == [0, 1]
    bad = await client.get(f"{CHECKS}{code}/flips/?seconds=-1", headers=key(keys.read))
    assert error(bad, 400) == "invalid query: seconds"


async def test_status_reads_our_monitor_state(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    code = (await create(client, keys))["uuid"]
    job_id = await _job_id(client, keys, "backups")
    for state, status in (("up", "up"), ("late", "grace"), ("down", "down")):
        async with ctx.db.write() as conn:
            await conn.execute(update(jobs).where(jobs.c.id == job_id).values(monitor_state=state))
        check = (await client.get(f"{CHECKS}{code}", headers=key(keys.read))).json()
        assert check["status"] == status


async def _add_channel(ctx: Context, project: str, name: str, default: bool = False) -> str:
    from cronkeeper.store.projects import get_project

    async with ctx.db.write() as conn:
        found = await get_project(conn, project)
        assert found is not None
        channel_id, now = uuid.uuid4(), ctx.clock.now()
        await conn.execute(
            channels.insert().values(
                id=channel_id,
                project_id=found.id,
                name=name,
                kind="webhook",
                config={"url": "https://hooks.example.com/x"},
                is_default=default,
                created_at=now,
                updated_at=now,
            )
        )
    return str(channel_id)


async def test_channels_are_listed_and_assigned_by_star_id_or_name(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    ops = await _add_channel(ctx, "default", "ops-webhook", default=True)
    pager = await _add_channel(ctx, "default", "pager")

    listed = (await client.get("/api/v3/channels/", headers=key(keys.write))).json()["channels"]
    assert listed == [
        {"id": ops, "name": "ops-webhook", "kind": "webhook"},
        {"id": pager, "name": "pager", "kind": "webhook"},
    ]
    assert (await create(client, keys, name="a"))["channels"] == ops  # the default channel
    assert set((await create(client, keys, name="b", channels="*"))["channels"].split(",")) == {
        ops,
        pager,
    }
    assert (await create(client, keys, name="c", channels=f"pager,{ops}"))["channels"] == (
        f"{pager},{ops}"
    )
    unknown = await post(client, CHECKS, keys.write, {"name": "d", "channels": "nope"})
    assert (
        error(unknown, 400)
        == "json validation error: channels has an invalid channel identifier: nope"
    )


async def test_badges_lists_urls_per_tag_and_for_all(client: httpx.AsyncClient, keys: Keys) -> None:
    await create(client, keys)

    response = await client.get("/api/v3/badges/", headers=key(keys.read))

    badges = response.json()["badges"]
    assert set(badges) == {"prod", "www", "*"}
    assert set(badges["prod"]) == {"svg", "svg3", "json", "json3", "shields", "shields3"}
    assert badges["prod"]["svg3"].endswith("/tag/prod.svg")
    assert badges["prod"]["json"].endswith("/tag/prod.json?states=2")
    badge = await client.get(badges["prod"]["json3"].removeprefix(BASE))
    assert badge.json() == {"status": "up", "total": 1, "grace": 0, "down": 0}


async def test_other_methods_are_405_and_preflights_are_answered(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.put(CHECKS, headers=key(keys.write), content="{}")

    assert error(response, 405) == "method not allowed"
    assert response.headers["allow"] == "GET, POST"
    preflight = await client.options(CHECKS)
    assert preflight.status_code == 204
    assert "X-Api-Key" in preflight.headers["access-control-allow-headers"]


async def test_status_endpoint_says_ok_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v3/status/")

    assert (response.status_code, response.text) == (200, "OK")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "missing api key"),
        ({"X-Api-Key": "nope"}, "wrong api key"),
        ({"X-Api-Key": "ck_abcdefgh_" + "x" * 32}, "wrong api key"),
    ],
)
async def test_missing_or_wrong_key_is_401(
    client: httpx.AsyncClient, keys: Keys, headers: dict[str, str], expected: str
) -> None:
    assert error(await client.get(CHECKS, headers=headers), 401) == expected
    assert error(await client.get(CHECKS, headers=bearer(keys.write)), 401) == "missing api key"


async def test_read_keys_may_not_write(client: httpx.AsyncClient, keys: Keys) -> None:
    code = (await create(client, keys))["uuid"]

    for path in (CHECKS, f"{CHECKS}{code}", f"{CHECKS}{code}/pause"):
        assert "read key cannot" in error(await post(client, path, keys.read, {"name": "x"}), 403)
    assert error(await client.delete(f"{CHECKS}{code}", headers=key(keys.read)), 403)
    assert (await client.get(f"{CHECKS}{code}", headers=key(keys.write))).json()[
        "name"
    ] == "backups"


async def test_another_projects_check_is_not_found(client: httpx.AsyncClient, keys: Keys) -> None:
    code = (await create(client, keys))["uuid"]

    for path in (f"{CHECKS}{code}", f"{CHECKS}{code}/pings/", f"{CHECKS}{code}/flips/"):
        assert error(await client.get(path, headers=key(keys.other)), 404) == "not found"
    assert error(await post(client, f"{CHECKS}{code}/pause", keys.other, {}), 404)


@pytest.mark.parametrize("code", [str(uuid.uuid4()), "not-a-uuid", "0" * 40])
async def test_unknown_checks_are_404(client: httpx.AsyncClient, keys: Keys, code: str) -> None:
    assert error(await client.get(f"{CHECKS}{code}", headers=key(keys.write)), 404) == "not found"
    assert error(await post(client, f"{CHECKS}{code}", keys.write, {"name": "x"}), 404)


NOT_A_SCHEDULE = "schedule is not a valid cron or OnCalendar expression"
UNSUPPORTED = "is not supported by Cronkeeper"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": 5}, "name is not a string"),
        ({"timeout": 59}, "timeout is too small"),
        ({"timeout": "1h"}, "timeout is not a number"),
        ({"grace": 31_536_001}, "grace is too large"),
        ({"tags": ["a"]}, "tags is not a string"),
        ({"schedule": "61 * * * *"}, NOT_A_SCHEDULE),
        ({"schedule": "every 5m"}, NOT_A_SCHEDULE),
        ({"tz": "Mars/Olympus"}, "tz is not a valid timezone"),
        ({"unique": ["desc"]}, "unique has unexpected value"),
        ({"unique": "name"}, "unique is not an array"),
        ({"slug": "Not A Slug"}, "slug has unexpected value (use a-z, 0-9 and '-')"),
        ({"tags": "ok n\u00f8pe"}, f"tags has unexpected value ({TAG_RULE})"),
        ({"manual_resume": True}, f"manual_resume {UNSUPPORTED} (only False)"),
        ({"methods": "POST"}, f"methods {UNSUPPORTED} (only '')"),
        ([1, 2], "value is not an object"),
    ],
)  # fmt: skip
async def test_bad_fields_are_400_in_healthchecks_words(
    client: httpx.AsyncClient, keys: Keys, body: Any, expected: str
) -> None:
    response = await post(client, CHECKS, keys.write, body)

    assert error(response, 400) == f"json validation error: {expected}"
    listed = (await client.get(CHECKS, headers=key(keys.read))).json()["checks"]
    assert listed == []


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(CHECKS, headers=key(keys.write), content="name=backups")

    assert error(response, 400) == "could not parse request body"

"""Healthchecks' Management API v3 through HTTP (ASGI app over the real ledger, SQLite and
PostgreSQL), driven by the curl examples of https://healthchecks.io/docs/api/ (the
templates/docs/api.md of healthchecks/healthchecks): `X-Api-Key` (or `api_key` in the
body), bodies sent the way `curl --data` sends them (form content type, JSON text). The
answers are held to the documented example responses and to Healthchecks' own tests
(hc/api/tests/); where Cronkeeper differs on purpose, docs/healthchecks.md lists it.

The fake clock stands at 2026-03-01 12:00 UTC and moves only when a test advances it;
the monitor looks at the checks only when a test calls `settle`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cronkeeper.domain.healthchecks_input import TAG_RULE
from cronkeeper.service import monitor as monitor_service
from cronkeeper.service.context import Context
from cronkeeper.store.projects import get_project
from cronkeeper.store.tables import channels, flips, jobs
from cronkeeper.testing import FakeClock

from .conftest import JOBS, Keys, bearer, http_job

CHECKS = "/api/v3/checks/"
BASE = "http://cronkeeper.test"
NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CURL = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "curl/8.5.0"}
#: The fields of a check answered to a read-write key, as the docs' examples list them
#: (plus `timeout`, or `schedule` and `tz`).
CHECK_FIELDS = {
    "name", "slug", "tags", "desc", "grace", "n_pings", "status", "started", "last_ping",
    "next_ping", "manual_resume", "methods", "subject", "subject_fail", "start_kw",
    "success_kw", "failure_kw", "filter_subject", "filter_body", "filter_http_body",
    "filter_default_fail", "badge_url", "uuid", "ping_url", "update_url", "pause_url",
    "resume_url", "channels",
}  # fmt: skip
#: What a read-only key sees instead: no UUID, URLs or channels, and a `unique_key`.
READ_ONLY_FIELDS = CHECK_FIELDS - {
    "uuid", "ping_url", "update_url", "pause_url", "resume_url", "channels",
} | {"unique_key"}  # fmt: skip
#: `--data '{"name": "Backups", "tags": "prod www", "timeout": 3600, "grace": 60}'`
DOCS_BODY = {"name": "Backups", "tags": "prod www", "timeout": 3600, "grace": 60}
#: The docs' example check UUID and the `unique_key` they show for it.
DOCS_UUID, DOCS_UNIQUE_KEY = (
    "31365bce-8da9-4729-8ff3-aaa71d56b712",
    "a6c7b0a8a66bed0df66abfdab3c77736861703ee",
)


def key(value: str) -> dict[str, str]:
    return {**CURL, "X-Api-Key": value}


async def post(client: httpx.AsyncClient, path: str, api_key: str, body: Any) -> httpx.Response:
    """`curl <url> --header "X-Api-Key: …" --data '<json>'`."""
    return await client.post(path, headers=key(api_key), content=json.dumps(body))


async def post_empty(client: httpx.AsyncClient, path: str, api_key: str) -> httpx.Response:
    """`curl <url> --request POST --header "X-Api-Key: …" --data ""`."""
    return await client.post(path, headers=key(api_key), content="")


async def create(client: httpx.AsyncClient, keys: Keys, **fields: Any) -> dict[str, Any]:
    response = await post(client, CHECKS, keys.write, {**DOCS_BODY, **fields})
    assert response.status_code == 201, response.text
    check: dict[str, Any] = response.json()
    return check


async def get(client: httpx.AsyncClient, path: str, api_key: str) -> Any:
    response = await client.get(path, headers=key(api_key))
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message: str = response.json()["error"]
    return message


async def settle(ctx: Context) -> None:
    """Let the monitor look at every check whose time has come."""
    while await monitor_service.check(ctx):
        pass


def stamp(moment: datetime) -> str:
    return moment.isoformat()


# -- checks: list, get, create, update, pause, resume, delete ---------------------------


async def test_list_checks_as_in_the_docs_example(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    backup = await create(
        client, keys, name="Filesystem Backup", slug="filesystem-backup", tags="backup fs",
        desc="Runs incremental backup every hour", grace=600,
    )  # fmt: skip
    await create(
        client, keys, name="Database Backup", slug="database-backup", tags="production db",
        desc="Runs ~/db-backup.sh", grace=1200, schedule="15 5 * * *", tz="UTC",
    )  # fmt: skip
    await client.get(f"/ping/{backup['uuid']}")
    await settle(ctx)

    # curl --header "X-Api-Key: your-api-key" SITE_ROOT/api/v3/checks/
    listed = await get(client, CHECKS, keys.write)

    assert set(listed) == {"checks"}
    by_name = {check["name"]: check for check in listed["checks"]}
    backup = by_name["Filesystem Backup"]
    code = backup["uuid"]
    assert set(backup) == CHECK_FIELDS | {"timeout"}
    assert backup | {"badge_url": None} == {
        "name": "Filesystem Backup", "slug": "filesystem-backup", "tags": "backup fs",
        "desc": "Runs incremental backup every hour", "grace": 600, "n_pings": 1,
        "status": "up", "started": False, "last_ping": "2026-03-01T12:00:00+00:00",
        "next_ping": "2026-03-01T13:00:00+00:00", "manual_resume": False, "methods": "",
        "subject": "", "subject_fail": "", "start_kw": "", "success_kw": "",
        "failure_kw": "", "filter_subject": False, "filter_body": False,
        "filter_http_body": False, "filter_default_fail": False, "badge_url": None,
        "uuid": code, "ping_url": f"{BASE}/ping/{code}",
        "update_url": f"{BASE}/api/v3/checks/{code}",
        "pause_url": f"{BASE}/api/v3/checks/{code}/pause",
        "resume_url": f"{BASE}/api/v3/checks/{code}/resume", "channels": "", "timeout": 3600,
    }  # fmt: skip
    database = by_name["Database Backup"]
    assert set(database) == CHECK_FIELDS | {"schedule", "tz"}
    assert (database["status"], database["n_pings"], database["next_ping"]) == ("new", 0, None)
    assert (database["schedule"], database["tz"], database["grace"]) == ("15 5 * * *", "UTC", 1200)


async def test_list_filters_by_slug_and_by_every_tag_given(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, name="web", tags="foo bar")
    await create(client, keys, name="db", tags="foo")
    await create(client, keys, name="backups", slug="backups", tags="")
    await client.post(JOBS, json=http_job("report"), headers=bearer(keys.write))  # not a check

    async def names(query: str) -> list[str]:
        checks = (await get(client, f"{CHECKS}{query}", keys.read))["checks"]
        return sorted(check["name"] for check in checks)

    assert await names("") == ["backups", "db", "web"]
    assert await names("?slug=backups") == ["backups"]  # SITE_ROOT/api/v3/checks/?slug=backups
    assert await names("?tag=foo&tag=bar") == ["web"]  # SITE_ROOT/api/v3/checks/?tag=foo&tag=bar
    assert await names("?tag=foo") == ["db", "web"]
    assert await names("?slug=") == ["backups", "db", "web"]  # an empty slug filters nothing
    assert await names("?slug=nope") == []
    assert await names("?tag=n%C3%B8pe") == []
    without_slash = (await get(client, "/api/v3/checks", keys.read))["checks"]
    assert sorted(check["name"] for check in without_slash) == ["backups", "db", "web"]


async def test_read_only_key_sees_the_docs_read_only_shape_and_the_docs_unique_key(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    created = await create(client, keys)
    async with ctx.db.write() as conn:  # give the check the docs' example UUID
        await conn.execute(
            update(jobs)
            .where(jobs.c.ping_uuid == uuid.UUID(created["uuid"]))
            .values(ping_uuid=uuid.UUID(DOCS_UUID))
        )

    (listed,) = (await get(client, CHECKS, keys.read))["checks"]

    assert set(listed) == READ_ONLY_FIELDS | {"timeout"}
    assert listed["unique_key"] == DOCS_UNIQUE_KEY
    # GET SITE_ROOT/api/v3/checks/<unique_key>, and <uuid>, with the read-only key
    by_unique_key = await get(client, f"{CHECKS}{DOCS_UNIQUE_KEY}", keys.read)
    assert by_unique_key == listed
    assert await get(client, f"{CHECKS}{DOCS_UUID}", keys.read) == listed
    flips_by_unique_key = await get(client, f"{CHECKS}{DOCS_UNIQUE_KEY}/flips/", keys.read)
    assert flips_by_unique_key == {"flips": []}


async def test_get_a_single_check_by_uuid_as_in_the_docs(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys, schedule="15 5 * * *", tz="UTC"))["uuid"]

    # curl --header "X-Api-Key: your-api-key" SITE_ROOT/api/v3/checks/<uuid>
    check = await get(client, f"{CHECKS}{code}", keys.write)

    assert set(check) == CHECK_FIELDS | {"schedule", "tz"}
    assert (check["uuid"], check["schedule"], check["tz"]) == (code, "15 5 * * *", "UTC")
    assert check == await get(client, f"{CHECKS}{code}", keys.admin)


@pytest.mark.parametrize("with_key_in", ["header", "body"])
async def test_create_as_in_the_docs_answers_201_with_the_docs_example_response(
    client: httpx.AsyncClient, keys: Keys, with_key_in: str
) -> None:
    if with_key_in == "header":
        # curl SITE_ROOT/api/v3/checks/ --header "X-Api-Key: your-api-key" \
        #     --data '{"name": "Backups", "tags": "prod www", "timeout": 3600, "grace": 60}'
        response = await post(client, CHECKS, keys.write, DOCS_BODY)
    else:
        # curl SITE_ROOT/api/v3/checks/ --data '{"api_key": "your-api-key", "name": …}'
        body = json.dumps({"api_key": keys.write, **DOCS_BODY})
        response = await client.post(CHECKS, headers=CURL, content=body)

    assert response.status_code == 201, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    check = response.json()
    code = check["uuid"]
    assert uuid.UUID(code).version == 4
    assert check == {
        "name": "Backups", "slug": "backups",  # Healthchecks v3: "" (we need a slug)
        "tags": "prod www", "desc": "", "grace": 60, "n_pings": 0, "status": "new",
        "started": False, "last_ping": None, "next_ping": None, "manual_resume": False,
        "methods": "", "subject": "", "subject_fail": "", "start_kw": "", "success_kw": "",
        "failure_kw": "", "filter_subject": False, "filter_body": False,
        "filter_http_body": False, "filter_default_fail": False,
        "badge_url": check["badge_url"], "uuid": code, "ping_url": f"{BASE}/ping/{code}",
        "update_url": f"{BASE}/api/v3/checks/{code}",
        "pause_url": f"{BASE}/api/v3/checks/{code}/pause",
        "resume_url": f"{BASE}/api/v3/checks/{code}/resume", "channels": "", "timeout": 3600,
    }  # fmt: skip
    badge = await client.get(check["badge_url"].removeprefix(BASE))
    assert badge.status_code == 200
    assert badge.headers["content-type"].startswith("image/svg+xml")


async def test_a_created_check_is_a_heartbeat_job_audited_under_the_keys_name(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, desc="nightly dump")

    job = (await client.get(f"{JOBS}/backups", headers=bearer(keys.read))).json()["data"]
    assert (job["kind"], job["schedule"], job["start_grace"]) == ("heartbeat", "every 3600s", 60)
    assert job["max_runtime"] == 60  # grace is also how long a started run may take
    assert (job["tags"], job["description"], job["name"]) == (
        ["prod", "www"], "nightly dump", "Backups",
    )  # fmt: skip
    audit = await client.get("/api/v1/projects/default/audit", headers=bearer(keys.admin))
    entry = audit.json()["data"]["items"][0]
    assert (entry["actor"], entry["action"], entry["target"]) == (
        "writer", "job.create", "job:backups",
    )  # fmt: skip


async def test_an_empty_body_creates_a_check_with_healthchecks_defaults(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await post(client, CHECKS, keys.write, {})

    assert response.status_code == 201, response.text
    check = response.json()
    assert (check["name"], check["timeout"], check["grace"]) == ("", 86400, 3600)
    assert check["slug"] == "check"


@pytest.mark.parametrize(
    ("param", "shown"),
    [
        ({"tags": "reports staging"}, {"tags": "reports staging"}),
        ({"timeout": 300}, {"timeout": 300}),
        ({"schedule": "0,30 * * * *"}, {"schedule": "0,30 * * * *", "tz": "UTC"}),
        ({"schedule": "*-*~1 12:00"}, {"schedule": "*-*~1 12:00", "tz": "UTC"}),
        ({"schedule": "5 * * * *", "tz": "Europe/Riga"}, {"tz": "Europe/Riga"}),
        ({"schedule": "12:34", "timeout": 60}, {"schedule": "12:34"}),  # schedule wins
        ({"slug": "my-custom-slug"}, {"slug": "my-custom-slug"}),
        ({"manual_resume": False, "methods": ""}, {"manual_resume": False, "methods": ""}),
        ({"desc": "Runs ~/db-backup.sh"}, {"desc": "Runs ~/db-backup.sh"}),
    ],
)  # fmt: skip
async def test_the_docs_request_parameters_are_taken(
    client: httpx.AsyncClient, keys: Keys, param: dict[str, Any], shown: dict[str, Any]
) -> None:
    response = await post(client, CHECKS, keys.write, {"name": "Backups", **param})

    assert response.status_code == 201, response.text
    check = response.json()
    assert {name: check[name] for name in shown} == shown
    assert ("timeout" in check) is ("schedule" not in param)


@pytest.mark.parametrize(
    "param",
    [
        {"methods": "POST"},
        {"manual_resume": True},
        {"filter_subject": True, "start_kw": "STARTED"},
        {"filter_subject": True, "success_kw": "SUCCESS,COMPLETED"},
        {"filter_subject": True, "failure_kw": "FAILED, ERROR"},
        {"filter_http_body": True, "filter_default_fail": True, "success_kw": "Backup successful"},
        {"subject": "SUCCESS,COMPLETED"},
        {"subject_fail": "FAILED,ERROR"},
    ],
)
async def test_the_docs_parameters_of_features_we_lack_are_refused_not_ignored(
    client: httpx.AsyncClient, keys: Keys, param: dict[str, Any]
) -> None:
    response = await post(client, CHECKS, keys.write, {"name": "Backups", **param})

    assert "is not supported by Cronkeeper" in error(response, 400)
    assert (await get(client, CHECKS, keys.read))["checks"] == []


async def test_unique_upserts_the_matching_check_with_200_as_in_the_docs(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    # {"name": "Backups", unique: ["name"]}
    first = await post(client, CHECKS, keys.write, {"name": "Backups", "unique": ["name"]})
    again = await post(
        client, CHECKS, keys.write, {"name": "Backups", "tags": "bar", "unique": ["name"]}
    )

    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["uuid"] == first.json()["uuid"]
    assert again.json()["tags"] == "bar"
    assert len((await get(client, CHECKS, keys.read))["checks"]) == 1


@pytest.mark.parametrize("field", ["name", "slug", "tags", "timeout", "grace"])
async def test_unique_on_a_field_the_body_leaves_out_creates_a_new_check(
    client: httpx.AsyncClient, keys: Keys, field: str
) -> None:
    await create(client, keys)

    response = await post(client, CHECKS, keys.write, {"unique": [field]})

    assert response.status_code == 201, response.text
    assert len((await get(client, CHECKS, keys.read))["checks"]) == 2


async def test_same_name_without_unique_makes_a_second_check_with_its_own_slug(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys)
    second = await create(client, keys)

    assert second["slug"] == "backups-2"
    taken = await post(client, CHECKS, keys.write, {"name": "x", "slug": "backups"})
    assert "already exists" in error(taken, 409)


async def test_update_as_in_the_docs_changes_only_the_given_fields(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys, name="Old name", tags="old", desc="kept"))["uuid"]

    # curl SITE_ROOT/api/v3/checks/<uuid> --header "X-Api-Key: your-api-key" \
    #     --data '{"name": "Backups", "tags": "prod www", "timeout": 3600, "grace": 60}'
    response = await post(client, f"{CHECKS}{code}", keys.write, DOCS_BODY)

    assert response.status_code == 200, response.text
    check = response.json()
    assert set(check) == CHECK_FIELDS | {"timeout"}
    assert (check["name"], check["tags"], check["timeout"], check["grace"]) == (
        "Backups", "prod www", 3600, 60,
    )  # fmt: skip
    assert (check["slug"], check["desc"]) == ("old-name", "kept")  # v3 keeps the slug
    cron = await post(
        client, f"{CHECKS}{code}", keys.write, {"schedule": "0 3 * * *", "tz": "Europe/Berlin"}
    )
    assert (cron.json()["schedule"], cron.json()["tz"]) == ("0 3 * * *", "Europe/Berlin")
    assert "timeout" not in cron.json()
    back = await post(client, f"{CHECKS}{code}", keys.write, {"timeout": 600})
    assert back.json()["timeout"] == 600 and "schedule" not in back.json()
    renamed = await post(client, f"{CHECKS}{code}", keys.write, {"slug": "updated-slug"})
    assert renamed.json()["slug"] == "updated-slug"


async def test_pause_and_resume_as_in_the_docs(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    code = (await create(client, keys))["uuid"]
    await client.get(f"/ping/{code}")
    await settle(ctx)

    # curl SITE_ROOT/api/v3/checks/<uuid>/pause --request POST --header "X-Api-Key: …" --data ""
    paused = await post_empty(client, f"{CHECKS}{code}/pause", keys.write)
    assert paused.status_code == 200, paused.text
    assert set(paused.json()) == CHECK_FIELDS | {"timeout"}
    assert (paused.json()["status"], paused.json()["next_ping"]) == ("paused", None)
    assert paused.json()["last_ping"] == "2026-03-01T12:00:00+00:00"

    # curl SITE_ROOT/api/v3/checks/<uuid>/resume --request POST --header "X-Api-Key: …" --data ""
    resumed = await post_empty(client, f"{CHECKS}{code}/resume", keys.write)
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["last_ping"]) == ("new", None)
    assert resumed.json()["n_pings"] == 1

    again = await post_empty(client, f"{CHECKS}{code}/resume", keys.write)
    assert (again.status_code, again.text) == (409, "check is not paused")
    with_key_in_body = await client.post(
        f"{CHECKS}{code}/pause", headers=CURL, content=json.dumps({"api_key": keys.write})
    )
    assert with_key_in_body.json()["status"] == "paused"


async def test_delete_as_in_the_docs_answers_with_the_check_and_then_it_is_gone(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys))["uuid"]

    # curl SITE_ROOT/api/v3/checks/<uuid> --request DELETE --header "X-Api-Key: your-api-key"
    deleted = await client.delete(f"{CHECKS}{code}", headers=key(keys.write))

    assert deleted.status_code == 200, deleted.text
    assert set(deleted.json()) == CHECK_FIELDS | {"timeout"}
    assert (deleted.json()["uuid"], deleted.json()["name"]) == (code, "Backups")
    assert error(await client.get(f"{CHECKS}{code}", headers=key(keys.write)), 404) == "not found"


async def test_status_reads_our_monitor_state(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    code = (await create(client, keys))["uuid"]
    for state, status in (("up", "up"), ("late", "grace"), ("down", "down"), ("new", "new")):
        async with ctx.db.write() as conn:
            await conn.execute(
                update(jobs).where(jobs.c.slug == "backups").values(monitor_state=state)
            )
        assert (await get(client, f"{CHECKS}{code}", keys.read))["status"] == status


async def test_a_started_check_stays_new_with_started_true_and_next_ping_at_its_start(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    code = (await create(client, keys))["uuid"]

    await client.get(f"/ping/{code}/start")
    clock.advance(30)
    await settle(ctx)
    check = await get(client, f"{CHECKS}{code}", keys.write)

    assert (check["status"], check["started"]) == ("new", True)  # v3: never "started"
    assert (check["last_ping"], check["next_ping"], check["n_pings"]) == (
        None, "2026-03-01T12:00:00+00:00", 1,
    )  # fmt: skip
    clock.advance(31)  # past the grace since the start, with no finish: down, as there
    await settle(ctx)
    down = await get(client, f"{CHECKS}{code}", keys.write)
    assert (down["status"], down["started"], down["next_ping"]) == ("down", False, None)


async def test_a_late_check_reads_grace_and_its_next_ping_stays_due(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    code = (await create(client, keys, timeout=600, grace=300))["uuid"]
    await client.get(f"/ping/{code}")
    await settle(ctx)

    clock.advance(660)
    await settle(ctx)
    late = await get(client, f"{CHECKS}{code}", keys.write)
    clock.advance(300)
    await settle(ctx)
    down = await get(client, f"{CHECKS}{code}", keys.write)

    assert (late["status"], late["next_ping"]) == ("grace", "2026-03-01T12:10:00+00:00")
    assert (down["status"], down["next_ping"], down["last_ping"]) == (
        "down", None, "2026-03-01T12:00:00+00:00",
    )  # fmt: skip


# -- pings --------------------------------------------------------------------------------


async def test_pings_as_in_the_docs_example(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    code = (await create(client, keys))["uuid"]
    rid = "123e4567-e89b-12d3-a456-426614174000"
    ua = {"User-Agent": "curl/7.68.0"}
    await client.get(f"/ping/{code}/start", headers=ua)
    clock.advance(2.997976)
    await client.get(f"/ping/{code}", headers=ua)
    clock.advance(3.582760)
    await client.get(f"/ping/{code}/start?rid={rid}", headers=ua)
    clock.advance(2.896736)
    await client.get(f"/ping/{code}?rid={rid}", headers=ua)
    await settle(ctx)

    # curl SITE_ROOT/api/v3/checks/<uuid>/pings/ --header "X-Api-Key: your-api-key"
    listed = await get(client, f"{CHECKS}{code}/pings/", keys.write)

    def ping(kind: str, n: int, at: float, rid: str | None, **more: Any) -> dict[str, Any]:
        return {
            "type": kind, "date": stamp(NOON + timedelta(seconds=at)), "n": n,
            "scheme": "http", "remote_addr": "127.0.0.1", "method": "GET",
            "ua": "curl/7.68.0", "rid": rid, "body_url": None, **more,
        }  # fmt: skip

    assert listed == {
        "pings": [
            ping("success", 4, 9.477472, rid, duration=2.896),
            ping("start", 3, 6.580736, rid),
            ping("success", 2, 2.997976, None, duration=2.997),
            ping("start", 1, 0, None),
        ]
    }
    assert listed["pings"][0]["date"] == "2026-03-01T12:00:09.477472+00:00"
    check = await get(client, f"{CHECKS}{code}", keys.write)
    assert (check["status"], check["n_pings"], check["started"]) == ("up", 4, False)
    assert (check["last_ping"], check["last_duration"]) == ("2026-03-01T12:00:09+00:00", 2)
    assert check["next_ping"] == "2026-03-01T13:00:09+00:00"


async def test_pings_keep_their_bodies_behind_body_url(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    code = (await create(client, keys))["uuid"]
    await client.post(f"/ping/{code}/start", content="starting backup")
    clock.advance(1)
    await client.post(f"/ping/{code}/log", content="50% done")
    await client.get(f"/ping/{code}/log")
    clock.advance(1)
    await client.post(f"/ping/{code}", content="all good")
    await client.get(f"/ping/{code}")

    pings = (await get(client, f"{CHECKS}{code}/pings/", keys.write))["pings"]

    body_urls = {ping["n"]: ping["body_url"] for ping in pings}
    assert body_urls == {
        5: None, 4: f"{BASE}/api/v3/checks/{code}/pings/4/body", 3: None,
        2: f"{BASE}/api/v3/checks/{code}/pings/2/body",
        1: f"{BASE}/api/v3/checks/{code}/pings/1/body",
    }  # fmt: skip
    # curl SITE_ROOT/api/v3/checks/<uuid>/pings/<n>/body --header "X-Api-Key: your-api-key"
    for n, text in ((1, "starting backup"), (2, "50% done"), (4, "all good")):
        body = await client.get(f"{CHECKS}{code}/pings/{n}/body", headers=key(keys.write))
        assert (body.status_code, body.text) == (200, text)
        assert body.headers["content-type"].startswith("text/plain")
    for n in (3, 5, 6, 0):
        missing = await client.get(f"{CHECKS}{code}/pings/{n}/body", headers=key(keys.write))
        assert error(missing, 404) == "not found"


# -- flips --------------------------------------------------------------------------------


async def _job_id(client: httpx.AsyncClient, keys: Keys, slug: str) -> uuid.UUID:
    job = await client.get(f"{JOBS}/{slug}", headers=bearer(keys.read))
    return uuid.UUID(job.json()["data"]["id"])


async def test_flips_as_in_the_docs_example(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    code = (await create(client, keys))["uuid"]
    job_id = await _job_id(client, keys, "backups")
    history = [("new", "up", "10:16:18"), ("up", "down", "10:17:15"), ("down", "up", "10:18:23")]
    async with ctx.db.write() as conn:
        for old, new, at in history:
            created_at = datetime.fromisoformat(f"2020-03-23T{at}.123000+00:00")
            await conn.execute(
                flips.insert().values(
                    job_id=job_id, old_state=old, new_state=new, reason="t", created_at=created_at
                )
            )

    # curl SITE_ROOT/api/v3/checks/<uuid>/flips/ --header "X-Api-Key: your-api-key"
    listed = await get(client, f"{CHECKS}{code}/flips/", keys.write)

    assert listed == {
        "flips": [
            {"timestamp": "2020-03-23T10:18:23+00:00", "up": 1},
            {"timestamp": "2020-03-23T10:17:15+00:00", "up": 0},
            {"timestamp": "2020-03-23T10:16:18+00:00", "up": 1},
        ]
    }
    # SITE_ROOT/api/v3/checks/<uuid|unique_key>/flips/?start=1592214380 (and ?end=1592217980)
    assert await get(client, f"{CHECKS}{code}/flips/?start=1592214380", keys.read) == {"flips": []}
    assert await get(client, f"{CHECKS}{code}/flips/?end=1592217980", keys.read) == listed
    start = int(datetime(2020, 3, 23, 10, 17, tzinfo=UTC).timestamp())
    end = int(datetime(2020, 3, 23, 10, 19, tzinfo=UTC).timestamp())
    assert (await get(client, f"{CHECKS}{code}/flips/?start={start}&end={end}", keys.read))[
        "flips"
    ] == listed["flips"][:2]


async def test_flips_are_the_ones_healthchecks_would_have_recorded(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, clock: FakeClock
) -> None:
    code = (await create(client, keys))["uuid"]  # a one-hour period, a minute of grace
    await client.get(f"/ping/{code}")  # 12:00:00 up
    await settle(ctx)
    clock.advance(3630)  # 13:00:30 late (no flip in Healthchecks)
    await settle(ctx)
    clock.advance(60)  # 13:01:30: down since 13:01:00
    await settle(ctx)
    await client.get(f"/ping/{code}")  # 13:01:30 up
    await settle(ctx)
    clock.advance(3610)  # 14:01:40 late, then a ping: Healthchecks' check stayed up
    await settle(ctx)
    await client.get(f"/ping/{code}")
    await settle(ctx)
    await post_empty(client, f"{CHECKS}{code}/pause", keys.write)  # 14:01:40 paused
    clock.advance(1)
    await post_empty(client, f"{CHECKS}{code}/resume", keys.write)  # 14:01:41 new

    async def flips_of(query: str = "") -> list[tuple[str, int]]:
        listed = await get(client, f"{CHECKS}{code}/flips/{query}", keys.read)
        return [(flip["timestamp"][11:19], flip["up"]) for flip in listed["flips"]]

    assert await flips_of() == [
        ("14:01:41", 0), ("14:01:40", 0), ("13:01:30", 1), ("13:01:00", 0), ("12:00:00", 1),
    ]  # fmt: skip
    assert await flips_of("?seconds=3600") == [("14:01:41", 0), ("14:01:40", 0)]
    assert len(await flips_of("?seconds=0")) == 5  # 0 filters nothing, as in Healthchecks
    start, end = (
        int((NOON + timedelta(hours=1)).timestamp()),
        int((NOON + timedelta(hours=2)).timestamp()),
    )
    assert await flips_of(f"?start={start}&end={end}") == [("13:01:30", 1), ("13:01:00", 0)]


@pytest.mark.parametrize(
    "query",
    [
        "?seconds=-1", "?seconds=31536001", "?seconds=abc", "?start=abc", "?start=-123",
        "?start=12345678901234567890", "?start=10000000001", "?end=1.5",
    ],
)  # fmt: skip
async def test_bad_flip_queries_are_400(client: httpx.AsyncClient, keys: Keys, query: str) -> None:
    code = (await create(client, keys))["uuid"]

    response = await client.get(f"{CHECKS}{code}/flips/{query}", headers=key(keys.read))

    assert error(response, 400).startswith("invalid query: ")


# -- channels, badges, status --------------------------------------------------------------


async def _add_channel(ctx: Context, project: str, name: str, default: bool = False) -> str:
    async with ctx.db.write() as conn:
        found = await get_project(conn, project)
        assert found is not None
        channel_id, now = uuid.uuid4(), ctx.clock.now()
        await conn.execute(
            channels.insert().values(
                id=channel_id, project_id=found.id, name=name, kind="email",
                config={"to": ["alice@example.com"]}, is_default=default, created_at=now,
                updated_at=now,
            )
        )  # fmt: skip
    return str(channel_id)


async def test_channels_as_in_the_docs_and_assigned_by_star_ids_or_names(
    client: httpx.AsyncClient, keys: Keys, ctx: Context
) -> None:
    alice = await _add_channel(ctx, "default", "Email_to_Alice", default=True)
    sms = await _add_channel(ctx, "default", "SMS_to_Alice")

    # curl --header "X-Api-Key: your-api-key" SITE_ROOT/api/v3/channels/
    listed = await get(client, "/api/v3/channels/", keys.write)

    assert listed == {
        "channels": [
            {"id": alice, "name": "Email_to_Alice", "kind": "email"},
            {"id": sms, "name": "SMS_to_Alice", "kind": "email"},
        ]
    }
    both = ",".join(sorted([alice, sms]))
    assert (await create(client, keys, name="a", channels="*"))["channels"] == both
    assert (await create(client, keys, name="b", channels=f"{sms},{alice}"))["channels"] == both
    by_names = await create(client, keys, name="c", channels="Email_to_Alice,SMS_to_Alice")
    assert by_names["channels"] == both
    assert (await create(client, keys, name="d", channels=f"{sms},{sms}"))["channels"] == sms
    assert (await create(client, keys, name="e"))["channels"] == alice  # the default channel


@pytest.mark.parametrize(
    ("channels_value", "expected"),
    [
        ("abc", "invalid channel identifier: abc"),
        (str(uuid.UUID(int=7)), f"invalid channel identifier: {uuid.UUID(int=7)}"),
        (",", "empty channel identifier"),
        ("SMS_to_Alice, Email_to_Alice", "invalid channel identifier:  Email_to_Alice"),
    ],
)
async def test_bad_channel_identifiers_are_400_in_healthchecks_words(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, channels_value: str, expected: str
) -> None:
    await _add_channel(ctx, "default", "Email_to_Alice")
    await _add_channel(ctx, "default", "SMS_to_Alice")
    await _add_channel(ctx, "other", "theirs")

    response = await post(client, CHECKS, keys.write, {"name": "x", "channels": channels_value})

    assert error(response, 400) == expected
    assert (await get(client, CHECKS, keys.read))["checks"] == []


async def test_badges_as_in_the_docs(client: httpx.AsyncClient, keys: Keys) -> None:
    await create(client, keys, tags="backup db")

    # curl --header "X-Api-Key: your-api-key" SITE_ROOT/api/v3/badges/
    badges = (await get(client, "/api/v3/badges/", keys.read))["badges"]

    assert set(badges) == {"backup", "db", "*"}
    formats = {"svg", "svg3", "json", "json3", "shields", "shields3"}
    assert all(set(urls) == formats for urls in badges.values())
    assert badges["db"]["svg3"].endswith("/tag/db.svg")
    assert badges["db"]["json"].endswith("/tag/db.json?states=2")
    badge = await client.get(badges["db"]["json3"].removeprefix(BASE))
    assert badge.json() == {"status": "up", "total": 1, "grace": 0, "down": 0}


async def test_status_endpoint_says_ok_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v3/status/")

    assert (response.status_code, response.text) == (200, "OK")


# -- keys, projects, methods ----------------------------------------------------------------


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
    assert error(await client.post(CHECKS, content=""), 401) == "missing api key"


async def test_a_read_key_works_only_where_healthchecks_read_only_key_does(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys))["uuid"]
    await client.post(f"/ping/{code}", content="a body")
    check = f"{CHECKS}{code}"

    for path in (CHECKS, check, f"{check}/flips/", "/api/v3/badges/"):
        assert (await client.get(path, headers=key(keys.read))).status_code == 200
    for path in (f"{check}/pings/", f"{check}/pings/1/body", "/api/v3/channels/"):
        assert error(await client.get(path, headers=key(keys.read)), 401) == "wrong api key"
    for path in (CHECKS, check, f"{check}/pause", f"{check}/resume"):
        assert error(await post(client, path, keys.read, {"name": "x"}), 401) == "wrong api key"
    assert error(await client.delete(check, headers=key(keys.read)), 401) == "wrong api key"
    assert (await get(client, check, keys.write))["name"] == "Backups"


async def test_another_projects_check_is_403_by_uuid_and_404_by_unique_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = await create(client, keys)
    code, check = created["uuid"], f"{CHECKS}{created['uuid']}"

    for path in (check, f"{check}/pings/", f"{check}/flips/", f"{check}/pings/1/body"):
        assert error(await client.get(path, headers=key(keys.other)), 403)
    for path in (check, f"{check}/pause", f"{check}/resume"):
        assert error(await post(client, path, keys.other, {"name": "x"}), 403)
    assert error(await client.delete(check, headers=key(keys.other)), 403)
    unique = (await get(client, check, keys.read))["unique_key"]
    assert error(await client.get(f"{CHECKS}{unique}", headers=key(keys.other)), 404)
    assert (await get(client, check, keys.write))["uuid"] == code


async def test_a_unique_key_names_a_check_only_for_reading_it_and_its_flips(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = await create(client, keys)
    unique = (await get(client, f"{CHECKS}{created['uuid']}", keys.read))["unique_key"]

    assert (await post(client, f"{CHECKS}{unique}", keys.write, {"name": "x"})).status_code == 405
    assert (await client.delete(f"{CHECKS}{unique}", headers=key(keys.write))).status_code == 405
    assert error(await post_empty(client, f"{CHECKS}{unique}/pause", keys.write), 404)
    assert error(await client.get(f"{CHECKS}{unique}/pings/", headers=key(keys.write)), 404)


@pytest.mark.parametrize("code", [str(uuid.uuid4()), "not-a-uuid", "0" * 40])
async def test_unknown_checks_are_404(client: httpx.AsyncClient, keys: Keys, code: str) -> None:
    assert error(await client.get(f"{CHECKS}{code}", headers=key(keys.write)), 404) == "not found"
    if code != "0" * 40:
        assert error(await post(client, f"{CHECKS}{code}", keys.write, {"name": "x"}), 404)
        assert error(await post_empty(client, f"{CHECKS}{code}/resume", keys.write), 404)


async def test_other_methods_are_405_and_preflights_are_answered(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.put(CHECKS, headers=key(keys.write), content="{}")

    assert (response.status_code, response.content) == (405, b"")
    assert response.headers["allow"] == "GET, POST"
    assert (await client.post(f"{CHECKS}{uuid.uuid4()}/flips/")).status_code == 405
    preflight = await client.options(CHECKS)
    assert preflight.status_code == 204
    assert "X-Api-Key" in preflight.headers["access-control-allow-headers"]
    assert "POST" in preflight.headers["access-control-allow-methods"]


# -- validation, in Healthchecks' words ------------------------------------------------------

UNSUPPORTED = "is not supported by Cronkeeper"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": False}, "name is not a string"),
        ({"name": "01234567890" * 20}, "name is too long"),
        ({"timeout": 0}, "timeout is too small"),
        ({"timeout": 31536001}, "timeout is too large"),
        ({"timeout": "oops"}, "timeout is not a number"),
        ({"timeout": 3600.5}, "timeout is not a number"),
        ({"grace": 59}, "grace is too small"),
        ({"channels": None}, "channels is not a string"),
        ({"timeout": None}, "timeout is not a number"),
        ({"grace": None}, "grace is not a number"),
        ({"name": None}, "name is not a string"),
        ({"schedule": None}, "schedule is not a string"),
        ({"subject": None}, "subject is not a string"),
        ({"subject_fail": None}, "subject_fail is not a string"),
        ({"unique": None}, "unique is not an array"),
        ({"channels": 123}, "channels is not a string"),
        ({"desc": 123}, "desc is not a string"),
        ({"tags": ["a"]}, "tags is not a string"),
        ({"unique": ["status"]}, "an item in 'unique' has unexpected value"),
        ({"unique": "not a list"}, "unique is not an array"),
        ({"schedule": "bad-expression"}, "schedule is not a valid cron or OnCalendar expression"),
        ({"schedule": "12:34\nsurprise"}, "schedule is not a valid cron or OnCalendar expression"),
        ({"schedule": "0 0 31 2 *"}, "schedule is not a valid cron or OnCalendar expression"),
        ({"schedule": "1,2 61 * * *"}, "schedule is not a valid cron or OnCalendar expression"),
        ({"schedule": "every 5m"}, "schedule is not a valid cron or OnCalendar expression"),
        ({"schedule": "1," * 100 + "1 * * * *"}, "schedule is too long"),
        ({"schedule": "* * * * *", "tz": "not-a-timezone"}, "tz is not a valid timezone"),
        ({"manual_resume": "surprise"}, "manual_resume is not a boolean"),
        ({"filter_subject": "surprise"}, "filter_subject is not a boolean"),
        ({"filter_body": "surprise"}, "filter_body is not a boolean"),
        ({"methods": "bad-value"}, "methods has unexpected value"),
        ({"subject": "A" * 201}, "subject is too long"),
        ({"start_kw": "A" * 201}, "start_kw is too long"),
        ({"subject": False}, "subject is not a string"),
        ({"slug": "Hey!"}, "slug does not match pattern"),
        ({"slug": "look spaces"}, "slug does not match pattern"),
        ({"slug": "my_slug"}, "slug is not a Cronkeeper slug"),
        ({"tags": "ok n\u00f8pe"}, f"tags has unexpected value ({TAG_RULE})"),
        ({"manual_resume": True}, f"manual_resume {UNSUPPORTED} (only False)"),
        ({"methods": "POST"}, f"methods {UNSUPPORTED} (only '')"),
        ({"timeout": 30, "methods": "POST"}, "timeout is too small"),  # theirs come first
        ([1, 2, 3], "value is not an object"),
    ],
)  # fmt: skip
async def test_bad_fields_are_400_in_healthchecks_words(
    client: httpx.AsyncClient, keys: Keys, body: Any, expected: str
) -> None:
    response = await post(client, CHECKS, keys.write, body)

    assert error(response, 400).startswith(f"json validation error: {expected}")
    assert (await get(client, CHECKS, keys.read))["checks"] == []


async def test_an_update_with_a_bad_field_changes_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    code = (await create(client, keys))["uuid"]

    response = await post(client, f"{CHECKS}{code}", keys.write, {"name": "New", "channels": "abc"})

    assert error(response, 400) == "invalid channel identifier: abc"
    assert (await get(client, f"{CHECKS}{code}", keys.read))["name"] == "Backups"


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(CHECKS, headers=key(keys.write), content="this is not json")

    assert error(response, 400) == "could not parse request body"
    assert re.fullmatch(r"\{\"error\": ?\"could not parse request body\"\}", response.text)

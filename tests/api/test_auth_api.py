"""Who may do what through the API: 401 without a usable key, 403 for the wrong role or
project (and the refusal is audited), and the per-address limit on failed logins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cronkeeper.api.app import create_app
from cronkeeper.domain.models import Actor
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context
from cronkeeper.testing import FakeClock

from .conftest import AUDIT, JOBS, PROBLEM_JSON, Keys, bearer, http_job

OTHER_JOBS = "/api/v1/projects/other/jobs"
WELL_FORMED_UNKNOWN = "ck_abcdefgh_" + "A" * 32


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "/problems/unauthenticated"


async def test_a_request_without_a_key_is_401_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(JOBS)

    assert_unauthenticated(response)
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer not-a-key", id="malformed"),
        pytest.param("Bearer ck_short_x", id="wrong-shape"),
        pytest.param(f"Bearer {WELL_FORMED_UNKNOWN}", id="well-formed-unknown"),
        pytest.param(f"Basic {WELL_FORMED_UNKNOWN}", id="not-bearer"),
    ],
)
async def test_a_key_that_is_not_a_valid_key_is_401(
    client: httpx.AsyncClient, keys: Keys, header: str
) -> None:
    response = await client.get(JOBS, headers={"Authorization": header})

    assert_unauthenticated(response)


async def test_a_known_prefix_with_the_wrong_secret_is_401(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    forged = keys.admin[: -len("x" * 32)] + "x" * 32

    response = await client.get(JOBS, headers=bearer(forged))

    assert_unauthenticated(response)


async def test_a_revoked_key_is_401(
    client: httpx.AsyncClient, keys: Keys, ctx: Context, admin: Actor
) -> None:
    assert (await client.get(JOBS, headers=bearer(keys.write))).status_code == 200
    await key_service.revoke_key(ctx, admin, keys.write)

    response = await client.get(JOBS, headers=bearer(keys.write))

    assert_unauthenticated(response)
    assert "revoked" in response.json()["detail"]


async def test_a_read_key_can_list_and_show_jobs(client: httpx.AsyncClient, keys: Keys) -> None:
    created = await client.post(JOBS, json=http_job("nightly"), headers=bearer(keys.write))
    assert created.status_code == 201

    listed = await client.get(JOBS, headers=bearer(keys.read))
    shown = await client.get(f"{JOBS}/nightly", headers=bearer(keys.read))
    audit = await client.get(AUDIT, headers=bearer(keys.read))

    assert [job["slug"] for job in listed.json()["data"]["items"]] == ["nightly"]
    assert shown.json()["data"]["slug"] == "nightly"
    assert audit.status_code == 200


MUTATIONS: list[Any] = [
    pytest.param("POST", "", http_job("nightly"), "job.create", id="create"),
    pytest.param("PATCH", "/existing", {"name": "renamed"}, "job.update", id="update"),
    pytest.param("DELETE", "/existing", None, "job.delete", id="delete"),
    pytest.param("POST", "/existing/pause", None, "job.pause", id="pause"),
    pytest.param("POST", "/existing/resume", None, "job.resume", id="resume"),
]


@pytest.mark.parametrize(("method", "path", "body", "action"), MUTATIONS)
async def test_a_read_key_cannot_change_jobs_and_the_refusal_is_audited(
    client: httpx.AsyncClient,
    keys: Keys,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    action: str,
) -> None:
    await client.post(JOBS, json=http_job("existing"), headers=bearer(keys.write))

    response = await client.request(method, JOBS + path, json=body, headers=bearer(keys.read))

    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == "/problems/forbidden"
    job = (await client.get(f"{JOBS}/existing", headers=bearer(keys.read))).json()["data"]
    assert (job["name"], job["status"]) == ("", "active")
    listed = (await client.get(JOBS, headers=bearer(keys.read))).json()["data"]["items"]
    assert [j["slug"] for j in listed] == ["existing"]
    audit = await client.get(AUDIT, params={"action": action}, headers=bearer(keys.read))
    entry = audit.json()["data"]["items"][0]
    assert (entry["actor"], entry["outcome"]) == ("reader", "failed")
    assert entry["ip"] == "127.0.0.1"
    assert entry["detail"]


async def test_a_key_of_one_project_cannot_reach_another(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    read = await client.get(JOBS, headers=bearer(keys.other))
    write = await client.post(JOBS, json=http_job("intruder"), headers=bearer(keys.other))

    assert read.status_code == 403
    assert read.headers["content-type"] == PROBLEM_JSON
    assert write.status_code == 403
    assert (await client.get(JOBS, headers=bearer(keys.admin))).json()["data"]["items"] == []


async def test_a_key_works_in_its_own_project(client: httpx.AsyncClient, keys: Keys) -> None:
    created = await client.post(OTHER_JOBS, json=http_job("mine"), headers=bearer(keys.other))

    assert created.status_code == 201
    assert created.headers["location"] == f"{OTHER_JOBS}/mine"


async def test_an_admin_key_reaches_every_project(client: httpx.AsyncClient, keys: Keys) -> None:
    await client.post(OTHER_JOBS, json=http_job("theirs"), headers=bearer(keys.other))

    listed = await client.get(OTHER_JOBS, headers=bearer(keys.admin))
    paused = await client.post(f"{OTHER_JOBS}/theirs/pause", headers=bearer(keys.admin))
    created = await client.post(JOBS, json=http_job("ours"), headers=bearer(keys.admin))

    assert [job["slug"] for job in listed.json()["data"]["items"]] == ["theirs"]
    assert paused.json()["data"]["status"] == "paused"
    assert created.status_code == 201


# ---------------------------------------------------------------------------
# failed-authentication rate limit


async def test_too_many_failed_logins_from_one_address_lock_it_out_until_time_passes(
    make_client: Callable[..., httpx.AsyncClient], keys: Keys, clock: FakeClock
) -> None:
    client = make_client(auth_failures_per_minute=3)
    for _ in range(3):
        assert (await client.get(JOBS, headers=bearer(WELL_FORMED_UNKNOWN))).status_code == 401

    locked = await client.get(JOBS, headers=bearer(keys.write))

    assert locked.status_code == 429
    assert locked.headers["content-type"] == PROBLEM_JSON
    assert int(locked.headers["retry-after"]) >= 1
    assert locked.json()["type"] == "/problems/rate-limited"
    clock.advance(60)
    assert (await client.get(JOBS, headers=bearer(keys.write))).status_code == 200


async def test_successful_logins_do_not_count_towards_the_lockout(
    make_client: Callable[..., httpx.AsyncClient], keys: Keys
) -> None:
    client = make_client(auth_failures_per_minute=3)
    for _ in range(2):
        assert (await client.get(JOBS)).status_code == 401
    for _ in range(5):
        assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 200

    assert (await client.get(JOBS)).status_code == 401
    assert (await client.get(JOBS, headers=bearer(keys.read))).status_code == 429


async def test_the_lockout_is_per_address(keys: Keys, ctx: Context) -> None:
    app = create_app(ctx, auth_failures_per_minute=3)

    def client_at(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async with client_at("203.0.113.7") as attacker, client_at("198.51.100.9") as colleague:
        for _ in range(3):
            assert (await attacker.get(JOBS)).status_code == 401
        assert (await attacker.get(JOBS, headers=bearer(keys.read))).status_code == 429

        assert (await colleague.get(JOBS, headers=bearer(keys.read))).status_code == 200

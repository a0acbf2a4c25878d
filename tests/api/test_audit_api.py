"""The audit log through HTTP: one entry per mutation with actor, address, action, target,
a diff of the changed fields with secrets masked, and the outcome; filters and pages."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from cronkeeper.testing import FakeClock

from .conftest import AUDIT, JOBS, PROBLEM_JSON, Keys, bearer, http_job

SECRET = "Bearer sup3r-s3cret-audit-token"
ENV_SECRET = "pg-passw0rd-in-env"


async def audit(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Entries of project `default`; only job actions unless `action` says otherwise (the
    fixture's keys were created in the same project and are audited as well)."""
    response = await api.get(AUDIT, params={"action": "job.", **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]["items"]
    return items


async def mutate_once_each(api: httpx.AsyncClient) -> None:
    """create, update, pause, resume, delete — one job, one minute apart."""
    clock_steps = [
        ("POST", JOBS, http_job("nightly")),
        ("PATCH", f"{JOBS}/nightly", {"schedule": "0 3 * * *"}),
        ("POST", f"{JOBS}/nightly/pause", None),
        ("POST", f"{JOBS}/nightly/resume", None),
        ("DELETE", f"{JOBS}/nightly", None),
    ]
    for method, url, body in clock_steps:
        response = await api.request(method, url, json=body)
        assert response.status_code < 300, response.text


async def test_every_mutation_writes_one_entry_naming_actor_address_action_and_target(
    api: httpx.AsyncClient,
) -> None:
    await mutate_once_each(api)

    entries = await audit(api)

    assert [(e["action"], e["target"], e["outcome"]) for e in entries] == [
        ("job.delete", "job:nightly", "success"),
        ("job.resume", "job:nightly", "success"),
        ("job.pause", "job:nightly", "success"),
        ("job.update", "job:nightly", "success"),
        ("job.create", "job:nightly", "success"),
    ]
    assert {(e["actor"], e["ip"]) for e in entries} == {("writer", "127.0.0.1")}


async def test_the_diff_holds_only_the_fields_that_changed(api: httpx.AsyncClient) -> None:
    await mutate_once_each(api)

    by_action = {e["action"]: e["diff"] for e in await audit(api)}

    assert by_action["job.update"] == {"schedule": ["0 2 * * *", "0 3 * * *"]}
    assert by_action["job.pause"] == {"status": ["active", "paused"]}
    assert by_action["job.resume"] == {"status": ["paused", "active"]}
    assert by_action["job.create"]["slug"] == [None, "nightly"]
    assert by_action["job.delete"]["slug"] == ["nightly", None]


async def test_secrets_never_appear_in_the_audit_log(api: httpx.AsyncClient) -> None:
    target = {"url": "https://a.example.com/", "headers": {"Authorization": SECRET}}
    await api.post(JOBS, json=http_job("web", target=target))
    await api.patch(f"{JOBS}/web", json={"target": {"headers": {"Authorization": SECRET + "2"}}})
    command = {"command": "pg_dump app", "shell": True, "env": {"PGPASSWORD": ENV_SECRET}}
    await api.post(JOBS, json={"slug": "dump", "kind": "command", "target": command})
    await api.patch(f"{JOBS}/dump", json={"target": {"env": {"PGPASSWORD": ENV_SECRET + "2"}}})
    await api.delete(f"{JOBS}/dump")

    response = await api.get(AUDIT)

    entries = [e for e in response.json()["data"]["items"] if e["action"].startswith("job.")]
    assert len(entries) == 5
    assert "s3cret" not in response.text
    assert ENV_SECRET not in response.text
    created = next(e for e in entries if e["action"] == "job.create" and e["target"] == "job:web")
    assert created["diff"]["target"][1]["headers"] == {"Authorization": "********"}
    deleted = next(e for e in entries if e["action"] == "job.delete")
    assert deleted["diff"]["target"][0]["env"] == {"PGPASSWORD": "********"}


async def test_a_refused_mutation_is_recorded_as_failed_with_the_reason(
    api: httpx.AsyncClient,
) -> None:
    await api.post(JOBS, json=http_job("nightly", schedule="61 * * * *"))

    [entry] = await audit(api)

    assert (entry["action"], entry["target"], entry["outcome"]) == (
        "job.create",
        "job:nightly",
        "failed",
    )
    assert entry["diff"] == {}
    assert "schedule" in entry["detail"]


async def test_entries_filter_by_exact_action_and_by_prefix(api: httpx.AsyncClient) -> None:
    await mutate_once_each(api)

    assert [e["action"] for e in await audit(api, action="job.pause")] == ["job.pause"]
    assert len(await audit(api, action="job.")) == 5
    assert len(await audit(api, action="job.*")) == 5
    assert await audit(api, action="job") == []
    assert await audit(api, action="channel.") == []


async def test_entries_filter_by_outcome(api: httpx.AsyncClient) -> None:
    await api.post(JOBS, json=http_job("good"))
    await api.post(JOBS, json=http_job("good"))

    failed = await audit(api, outcome="failed")
    succeeded = await audit(api, outcome="success")

    assert [(e["action"], e["outcome"]) for e in failed] == [("job.create", "failed")]
    assert [(e["action"], e["outcome"]) for e in succeeded] == [("job.create", "success")]


async def test_entries_filter_by_time_window_from_inclusive_to_exclusive(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    for slug in ("at-12-00", "at-12-10", "at-12-20"):
        await api.post(JOBS, json=http_job(slug))
        clock.advance(600)

    window = await audit(api, **{"from": "2026-03-01T12:10:00Z", "to": "2026-03-01T12:20:00Z"})
    since = await audit(api, **{"from": "2026-03-01T12:10:00+00:00"})
    berlin = await audit(api, to="2026-03-01T13:10:00+01:00")

    assert [e["target"] for e in window] == ["job:at-12-10"]
    assert [e["target"] for e in since] == ["job:at-12-20", "job:at-12-10"]
    assert [e["target"] for e in berlin] == ["job:at-12-00"]


async def test_a_time_without_a_timezone_is_rejected_naming_the_parameter(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(AUDIT, params={"from": "2026-03-01T12:10:00"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert [e["field"] for e in response.json()["errors"]] == ["from"]


async def test_paging_through_the_log_shows_every_entry_once_newest_first(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    for index in range(5):
        await api.post(JOBS, json=http_job(f"job-{index}"))
        if index % 2:
            clock.advance(1)  # some entries share a timestamp; the id breaks the tie

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "action": "job."}
    pages = 0
    while True:
        page = (await api.get(AUDIT, params=params)).json()["data"]
        pages += 1
        seen += [entry["target"] for entry in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    assert seen == [f"job:job-{index}" for index in reversed(range(5))]
    assert pages == 3


def forged(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("%%%", id="not-base64"),
        pytest.param(forged({"id": 1}), id="missing-key"),
        pytest.param(forged({"at": 1, "id": 2}), id="at-not-a-string"),
        pytest.param(forged({"at": "yesterday", "id": 2}), id="at-not-a-time"),
        pytest.param(forged({"at": "2026-03-01T12:00:00", "id": 2}), id="naive-time"),
        pytest.param(forged({"at": "2026-03-01T12:00:00Z", "id": "x"}), id="id-not-int"),
        pytest.param(forged({"at": "2026-03-01T12:00:00Z", "id": 2**80}), id="id-too-big"),
    ],
)
async def test_a_tampered_audit_cursor_is_rejected_naming_the_cursor(
    api: httpx.AsyncClient, cursor: str
) -> None:
    response = await api.get(AUDIT, params={"cursor": cursor})

    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


async def test_the_audit_log_of_another_project_is_forbidden(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get(AUDIT, headers=bearer(keys.other))

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM_JSON

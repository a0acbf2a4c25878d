"""Maintenance windows through HTTP: one-off and recurring windows, whether each is on
now, validation naming the field at fault with nothing written, roles, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cronkeeper.testing import FakeClock

from .conftest import AUDIT, PROBLEM_JSON, Keys, bearer

WINDOWS = "/api/v1/projects/default/maintenance"


async def names(api: httpx.AsyncClient) -> list[str]:
    response = await api.get(WINDOWS)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["data"]["items"]]


def fields_at_fault(response: httpx.Response) -> set[str]:
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.text
    return {error["field"] for error in response.json()["errors"]}


async def test_a_one_off_window_is_on_between_its_start_and_end(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    now = clock.now()
    body = {
        "name": "db-upgrade",
        "mode": "mute",
        "starts_at": (now - timedelta(minutes=5)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "jobs": ["nightly"],
    }

    created = await api.post(WINDOWS, json=body)

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{WINDOWS}/db-upgrade"
    window = created.json()["data"]
    assert window["jobs"] == ["nightly"] and window["mode"] == "mute"
    assert datetime.fromisoformat(window["active_until"]) == now + timedelta(hours=1)
    clock.advance(3601)
    shown = (await api.get(f"{WINDOWS}/db-upgrade")).json()["data"]
    assert shown["active_until"] is None


async def test_a_recurring_window_is_on_during_each_occurrence_in_its_time_zone(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.set(datetime(2026, 7, 5, 0, 30, tzinfo=UTC))  # 02:30 in Berlin (summer time)
    body = {
        "name": "sunday-backup",
        "mode": "skip",
        "schedule": "0 2 * * 0",
        "timezone": "Europe/Berlin",
        "duration": "1h",
        "tags": ["backups"],
    }

    window = (await api.post(WINDOWS, json=body)).json()["data"]

    assert window["duration"] == 3600 and window["tags"] == ["backups"]
    assert datetime.fromisoformat(window["active_until"]) == datetime(2026, 7, 5, 1, 0, tzinfo=UTC)
    clock.advance(3600)
    assert (await api.get(f"{WINDOWS}/sunday-backup")).json()["data"]["active_until"] is None


async def test_bad_windows_name_the_field_at_fault_and_store_nothing(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    now = clock.now().isoformat()
    later = (clock.now() + timedelta(hours=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x"}, "starts_at"),
        ({"name": "x", "starts_at": now}, "ends_at"),
        ({"name": "x", "starts_at": later, "ends_at": now}, "ends_at"),
        ({"name": "x", "schedule": "0 2 * * *"}, "duration"),
        ({"name": "x", "schedule": "61 2 * * *", "duration": 60}, "schedule"),
        (
            {"name": "x", "schedule": "0 2 * * *", "duration": 60, "timezone": "Mars/Base"},
            "timezone",
        ),
        ({"name": "x", "schedule": "0 2 * * *", "duration": 60, "starts_at": now}, "schedule"),
        ({"name": "x", "starts_at": now, "ends_at": later, "mode": "snooze"}, "mode"),
        ({"name": "Bad Name", "starts_at": now, "ends_at": later}, "name"),
        ({"name": "x", "starts_at": "yesterday", "ends_at": later}, "starts_at"),
        ({"name": "x", "starts_at": now, "ends_at": later, "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = await api.post(WINDOWS, json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in fields_at_fault(response), (body, response.json())
    assert await names(api) == []


async def test_a_taken_name_conflicts_and_a_deleted_window_is_gone(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    body = {"name": "freeze", "schedule": "@daily", "duration": "2h"}
    assert (await api.post(WINDOWS, json=body)).status_code == 201

    again = await api.post(WINDOWS, json=body)
    assert again.status_code == 409

    assert (await api.delete(f"{WINDOWS}/freeze")).status_code == 204
    assert await names(api) == []
    assert (await api.delete(f"{WINDOWS}/freeze")).status_code == 404


async def test_read_keys_can_list_but_not_create_and_every_change_is_audited(
    client: httpx.AsyncClient, keys: Keys, clock: FakeClock
) -> None:
    body = {"name": "freeze", "schedule": "@daily", "duration": "2h"}
    refused = await client.post(WINDOWS, json=body, headers=bearer(keys.read))
    assert refused.status_code == 403
    assert (await client.get(WINDOWS, headers=bearer(keys.read))).status_code == 200

    created = await client.post(WINDOWS, json=body, headers=bearer(keys.write))
    assert created.status_code == 201
    await client.delete(f"{WINDOWS}/freeze", headers=bearer(keys.write))

    entries = (
        await client.get(AUDIT, params={"action": "maintenance."}, headers=bearer(keys.admin))
    ).json()["data"]["items"]
    seen = [(e["action"], e["outcome"], e["actor"]) for e in reversed(entries)]
    assert seen == [
        ("maintenance.create", "failed", "reader"),
        ("maintenance.create", "success", "writer"),
        ("maintenance.delete", "success", "writer"),
    ]
    assert entries[0]["target"] == "maintenance:freeze"

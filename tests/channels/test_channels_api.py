"""`/api/v1/projects/{project}/channels…` through the ASGI app: CRUD with an admin key,
validation naming the field at fault, secrets masked in answers and audit, the test
endpoint against a real receiver, and the delivery history."""

from __future__ import annotations

import json
from typing import Any

import httpx

from cronkeeper.service.context import Context

from .conftest import CHANNELS, Keys, bearer
from .peers import Receiver, SmtpServer

PROBLEM_JSON = "application/problem+json"
SECRET = "Bearer s3cret-token"


def webhook(name: str, url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "webhook",
        "config": {"url": url, "headers": {"Authorization": SECRET}},
        **fields,
    }


async def test_an_admin_creates_lists_shows_edits_and_deletes_a_channel(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(
        CHANNELS, json=webhook("ops-webhook", "https://hooks.example.com/x")
    )
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{CHANNELS}/ops-webhook"
    body = created.json()["data"]
    assert body["config"] == {
        "url": "https://hooks.example.com/x",
        "method": "POST",
        "headers": {"Authorization": "********"},
        "body_down": None,
        "body_up": None,
    }
    assert (body["default"], body["disabled"], body["disabled_reason"]) == (False, False, None)

    listed = (await client.get(CHANNELS)).json()["data"]
    assert [c["name"] for c in listed["items"]] == ["ops-webhook"]
    assert listed["next_cursor"] is None

    patched = await client.patch(f"{CHANNELS}/ops-webhook", json={"default": True})
    assert patched.status_code == 200 and patched.json()["data"]["default"] is True
    shown = (await client.get(f"{CHANNELS}/ops-webhook")).json()["data"]
    assert shown["default"] is True

    assert (await client.delete(f"{CHANNELS}/ops-webhook")).status_code == 204
    assert (await client.get(f"{CHANNELS}/ops-webhook")).status_code == 404


async def test_echoing_a_masked_config_back_keeps_the_stored_secret(
    ctx: Context, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post(CHANNELS, json=webhook("hook", receiver.url("/in")))
    shown = (await client.get(f"{CHANNELS}/hook")).json()["data"]
    await client.patch(f"{CHANNELS}/hook", json={"config": shown["config"]})
    sent = (await client.post(f"{CHANNELS}/hook/test")).json()["data"]
    assert sent["status"] == "sent"
    assert receiver.requests[0].headers["Authorization"] == SECRET


async def test_bad_configs_are_refused_with_the_field_at_fault_and_nothing_is_written(
    client: httpx.AsyncClient,
) -> None:
    cases = [
        (webhook("w", "ftp://x"), "config.url"),
        (
            {
                "name": "e",
                "kind": "email",
                "config": {"to": ["not-an-address"], "smtp_url": "smtp://h"},
            },
            "config.to[0]",
        ),
        (
            {"name": "e", "kind": "email", "config": {"to": ["a@b.c"], "smtp_url": "http://h"}},
            "config.smtp_url",
        ),
        ({"name": "e", "kind": "email", "config": {"smtp_url": "smtp://h"}}, "config.to"),
        ({"name": "a", "kind": "apprise", "config": {"urls": ["nosuch://x"]}}, "config.urls[0]"),
        ({"name": "a", "kind": "apprise", "config": {"urls": []}}, "config.urls"),
        ({"name": "x", "kind": "pager", "config": {}}, "kind"),
        ({"name": "bad name!", "kind": "apprise", "config": {"urls": ["json://h"]}}, "name"),
        ({**webhook("w", "https://x"), "extra": 1}, "extra"),
        (
            {"name": "w", "kind": "webhook", "config": {"url": "https://x", "secret": 1}},
            "config.secret",
        ),
    ]
    for body, field in cases:
        answer = await client.post(CHANNELS, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert field in [error["field"] for error in answer.json()["errors"]], (field, answer.text)
    assert (await client.post(CHANNELS, content=b"{not json")).status_code == 400
    assert (await client.get(CHANNELS)).json()["data"]["items"] == []


async def test_a_taken_name_is_a_conflict_and_a_bad_patch_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await client.post(CHANNELS, json=webhook("one", "https://x.example.com"))
    await client.post(CHANNELS, json=webhook("two", "https://y.example.com"))
    taken = await client.post(CHANNELS, json=webhook("one", "https://z.example.com"))
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "name"
    renamed = await client.patch(f"{CHANNELS}/two", json={"name": "one"})
    assert renamed.status_code == 409
    bad = await client.patch(f"{CHANNELS}/two", json={"config": {"url": "nope"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "config.url"
    shown = (await client.get(f"{CHANNELS}/two")).json()["data"]
    assert shown["config"]["url"] == "https://y.example.com"


async def test_only_admin_keys_change_channels_but_any_key_reads_them(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await client.post(CHANNELS, json=webhook("hook", "https://x.example.com"))
    for key in (keys.read, keys.write):
        headers = bearer(key)
        refused = await client.post(CHANNELS, json=webhook("h2", "https://x"), headers=headers)
        assert refused.status_code == 403
        assert (await client.post(f"{CHANNELS}/hook/test", headers=headers)).status_code == 403
        assert (await client.delete(f"{CHANNELS}/hook", headers=headers)).status_code == 403
        listed = await client.get(CHANNELS, headers=headers)
        assert listed.status_code == 200
        assert listed.json()["data"]["items"][0]["config"]["headers"] == {
            "Authorization": "********"
        }


async def test_secrets_never_reach_the_audit_log(client: httpx.AsyncClient) -> None:
    await client.post(CHANNELS, json=webhook("hook", "https://u:pw1@x.example.com/h"))
    await client.patch(
        f"{CHANNELS}/hook",
        json={"config": {"headers": {"Authorization": "Bearer other-secret"}}},
    )
    await client.post(
        CHANNELS,
        json={"name": "mail", "kind": "email",
              "config": {"to": ["a@b.c"], "smtp_url": "smtp://bot:hunter2@mail.example.com"}},
    )  # fmt: skip
    await client.post(
        CHANNELS,
        json={"name": "tg", "kind": "apprise",
              "config": {"urls": ["tgram://123456789:abcdefg_hijklmnop/12315544/"]}},
    )  # fmt: skip
    await client.delete(f"{CHANNELS}/mail")
    audit = (await client.get("/api/v1/projects/default/audit")).json()["data"]["items"]
    actions = [entry["action"] for entry in audit]
    assert actions[:5] == [
        "channel.delete", "channel.create", "channel.create", "channel.update", "channel.create",
    ]  # fmt: skip
    text = json.dumps(audit)
    for secret in ("s3cret-token", "other-secret", "pw1", "hunter2", "abcdefg_hijklmnop"):
        assert secret not in text
    everything = json.dumps((await client.get(CHANNELS)).json())
    for secret in ("s3cret-token", "other-secret", "pw1", "abcdefg_hijklmnop"):
        assert secret not in everything


async def test_the_test_endpoint_sends_an_event_test_and_records_it(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post(CHANNELS, json=webhook("hook", receiver.url("/in")))
    answer = await client.post(f"{CHANNELS}/hook/test")
    assert answer.status_code == 200
    result = answer.json()["data"]
    assert (result["status"], result["event"], result["attempts"]) == ("sent", "test", 1)
    assert result["alert_id"] is None and result["channel"] == "hook"
    sent = json.loads(receiver.requests[0].body)
    assert sent["event"] == "test" and sent["status"] == "test"
    assert set(sent) == {
        "event", "job", "status", "reason", "run", "failing_jobs", "down_for_s",
    }  # fmt: skip
    history = (await client.get(f"{CHANNELS}/hook/notifications")).json()["data"]
    assert [n["id"] for n in history["items"]] == [result["id"]]


async def test_a_failing_test_answers_200_with_the_error_and_does_not_disable(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    await client.post(CHANNELS, json=webhook("gone", receiver.url("/status/404")))
    answer = await client.post(f"{CHANNELS}/gone/test")
    assert answer.status_code == 200
    result = answer.json()["data"]
    assert result["status"] == "failed"
    assert result["error"] == "HTTP 404 Not Found: answer 404"
    assert (await client.get(f"{CHANNELS}/gone")).json()["data"]["disabled"] is False
    audit = (await client.get("/api/v1/projects/default/audit")).json()["data"]["items"]
    assert audit[0]["action"] == "channel.test" and audit[0]["diff"]["status"] == [None, "failed"]


async def test_an_email_channel_test_reaches_the_smtp_server(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    config = {"to": ["ops@example.com"], "smtp_url": smtp.url()}
    await client.post(CHANNELS, json={"name": "mail", "kind": "email", "config": config})
    result = (await client.post(f"{CHANNELS}/mail/test")).json()["data"]
    assert result["status"] == "sent", result["error"]
    assert smtp.messages[0]["Subject"].startswith("[Cronkeeper] Test message from Cronkeeper")


async def test_a_disabled_channel_shows_why_and_any_update_turns_it_back_on(
    ctx: Context, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import update

    from cronkeeper.store.tables import channels

    await client.post(CHANNELS, json=webhook("hook", "https://x.example.com"))
    async with ctx.db.write() as conn:
        await conn.execute(update(channels).values(disabled_reason="disabled at … : HTTP 404"))
    shown = (await client.get(f"{CHANNELS}/hook")).json()["data"]
    assert shown["disabled"] is True and shown["disabled_reason"] == "disabled at … : HTTP 404"
    enabled = (await client.patch(f"{CHANNELS}/hook", json={})).json()["data"]
    assert enabled["disabled"] is False and enabled["disabled_reason"] is None


async def test_lists_and_delivery_history_are_keyset_paginated(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    for index in range(3):
        await client.post(CHANNELS, json=webhook(f"hook-{index}", receiver.url()))
    first = (await client.get(CHANNELS, params={"limit": 2})).json()["data"]
    second = (
        await client.get(CHANNELS, params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()["data"]
    assert [c["name"] for c in first["items"] + second["items"]] == ["hook-0", "hook-1", "hook-2"]
    assert second["next_cursor"] is None
    ids = [(await client.post(f"{CHANNELS}/hook-0/test")).json()["data"]["id"] for _ in range(3)]
    page = (await client.get(f"{CHANNELS}/hook-0/notifications", params={"limit": 2})).json()[
        "data"
    ]
    rest = (
        await client.get(
            f"{CHANNELS}/hook-0/notifications", params={"limit": 2, "cursor": page["next_cursor"]}
        )
    ).json()["data"]
    assert sorted(n["id"] for n in page["items"] + rest["items"]) == sorted(ids)
    bad = await client.get(CHANNELS, params={"cursor": "garbage"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    assert (await client.get(f"{CHANNELS}/nope%00x/notifications")).status_code == 404

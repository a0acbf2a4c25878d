"""Secrets never leave the server in clear, and echoing a masked job back keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from cronkeeper.domain.masking import MASK, mask_target, mask_url, unmask_target


@pytest.mark.parametrize(
    "header", ["Authorization", "authorization", "X-Api-Key", "Cookie", "X-Auth-Token"]
)
def test_credential_headers_are_masked(header: str) -> None:
    target = {"url": "https://example.com/x", "headers": {header: "Bearer s3cret"}}
    masked = mask_target(target)
    assert masked is not None
    assert masked["headers"] == {header: MASK}


@pytest.mark.parametrize("header", ["Content-Type", "Accept", "User-Agent"])
def test_ordinary_headers_are_kept(header: str) -> None:
    target = {"url": "https://example.com/x", "headers": {header: "application/json"}}
    assert mask_target(target) == target


def test_masking_does_not_change_the_stored_target() -> None:
    target = {"url": "https://example.com/x", "headers": {"Authorization": "Bearer s3cret"}}
    mask_target(target)
    assert target["headers"] == {"Authorization": "Bearer s3cret"}


def test_every_command_environment_value_is_masked() -> None:
    target = {"command": ["pg_dump", "app"], "env": {"PGPASSWORD": "pw", "LANG": "C.UTF-8"}}
    masked = mask_target(target)
    assert masked is not None
    assert masked["env"] == {"PGPASSWORD": MASK, "LANG": MASK}
    assert masked["command"] == ["pg_dump", "app"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:hunter2@example.com/x", f"https://bob:{MASK}@example.com/x"),
        (
            "https://bob:hunter2@example.com:8443/x?q=1",
            f"https://bob:{MASK}@example.com:8443/x?q=1",
        ),
        ("https://:hunter2@example.com/", f"https://:{MASK}@example.com/"),
        ("https://bob:hunter2@[2001:db8::1]:8443/x", f"https://bob:{MASK}@[2001:db8::1]:8443/x"),
        ("https://bob@example.com/x", "https://bob@example.com/x"),
        ("https://example.com/x", "https://example.com/x"),
    ],
)
def test_a_password_in_a_url_is_masked_and_the_rest_kept(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert "hunter2" not in mask_url(url)


def test_a_url_password_in_a_target_is_masked() -> None:
    masked = mask_target({"url": "https://bob:hunter2@example.com/x"})
    assert masked == {"url": f"https://bob:{MASK}@example.com/x"}


def test_nothing_to_mask_without_a_target() -> None:
    assert mask_target(None) is None


def _workflow() -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "extract",
                "kind": "http",
                "target": {
                    "url": "https://u:pw@api.example.com/",
                    "headers": {"X-Api-Key": "k1", "Accept": "text/csv"},
                },
            },
            {"name": "approve", "kind": "approval", "target": None, "needs": ["extract"]},
            {
                "name": "load",
                "kind": "command",
                "target": {"command": ["load"], "env": {"TOKEN": "t1"}},
                "needs": ["approve"],
            },
        ]
    }


def test_workflow_steps_are_masked_recursively() -> None:
    masked = mask_target(_workflow())
    assert masked is not None
    extract, approve, load = masked["steps"]
    assert extract["target"]["headers"] == {"X-Api-Key": MASK, "Accept": "text/csv"}
    assert extract["target"]["url"] == f"https://u:{MASK}@api.example.com/"
    assert approve["target"] is None
    assert approve["needs"] == ["extract"]
    assert load["target"]["env"] == {"TOKEN": MASK}


def test_sending_the_mask_back_keeps_the_stored_secrets() -> None:
    stored = {
        "url": "https://bob:hunter2@example.com/x",
        "headers": {"Authorization": "Bearer s3cret", "Accept": "text/plain"},
    }
    echoed = mask_target(stored)
    assert unmask_target(echoed, stored) == stored


def test_new_values_sent_in_place_of_the_mask_replace_the_stored_ones() -> None:
    stored = {
        "url": "https://bob:hunter2@example.com/x",
        "headers": {"Authorization": "Bearer old", "X-Api-Key": "old-key"},
        "env": {"PGPASSWORD": "old-pw"},
    }
    sent = {
        "url": "https://bob:n3w@example.com/x",
        "headers": {"Authorization": "Bearer new", "X-Api-Key": MASK, "X-Trace": "1"},
        "env": {"PGPASSWORD": "new-pw"},
    }
    assert unmask_target(sent, stored) == {
        "url": "https://bob:n3w@example.com/x",
        "headers": {"Authorization": "Bearer new", "X-Api-Key": "old-key", "X-Trace": "1"},
        "env": {"PGPASSWORD": "new-pw"},
    }


def test_a_removed_header_stays_removed() -> None:
    stored = {"url": "https://example.com/", "headers": {"Authorization": "Bearer s3cret"}}
    sent = {"url": "https://example.com/", "headers": {}}
    assert unmask_target(sent, stored) == sent


def test_a_new_url_replaces_a_stored_url_with_a_password() -> None:
    stored = {"url": "https://bob:hunter2@example.com/x"}
    assert unmask_target({"url": "https://other.example.com/"}, stored) == {
        "url": "https://other.example.com/"
    }


def test_echoing_a_masked_workflow_keeps_the_secrets_of_its_steps() -> None:
    stored = _workflow()
    assert unmask_target(mask_target(stored), stored) == stored


def test_a_new_step_secret_replaces_the_stored_one_while_masked_ones_are_kept() -> None:
    stored = _workflow()
    sent = mask_target(stored)
    assert sent is not None
    sent["steps"][2]["target"]["env"] = {"TOKEN": "t2"}
    restored = unmask_target(sent, stored)
    assert restored is not None
    assert restored["steps"][0]["target"]["headers"]["X-Api-Key"] == "k1"
    assert restored["steps"][2]["target"]["env"] == {"TOKEN": "t2"}


def test_without_a_stored_target_the_sent_one_is_taken_as_is() -> None:
    sent = {"url": "https://example.com/", "headers": {"Authorization": MASK}}
    assert unmask_target(sent, None) == sent
    assert unmask_target(None, sent) is None

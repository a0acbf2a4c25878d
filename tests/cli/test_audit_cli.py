"""`cronkeeper audit`: every mutation shows up with who did it, what and how it went."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import ANSI_ESCAPE, Cli, Project, Result, assert_one_error_line


@pytest.fixture
def audited(cli: Cli, api_env: Project) -> Cli:
    """A project where a job was created, edited, paused, and a bad create was refused."""

    def invoke(*argv: str) -> Result:
        return cli(*argv, "--project", api_env.slug)

    create = ("jobs", "create", "--slug", "web", "--target-url", "https://example.com/x")
    steps = [
        (*create, "-H", "Authorization: Bearer s3cret"),
        ("jobs", "edit", "web", "--schedule", "@hourly"),
        ("jobs", "pause", "web"),
        ("jobs", "create", "--slug", "bad", "--schedule", "nope", "--target-url", "https://e.x/"),
    ]
    codes = [invoke(*step).code for step in steps]
    assert codes == [0, 0, 0, 1]
    return invoke


def entries(result: Result) -> list[dict[str, Any]]:
    assert result.code == 0, result.err
    assert result.err == ""
    envelope = json.loads(result.out)
    assert set(envelope) == {"data"}
    items: list[dict[str, Any]] = envelope["data"]["items"]
    return items


def test_audit_shows_each_mutation_newest_first(audited: Cli) -> None:
    result = audited("audit")
    assert result.code == 0, result.err
    assert ANSI_ESCAPE not in result.out
    actions = [
        action
        for line in result.out.splitlines()
        for action in ("job.create", "job.update", "job.pause")
        if action in line
    ]
    assert actions == ["job.create", "job.pause", "job.update", "job.create"]
    assert "job:web" in result.out
    assert "ci" in result.out  # the key's name is the actor


def test_audit_never_shows_the_secret_header(audited: Cli) -> None:
    assert "s3cret" not in audited("audit").out
    assert "s3cret" not in audited("audit", "--json").out


def test_audit_filters_by_action(audited: Cli) -> None:
    items = entries(audited("audit", "--action", "job.create", "--json"))
    assert [(item["action"], item["target"]) for item in items] == [
        ("job.create", "job:bad"),
        ("job.create", "job:web"),
    ]


def test_an_action_prefix_matches_every_job_action(audited: Cli) -> None:
    items = entries(audited("audit", "--action", "job.", "--json"))
    assert {item["action"] for item in items} == {"job.create", "job.update", "job.pause"}


def test_audit_filters_failed_outcomes_and_says_why(audited: Cli) -> None:
    items = entries(audited("audit", "--outcome", "failed", "--json"))
    assert len(items) == 1
    assert items[0]["target"] == "job:bad"
    assert items[0]["outcome"] == "failed"
    assert "schedule" in items[0]["detail"]
    table = audited("audit", "--outcome", "failed")
    assert "job:bad" in table.out
    assert "job:web" not in table.out


def test_audit_json_is_the_envelope_with_actor_and_diff(audited: Cli) -> None:
    items = entries(audited("audit", "--json"))
    assert {item["actor"] for item in items if item["action"].startswith("job.")} == {"ci"}
    [key_create] = [item for item in items if item["action"] == "key.create"]
    assert key_create["actor"].startswith("local:")  # `cronkeeper keys create` on this box
    assert key_create["diff"]["role"] == [None, "write"]
    update = next(item for item in items if item["action"] == "job.update")
    assert update["outcome"] == "success"
    assert "schedule" in update["diff"]


def test_audit_limit_returns_the_newest_entries(audited: Cli) -> None:
    items = entries(audited("audit", "--limit", "1", "--json"))
    assert [item["target"] for item in items] == ["job:bad"]


def test_audit_since_a_duration_keeps_only_newer_entries(audited: Cli) -> None:
    assert entries(audited("audit", "--since", "0s", "--json")) == []
    actions = [item["action"] for item in entries(audited("audit", "--since", "1h", "--json"))]
    assert actions == ["job.create", "job.pause", "job.update", "job.create", "key.create"]


def test_no_matching_entries_says_so(audited: Cli) -> None:
    result = audited("audit", "--action", "channel.create")
    assert result.code == 0
    assert "No audit entries match." in result.out


def test_an_unknown_outcome_is_refused_with_one_line(audited: Cli) -> None:
    result = audited("audit", "--outcome", "meh")
    assert result.code == 1
    assert "outcome" in assert_one_error_line(result)


def test_a_bad_since_is_a_usage_error(audited: Cli) -> None:
    result = audited("audit", "--since", "yesterday-ish")
    assert result.code == 2
    assert "since" in assert_one_error_line(result)

"""`cronkeeper maintenance`: create windows for now, for a range, or recurring; list them
with whether they are on; delete them; bad input is one line and exit 2 (or the server's
field error, exit 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .conftest import Cli, Project, assert_one_error_line, data, ok


def test_a_window_for_the_next_two_hours_is_on_now_and_listed(cli: Cli, api_env: Project) -> None:
    p = ("--project", api_env.slug)

    window = data(
        cli("maintenance", "create", "deploy", "--for", "2h", "--job", "web", *p, "--json")
    )

    until = datetime.fromisoformat(window["active_until"])
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)
    assert window["jobs"] == ["web"] and window["mode"] == "mute"
    table = ok(cli("maintenance", "list", *p)).out
    assert "deploy" in table and "web" in table and "until" in table


def test_a_recurring_skip_window_and_its_deletion(cli: Cli, api_env: Project) -> None:
    p = ("--project", api_env.slug)
    created = cli(
        "maintenance",
        "create",
        "sunday",
        "--mode",
        "skip",
        "--schedule",
        "0 3 * * 0",
        "--for",
        "90m",
        "--timezone",
        "Europe/Berlin",
        "--tag",
        "backups",
        *p,
        "--json",
    )
    window = data(created)
    assert (window["schedule"], window["duration"], window["tags"]) == (
        "0 3 * * 0",
        5400,
        ["backups"],
    )

    assert (
        ok(cli("maintenance", "delete", "sunday", *p)).out.strip()
        == "deleted maintenance window sunday"
    )
    assert data(cli("maintenance", "list", *p, "--json"))["items"] == []


def test_bad_input_is_one_line_and_nothing_is_created(cli: Cli, api_env: Project) -> None:
    p = ("--project", api_env.slug)
    local = cli("maintenance", "create", "x", "--from", "tomorrow-ish", "--for", "1h", *p)
    assert local.code == 2
    assert "--from" in assert_one_error_line(local)

    refused = cli("maintenance", "create", "x", "--schedule", "0 3 * * 0", *p)  # no --for
    assert refused.code == 1
    assert "duration" in assert_one_error_line(refused)
    assert data(cli("maintenance", "list", *p, "--json"))["items"] == []

"""`cronkeeper keys …`: local commands on the database; the key is printed once, alone."""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import httpx
import pytest

from cronkeeper.service.keys import TRUST_SECONDS

from .conftest import (
    ANSI_ESCAPE,
    CRONKEEPER,
    KEY_PATTERN,
    Cli,
    Server,
    assert_one_error_line,
    clean_env,
    create_key,
    run_process,
)


def api_status(server: Server, project: str, key: str) -> int:
    response = httpx.get(
        f"{server.url}/api/v1/projects/{project}/jobs",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    return response.status_code


def refused_soon(server: Server, project: str, key: str) -> bool:
    """Whether the API refuses the key within TRUST_SECONDS: a running server trusts a key
    it has checked that long, and `keys revoke` runs in a process of its own."""
    deadline = time.monotonic() + TRUST_SECONDS + 2
    while api_status(server, project, key) != 401:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.fixture
def db(sqlite_url: str) -> str:
    return sqlite_url


def test_keys_create_prints_only_the_key_on_one_line(cli: Cli, db: str) -> None:
    result = cli("keys", "create", "--db", db, "--project", "p", "--role", "write", "--name", "ci")
    assert result.code == 0
    assert result.err == ""
    assert result.out.endswith("\n")
    assert KEY_PATTERN.match(result.out.removesuffix("\n"))


def test_two_keys_created_in_a_row_differ(cli: Cli, db: str) -> None:
    first = cli("keys", "create", "--db", db, "--name", "a").out
    second = cli("keys", "create", "--db", db, "--name", "b").out
    assert first != second


def test_a_key_captured_by_the_shell_authenticates_against_the_api(server: Server) -> None:
    script = (
        f"KEY=$({shlex.quote(CRONKEEPER)} keys create --db {shlex.quote(server.db)} "
        "--project shell-p --role write --name ci) && printf '%s' \"$KEY\""
    )
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert KEY_PATTERN.match(done.stdout)
    assert api_status(server, "shell-p", done.stdout) == 200


def test_python_dash_m_cronkeeper_creates_a_key_the_same_way(db: str) -> None:
    result = run_process("keys", "create", "--db", db, "--name", "ci", module=True)
    assert result.code == 0, result.err
    assert result.err == ""
    assert len(result.out.splitlines()) == 1
    assert KEY_PATTERN.match(result.out.strip())


def test_keys_list_shows_prefix_name_and_role_but_never_the_secret(cli: Cli, db: str) -> None:
    key = create_key(db, "p", role="admin", name="deploy-bot")
    prefix, secret = key.split("_")[1], key.split("_", 2)[2]
    result = cli("keys", "list", "--db", db)
    assert result.code == 0
    assert prefix in result.out
    assert "deploy-bot" in result.out
    assert "admin" in result.out
    assert secret not in result.out
    assert key not in result.out
    assert ANSI_ESCAPE not in result.out


def test_keys_list_as_a_separate_process_has_no_colour_codes(db: str) -> None:
    key = create_key(db, "p", name="ci")
    result = run_process("keys", "list", "--db", db)
    assert result.code == 0, result.err
    assert key.split("_")[1] in result.out
    assert ANSI_ESCAPE not in result.out


def test_keys_list_json_is_the_api_envelope_without_secrets(cli: Cli, db: str) -> None:
    key = create_key(db, "p", role="read", name="dashboards")
    result = cli("keys", "list", "--db", db, "--json")
    assert result.code == 0
    envelope = json.loads(result.out)
    items = envelope["data"]["items"]
    mine = [item for item in items if item["prefix"] == key.split("_")[1]]
    assert len(mine) == 1
    assert mine[0]["name"] == "dashboards"
    assert mine[0]["role"] == "read"
    assert mine[0]["project"] == "p"
    assert mine[0]["revoked_at"] is None
    assert key.split("_", 2)[2] not in result.out


def test_keys_list_can_be_limited_to_one_project(cli: Cli, db: str) -> None:
    create_key(db, "alpha", name="in-alpha")
    create_key(db, "beta", name="in-beta")
    result = cli("keys", "list", "--db", db, "--project", "alpha", "--json")
    assert [item["name"] for item in json.loads(result.out)["data"]["items"]] == ["in-alpha"]


def test_listing_the_keys_of_an_unknown_project_is_one_error_line(cli: Cli, db: str) -> None:
    create_key(db, "p")
    result = cli("keys", "list", "--db", db, "--project", "nope")
    assert result.code == 1
    assert "nope" in assert_one_error_line(result)


def test_a_revoked_key_is_refused_by_the_api(cli: Cli, server: Server) -> None:
    key = create_key(server.db, "revoke-p", name="leaked")
    assert api_status(server, "revoke-p", key) == 200
    prefix = key.split("_")[1]
    result = cli("keys", "revoke", prefix, "--db", server.db)
    assert result.code == 0
    assert prefix in result.out
    assert "revoked" in result.out
    assert refused_soon(server, "revoke-p", key)
    listed = json.loads(cli("keys", "list", "--db", server.db, "--json").out)
    [entry] = [item for item in listed["data"]["items"] if item["prefix"] == prefix]
    assert entry["revoked_at"] is not None


def test_a_key_can_be_revoked_by_pasting_the_whole_key(cli: Cli, server: Server) -> None:
    key = create_key(server.db, "revoke-p", name="pasted")
    assert cli("keys", "revoke", key, "--db", server.db).code == 0
    assert api_status(server, "revoke-p", key) == 401


def test_a_bogus_role_is_a_usage_error_on_one_line(cli: Cli, db: str) -> None:
    result = cli("keys", "create", "--db", db, "--name", "ci", "--role", "bogus")
    assert result.code == 2
    assert result.out == ""
    line = assert_one_error_line(result)
    assert "--role" in line
    assert "bogus" in line


def test_a_bogus_role_in_a_real_process_exits_2_without_a_traceback(db: str) -> None:
    result = run_process("keys", "create", "--db", db, "--name", "ci", "--role", "bogus")
    assert result.code == 2
    assert result.out == ""
    assert "--role" in assert_one_error_line(result)


def test_revoking_an_unknown_prefix_fails_with_one_line(cli: Cli, db: str) -> None:
    create_key(db, "p")
    result = cli("keys", "revoke", "zzzzzzzz", "--db", db)
    assert result.code == 1
    assert result.out == ""
    assert "zzzzzzzz" in assert_one_error_line(result)


def test_a_key_without_a_name_is_refused(cli: Cli, db: str) -> None:
    result = cli("keys", "create", "--db", db, "--name", "  ")
    assert result.code == 2
    assert result.out == ""
    assert "name" in assert_one_error_line(result)

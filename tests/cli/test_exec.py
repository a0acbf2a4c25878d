"""`cronkeeper exec <slug> -- CMD…` as a user's crontab runs it: the real script, a real
wrapped command and the session's real `cronkeeper serve`; the runs it leaves are read
back through the API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest

from .conftest import CRONKEEPER, Project, Server, assert_one_error_line, clean_env, run_process

pytestmark = pytest.mark.slow
PY = sys.executable


def ping_key(server: Server, project: Project) -> str:
    answer = httpx.get(
        f"{server.url}/api/v1/projects/{project.slug}",
        headers={"Authorization": f"Bearer {project.key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    prefix: str = answer.json()["data"]["ping_url_prefix"]
    return prefix.rsplit("/", 1)[1]


@pytest.fixture
def exec_env(server: Server, project: Project) -> dict[str, str]:
    """The environment a crontab line would export for `exec`."""
    return clean_env(CRONKEEPER_URL=server.url, CRONKEEPER_PING_KEY=ping_key(server, project))


def runs_of(server: Server, project: Project, slug: str) -> list[dict[str, Any]]:
    """The job's runs, oldest first, each with its attempts."""
    headers = {"Authorization": f"Bearer {project.key}"}
    base = f"{server.url}/api/v1/projects/{project.slug}"
    listed = httpx.get(f"{base}/jobs/{slug}/runs?order=asc", headers=headers, timeout=10)
    assert listed.status_code == 200, listed.text
    return [
        httpx.get(f"{base}/runs/{run['id']}", headers=headers, timeout=10).json()["data"]
        for run in listed.json()["data"]["items"]
    ]


def slug() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


def test_a_succeeding_command_is_one_timed_run_with_its_output(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    script = (
        "import sys, time; print('dumped 12 tables'); time.sleep(0.3); print('x', file=sys.stderr)"
    )
    result = run_process("exec", name, "--create", "--", PY, "-c", script, env=exec_env)

    assert (result.code, result.out, result.err) == (0, "dumped 12 tables\n", "x\n")
    (run,) = runs_of(server, project, name)
    assert (run["status"], run["source"]) == ("succeeded", "heartbeat")
    assert run["duration_ms"] >= 300
    attempt = run["attempt_details"][0]
    assert attempt["exit_code"] == 0
    assert attempt["body_preview"] == "dumped 12 tables\nx\n"


def test_the_exit_code_passes_through_and_fails_the_run(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    script = "import sys; print('pg_dump: error', file=sys.stderr); sys.exit(3)"
    result = run_process("exec", name, "--create", "--", PY, "-c", script, env=exec_env)

    assert (result.code, result.err) == (3, "pg_dump: error\n")
    (run,) = runs_of(server, project, name)
    assert (run["status"], run["failure_reason"]) == ("failed", "exit_code")
    assert run["attempt_details"][0]["exit_code"] == 3
    assert run["attempt_details"][0]["body_preview"] == "pg_dump: error\n"


def test_stdin_is_passed_to_the_command(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    result = run_process(
        "exec",
        name,
        "--create",
        "--",
        PY,
        "-c",
        "import sys; print(sys.stdin.read().upper())",
        env=exec_env,
        stdin="rows to load\n",
    )

    assert (result.code, result.out) == (0, "ROWS TO LOAD\n\n")
    (run,) = runs_of(server, project, name)
    assert run["attempt_details"][0]["body_preview"] == "ROWS TO LOAD\n\n"


def test_only_the_last_100_kb_of_output_is_sent(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    script = "import sys; sys.stdout.write('a' * 150_000 + 'END')"
    result = run_process("exec", name, "--create", "--", PY, "-c", script, env=exec_env)

    assert result.code == 0 and len(result.out) == 150_003
    body = runs_of(server, project, name)[0]["attempt_details"][0]["body_preview"]
    assert len(body.encode()) == 100_000 and body.endswith("aEND")


def test_signals_are_forwarded_and_a_killed_command_exits_128_plus_n(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    script = "import time; print('ready', flush=True); time.sleep(30)"
    with subprocess.Popen(
        [CRONKEEPER, "exec", name, "--create", "--", PY, "-c", script],
        stdout=subprocess.PIPE,
        env=exec_env,
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGTERM)  # to exec, which forwards it

        assert process.wait(timeout=30) == 128 + signal.SIGTERM
    (run,) = runs_of(server, project, name)
    assert (run["status"], run["failure_reason"]) == ("failed", "exit_code")
    assert run["attempt_details"][0]["exit_code"] == 143
    assert "killed by signal 15 (SIGTERM)" in run["attempt_details"][0]["body_preview"]


def test_a_handled_signal_reaches_the_command_which_decides_its_exit_code(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        [CRONKEEPER, "exec", slug(), "--create", "--", PY, "-c", script],
        stdout=subprocess.PIPE,
        env=exec_env,
    ) as process:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGUSR1)

        assert process.wait(timeout=30) == 7


def test_an_unreachable_server_costs_one_warning_and_nothing_else(
    exec_env: dict[str, str],
) -> None:
    env = {**exec_env, "CRONKEEPER_URL": "http://127.0.0.1:9"}  # discard port: refused
    started = time.monotonic()
    result = run_process(
        "exec", "backup", "--", PY, "-c", "print('ran'); raise SystemExit(4)", env=env
    )

    assert (result.code, result.out) == (4, "ran\n")
    (line,) = result.err_lines
    assert line.startswith("cronkeeper exec: warning: ping ") and "http://127.0.0.1:9" in line
    assert exec_env["CRONKEEPER_PING_KEY"] not in line  # the key is a secret
    assert time.monotonic() - started < 20


def test_a_ping_url_names_the_job_without_a_key(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    assert run_process("exec", name, "--create", "--", "true", env=exec_env).code == 0
    headers = {"Authorization": f"Bearer {project.key}"}
    job = httpx.get(
        f"{server.url}/api/v1/projects/{project.slug}/jobs/{name}", headers=headers, timeout=10
    ).json()["data"]
    env = clean_env(
        CRONKEEPER_PING_URL=job["ping_url"].replace("http://127.0.0.1:8080", server.url)
    )

    assert run_process("exec", "ignored-label", "--", "false", env=env).code == 1
    assert [run["status"] for run in runs_of(server, project, name)] == ["succeeded", "failed"]


def test_a_command_that_cannot_start_exits_127_and_is_reported(
    server: Server, project: Project, exec_env: dict[str, str]
) -> None:
    name = slug()
    result = run_process("exec", name, "--create", "--", "/no/such/command", env=exec_env)

    assert result.code == 127
    assert result.err_lines == [
        "cronkeeper exec: error: cannot run /no/such/command: No such file or directory"
    ]
    (run,) = runs_of(server, project, name)
    assert run["attempt_details"][0]["exit_code"] == 127


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["exec", "backup"], "no command"),
        (["exec", "Not_A_Slug", "--", "true"], "invalid slug"),
        (["exec", "backup", "--url", "ftp://x", "--", "true"], "not an http(s) URL"),
        (["exec", "--nonsense", "backup", "--", "true"], "No such option"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    exec_env: dict[str, str], argv: list[str], words: str
) -> None:
    result = run_process(*argv, env=exec_env)

    assert result.code == 2
    assert words in assert_one_error_line(result)


def test_without_a_ping_key_or_url_exec_says_so_and_runs_nothing(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    result = run_process("exec", "backup", "--", "touch", str(marker), env=clean_env())

    assert result.code == 2
    assert "no ping key" in assert_one_error_line(result)
    assert not os.path.exists(marker)

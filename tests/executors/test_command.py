"""The command executor against real processes: output, env, exit codes, timeouts, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import PREVIEW_LIMIT, AttemptRequest
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.executors.command import CommandExecutor

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
RUN_ID = uuid.UUID("01940000-0000-7000-8000-000000000001")
BASE_ENV = {"PATH": os.environ["PATH"], "HOME": "/home/cron", "BASE_ONLY": "base"}
PR_SET_CHILD_SUBREAPER = 36

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups as on Linux")


def request(
    command: list[str] | str,
    *,
    shell: bool = False,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 5.0,
    scheduled_for: datetime | None = datetime(2026, 1, 1, 2, tzinfo=UTC),
) -> AttemptRequest:
    target: dict[str, Any] = {"command": command, "shell": shell, "cwd": cwd, "env": env or {}}
    return AttemptRequest(
        run_id=RUN_ID,
        project="default",
        job_slug="backup",
        job_name="Backup",
        kind="command",
        target=target,
        timeout=timeout,
        attempt=2,
        max_attempts=3,
        scheduled_for=scheduled_for,
        traceparent=TRACEPARENT,
    )


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def executor() -> CommandExecutor:
    return CommandExecutor(BASE_ENV, kill_grace=0.2)


def assert_gone(pid: int) -> None:
    """Reap `pid` if it is our adopted zombie, then check that no such process exists."""
    deadline = time.monotonic() + 2
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"process {pid} is still alive"
        time.sleep(0.02)


@pytest.fixture
def reaper() -> Iterator[Callable[[int], None]]:
    """Adopt orphaned grandchildren while the test runs, so that dead ones can be reaped.

    Where PID 1 does not reap orphans (as in some containers), a killed grandchild stays a
    zombie and `os.kill(pid, 0)` keeps succeeding; as its subreaper this process reaps it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, ctypes.get_errno()
    yield assert_gone
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


async def wait_for_pid_file(path: Path) -> int:
    for _ in range(250):
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was never written")


async def test_list_command_succeeds_with_its_output(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request(["echo", "hello", "world"]))
    assert outcome.status is AttemptStatus.SUCCESS
    assert outcome.failure_reason is None
    assert outcome.exit_code == 0
    assert outcome.error is None
    assert outcome.body_preview == "hello world\n"
    assert outcome.resolved == {
        "command": ["echo", "hello", "world"],
        "shell": False,
        "cwd": None,
        "env": {},
    }


async def test_stdout_and_stderr_are_merged_in_order(executor: CommandExecutor) -> None:
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True)"
    outcome = await executor.execute(request(python(code)))
    assert outcome.body_preview == "out\nerr\n"


async def test_non_zero_exit_is_an_exit_code_failure(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request(["sh", "-c", "echo failing; exit 3"]))
    assert outcome.status is AttemptStatus.EXIT_ERROR
    assert outcome.failure_reason is FailureReason.EXIT_CODE
    assert outcome.exit_code == 3
    assert outcome.error == "exited with code 3"
    assert outcome.body_preview == "failing\n"


async def test_a_command_killed_by_a_signal_reports_the_signal(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request(["sh", "-c", "kill -TERM $$"]))
    assert outcome.status is AttemptStatus.EXIT_ERROR
    assert outcome.failure_reason is FailureReason.SIGNAL
    assert outcome.exit_code == 128 + 15
    assert outcome.error == "killed by SIGTERM"


async def test_a_string_without_shell_is_split_not_interpreted(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request("echo 'a  b'; echo $HOME"))
    assert outcome.body_preview == "a  b; echo $HOME\n"
    assert outcome.resolved is not None
    assert outcome.resolved["command"] == ["echo", "a  b;", "echo", "$HOME"]


async def test_shell_true_runs_the_string_through_sh(executor: CommandExecutor) -> None:
    command = "echo a; echo $GREETING | tr a-z A-Z"
    outcome = await executor.execute(request(command, shell=True, env={"GREETING": "hi"}))
    assert outcome.body_preview == "a\nHI\n"
    assert outcome.resolved == {
        "command": command,
        "shell": True,
        "cwd": None,
        "env": {"GREETING": "hi"},
    }


async def test_shell_true_with_a_list_quotes_each_argument(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request(["echo", "a  b", "$HOME"], shell=True))
    assert outcome.body_preview == "a  b $HOME\n"


async def test_env_trace_and_run_identity_reach_the_child(executor: CommandExecutor) -> None:
    names = [
        "BASE_ONLY",
        "GREETING",
        "HOME",
        "TRACEPARENT",
        "CRONKEEPER_RUN_ID",
        "CRONKEEPER_JOB",
        "CRONKEEPER_ATTEMPT",
        "CRONKEEPER_SCHEDULED_FOR",
        "PYTEST_CURRENT_TEST",
    ]
    code = f"import json, os; print(json.dumps({{n: os.environ.get(n) for n in {names!r}}}))"
    env = {"GREETING": "hi", "HOME": "/srv/backup"}
    outcome = await executor.execute(request(python(code), env=env))
    assert json.loads(outcome.body_preview or "") == {
        "BASE_ONLY": "base",
        "GREETING": "hi",
        "HOME": "/srv/backup",  # the target's env overrides the base
        "TRACEPARENT": TRACEPARENT,
        "CRONKEEPER_RUN_ID": str(RUN_ID),
        "CRONKEEPER_JOB": "backup",
        "CRONKEEPER_ATTEMPT": "2",
        "CRONKEEPER_SCHEDULED_FOR": "2026-01-01T02:00:00Z",
        "PYTEST_CURRENT_TEST": None,  # only the base env is inherited, not ours
    }


async def test_a_run_without_a_slot_gets_an_empty_scheduled_for(
    executor: CommandExecutor,
) -> None:
    code = "import os; print(repr(os.environ['CRONKEEPER_SCHEDULED_FOR']))"
    outcome = await executor.execute(request(python(code), scheduled_for=None))
    assert outcome.body_preview == "''\n"


async def test_cwd_is_honoured(executor: CommandExecutor, tmp_path: Path) -> None:
    code = "import os; print(os.getcwd())"
    outcome = await executor.execute(request(python(code), cwd=str(tmp_path)))
    assert outcome.body_preview == f"{tmp_path.resolve()}\n"


async def test_a_missing_command_exits_127(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request(["cronkeeper-no-such-command", "--flag"]))
    assert outcome.status is AttemptStatus.EXIT_ERROR
    assert outcome.failure_reason is FailureReason.EXIT_CODE
    assert outcome.exit_code == 127
    assert outcome.error == "command not found: 'cronkeeper-no-such-command'"
    assert outcome.body_preview is None


async def test_a_missing_cwd_exits_126(executor: CommandExecutor, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    outcome = await executor.execute(request(["true"], cwd=missing))
    assert outcome.exit_code == 126
    assert outcome.failure_reason is FailureReason.EXIT_CODE
    assert outcome.error == f"cannot use working directory {missing!r}: No such file or directory"


async def test_a_file_as_cwd_exits_126(executor: CommandExecutor, tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    outcome = await executor.execute(request(["true"], cwd=str(not_a_directory)))
    assert outcome.exit_code == 126
    assert "cannot use working directory" in (outcome.error or "")


async def test_a_file_without_execute_permission_exits_126(
    executor: CommandExecutor, tmp_path: Path
) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(0o644)
    outcome = await executor.execute(request([str(script)]))
    assert outcome.status is AttemptStatus.EXIT_ERROR
    assert outcome.exit_code == 126
    assert outcome.error == f"cannot execute {str(script)!r}: Permission denied"


async def test_an_unsplittable_string_is_an_invalid_command(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request('echo "unclosed'))
    assert outcome.status is AttemptStatus.EXIT_ERROR
    assert outcome.exit_code == 2
    assert outcome.error == "invalid command: No closing quotation"
    assert outcome.resolved is not None
    assert outcome.resolved["command"] == 'echo "unclosed'


async def test_a_megabyte_of_output_keeps_exactly_the_last_64_kib(
    executor: CommandExecutor,
) -> None:
    code = (
        "import sys\n"
        "for i in range(16384): sys.stdout.write(f'{i:063d}\\n')\n"
        "sys.stdout.write('the last line\\n')\n"
        "sys.exit(1)\n"
    )
    outcome = await executor.execute(request(python(code)))
    expected = "".join(f"{i:063d}\n" for i in range(16384)) + "the last line\n"
    assert outcome.status is AttemptStatus.EXIT_ERROR
    assert outcome.exit_code == 1
    assert outcome.body_preview is not None
    assert len(outcome.body_preview.encode()) == PREVIEW_LIMIT
    assert outcome.body_preview == expected[-PREVIEW_LIMIT:]
    assert outcome.body_preview.endswith("\nthe last line\n")


async def test_output_larger_than_memory_budget_streams_through(
    executor: CommandExecutor,
) -> None:
    outcome = await executor.execute(
        request("head -c 50000000 /dev/zero | tr '\\0' z; echo; echo end", shell=True)
    )
    assert outcome.succeeded
    assert outcome.body_preview == "z" * (PREVIEW_LIMIT - 5) + "\nend\n"


async def test_latency_covers_the_run(executor: CommandExecutor) -> None:
    outcome = await executor.execute(request(["sleep", "0.2"]))
    assert 200 <= outcome.latency_ms < 2000


async def test_timeout_stops_the_whole_process_group(
    executor: CommandExecutor, reaper: Callable[[int], None]
) -> None:
    script = "sleep 100 & echo $!; sleep 100 & echo $!; echo started; wait"
    started = time.monotonic()
    outcome = await executor.execute(request(["sh", "-c", script], timeout=0.5))
    assert time.monotonic() - started < 3
    assert outcome.status is AttemptStatus.TIMEOUT
    assert outcome.failure_reason is FailureReason.TIMEOUT
    assert outcome.exit_code is None
    assert outcome.error == "timed out after 0.5 s; the process group was stopped"
    assert 500 <= outcome.latency_ms < 1500
    *pids, last = (outcome.body_preview or "").split()
    assert last == "started"
    assert len(pids) == 2
    for pid in pids:
        reaper(int(pid))


async def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(
    executor: CommandExecutor, reaper: Callable[[int], None]
) -> None:
    script = "trap '' TERM; sleep 100 & echo $!; wait"
    started = time.monotonic()
    outcome = await executor.execute(request(script, shell=True, timeout=0.3))
    assert 0.5 <= time.monotonic() - started < 3  # timeout + grace
    assert outcome.status is AttemptStatus.TIMEOUT
    reaper(int(outcome.body_preview or ""))


async def test_background_processes_left_behind_are_stopped_when_the_command_exits(
    executor: CommandExecutor, reaper: Callable[[int], None]
) -> None:
    started = time.monotonic()
    outcome = await executor.execute(request("sleep 100 & echo $!", shell=True, timeout=30))
    assert time.monotonic() - started < 3
    assert outcome.succeeded
    reaper(int(outcome.body_preview or ""))


async def test_cancellation_stops_the_process_group_and_propagates(
    executor: CommandExecutor, reaper: Callable[[int], None], tmp_path: Path
) -> None:
    main_file, child_file = tmp_path / "main.pid", tmp_path / "child.pid"
    script = f"echo $$ > {main_file}; sleep 100 & echo $! > {child_file}; wait"
    task = asyncio.create_task(executor.execute(request(script, shell=True, timeout=30)))
    main_pid = await wait_for_pid_file(main_file)
    child_pid = await wait_for_pid_file(child_file)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    reaper(main_pid)
    reaper(child_pid)

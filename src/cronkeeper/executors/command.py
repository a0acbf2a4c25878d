"""Run a `command` job: one child process in its own process group, the tail of its output kept.

Contract: `CommandExecutor.execute` reports everything the command does as an Outcome (not
found, bad cwd, non-zero exit, signal, timeout); only cancellation propagates, and only
after the process group has been stopped (SIGTERM, `kill_grace` seconds, SIGKILL) and the
child reaped.

The attempt ends when the main process exits (or the timeout expires). Whatever it left
running in its process group is then stopped the same way, as systemd does with a
service's control group: nothing outlives its run, and the output pipe closes so reading
cannot hang on a forgotten background process.

Orphaned grandchildren are reaped by PID 1. When Cronkeeper itself is PID 1 (a container
started without an init), they stay zombies: run such containers with `--init` (tini).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import PREVIEW_LIMIT, AttemptRequest, Outcome, preview_tail
from cronkeeper.domain.states import AttemptStatus

#: How often to look whether a signalled process group has gone.
_POLL_SECONDS = 0.02
#: How long to wait for the end of output once the process group is gone; only a process
#: that left the group (setsid) and still holds the pipe makes this wait expire.
_DRAIN_SECONDS = 1.0

#: Exit codes a shell reports when it cannot run a command.
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_INVALID_COMMAND = 2


class CommandExecutor:
    """Runs the `command` target of an attempt; see the module docstring for the contract."""

    def __init__(self, base_env: Mapping[str, str], *, kill_grace: float = 5.0) -> None:
        self._base_env = dict(base_env)
        self._kill_grace = kill_grace

    async def execute(self, request: AttemptRequest) -> Outcome:
        """Run the command of `request` to its end, timeout or cancellation; report how it ended."""
        command = _Command.from_target(request.target)
        started = time.monotonic()
        try:
            argv = command_argv(command.command, shell=command.shell)
            process, output = await _start(argv, command.cwd, self._environment(request, command))
        except (OSError, ValueError) as error:
            return _start_failure(error, command, started)
        try:
            returncode = await _wait_within(process, request.timeout)
            latency_ms = _elapsed_ms(started)
        finally:
            try:
                await self._stop_group(process)
            finally:
                tail = await output.drain(_DRAIN_SECONDS)
        base = Outcome(
            status=AttemptStatus.SUCCESS,
            latency_ms=latency_ms,
            body_preview=preview_tail(tail),
            resolved=command.resolved(argv),
        )
        return _classify(base, returncode, request.timeout)

    def _environment(self, request: AttemptRequest, command: _Command) -> dict[str, str]:
        """The child's environment: base, then the target's env, then trace and run identity."""
        return {
            **self._base_env,
            **command.env,
            "TRACEPARENT": request.traceparent,
            "CRONKEEPER_RUN_ID": str(request.run_id),
            "CRONKEEPER_JOB": request.job_slug,
            "CRONKEEPER_ATTEMPT": str(request.attempt),
            "CRONKEEPER_SCHEDULED_FOR": iso_utc(request.scheduled_for),
        }

    async def _stop_group(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM the process group, allow `kill_grace` seconds, SIGKILL what is left; reap."""
        group = process.pid  # start_new_session: the child leads its own group
        if _signal_group(group, signal.SIGTERM):
            _signal_group(group, signal.SIGCONT)  # a stopped process must run to see SIGTERM
            gone = False
            try:
                gone = await _wait_group_gone(group, self._kill_grace)
            finally:  # also when cancelled again while waiting
                if not gone:
                    _signal_group(group, signal.SIGKILL)
        await process.wait()


@dataclass(frozen=True)
class _Command:
    """A `command` target as the executor reads it."""

    command: list[str] | str
    shell: bool
    cwd: str | None
    env: dict[str, str]

    @classmethod
    def from_target(cls, target: Mapping[str, Any]) -> _Command:
        """Read a validated CommandTarget dict (see service/schemas.py)."""
        command = target["command"]
        return cls(
            command=list(command) if isinstance(command, list) else str(command),
            shell=bool(target.get("shell", False)),
            cwd=target.get("cwd"),
            env={str(name): str(value) for name, value in (target.get("env") or {}).items()},
        )

    def resolved(self, argv: list[str] | None) -> dict[str, Any]:
        """What was run: the argv (no shell) or the shell string; env values still in clear."""
        shown: list[str] | str = self.command
        if not self.shell and argv is not None:
            shown = argv
        return {"command": shown, "shell": self.shell, "cwd": self.cwd, "env": dict(self.env)}


def command_argv(command: list[str] | str, *, shell: bool) -> list[str]:
    """The argv to execute: a list as is, a string split like a shell (no shell), or `sh -c`.

    With shell=True a list is joined with shell quoting into one command line. Raises
    ValueError for a string that cannot be split or an empty command.
    """
    if shell:
        line = command if isinstance(command, str) else shlex.join(command)
        return ["/bin/sh", "-c", line]
    argv = list(command) if isinstance(command, list) else shlex.split(command)
    if not argv:
        raise ValueError("the command is empty")
    return argv


def iso_utc(moment: datetime | None) -> str:
    """`2026-01-01T02:00:00Z` for an instant (naive means UTC); empty for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _OutputTail(asyncio.Protocol):
    """Reads a pipe and keeps only its last `limit` bytes, whatever the volume."""

    def __init__(self, limit: int = PREVIEW_LIMIT) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._transport: asyncio.BaseTransport | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > 2 * self._limit:  # trim in batches: amortised O(1) per byte
            del self._buffer[: -self._limit]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    async def drain(self, seconds: float) -> bytes:
        """Wait up to `seconds` for the end of output, close the pipe, return the tail."""
        try:
            await asyncio.wait([self._closed], timeout=seconds)
        finally:
            self.close()
        return bytes(self._buffer[-self._limit :])

    def close(self) -> None:
        """Stop reading and close our end of the pipe."""
        if self._transport is not None:
            self._transport.close()


async def _start(
    argv: list[str], cwd: str | None, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, _OutputTail]:
    """Spawn `argv` in a new session with stdout and stderr on one pipe that we read."""
    read_fd, write_fd = os.pipe()
    output = _OutputTail()
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_read_pipe(lambda: output, os.fdopen(read_fd, "rb", buffering=0))
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        output.close()
        raise
    finally:
        os.close(write_fd)  # the child holds its copy; EOF comes when every writer is gone
    return process, output


async def _wait_within(process: asyncio.subprocess.Process, seconds: float) -> int | None:
    """The exit status of `process`, or None when `seconds` pass first."""
    try:
        async with asyncio.timeout(seconds):
            return await process.wait()
    except TimeoutError:
        return None


async def _wait_group_gone(group: int, seconds: float) -> bool:
    """Poll until no process of `group` is left (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while _signal_group(group, 0):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)
    return True


def _signal_group(group: int, signum: int) -> bool:
    """Send `signum` to every process of `group`; False once the group no longer exists.

    A zombie counts as a member until it is reaped, so the grace may run out in full where
    orphans are not reaped (see the module docstring).
    """
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # members left that we may not signal (setuid): still there
        return True
    return True


def _classify(base: Outcome, returncode: int | None, timeout: float) -> Outcome:
    """Map how the process ended onto an attempt status and failure reason."""
    if returncode is None:
        return replace(
            base,
            status=AttemptStatus.TIMEOUT,
            failure_reason=FailureReason.TIMEOUT,
            error=f"timed out after {timeout:g} s; the process group was stopped",
        )
    if returncode == 0:
        return replace(base, exit_code=0)
    if returncode < 0:
        return replace(
            base,
            status=AttemptStatus.EXIT_ERROR,
            failure_reason=FailureReason.SIGNAL,
            exit_code=128 - returncode,
            error=f"killed by {signal_name(-returncode)}",
        )
    return replace(
        base,
        status=AttemptStatus.EXIT_ERROR,
        failure_reason=FailureReason.EXIT_CODE,
        exit_code=returncode,
        error=f"exited with code {returncode}",
    )


def signal_name(signum: int) -> str:
    """`SIGKILL` for 9; `signal 40` for numbers without a name (real-time signals)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _start_failure(error: OSError | ValueError, command: _Command, started: float) -> Outcome:
    """The Outcome of a command that could not be started, with a shell-like exit code."""
    exit_code, message = _start_failure_reason(error, command)
    return Outcome(
        status=AttemptStatus.EXIT_ERROR,
        failure_reason=FailureReason.EXIT_CODE,
        exit_code=exit_code,
        latency_ms=_elapsed_ms(started),
        error_class=f"{type(error).__module__}.{type(error).__qualname__}",
        error=message,
        resolved=command.resolved(None),
    )


def _start_failure_reason(error: OSError | ValueError, command: _Command) -> tuple[int, str]:
    """127 when the program is missing, 126 when it cannot run here, 2 for a malformed command."""
    if isinstance(error, ValueError):
        return EXIT_INVALID_COMMAND, f"invalid command: {error}"
    if command.cwd is not None and error.filename == command.cwd:
        return (
            EXIT_NOT_EXECUTABLE,
            f"cannot use working directory {command.cwd!r}: {error.strerror}",
        )
    program = error.filename or _program(command)
    if isinstance(error, FileNotFoundError):
        return EXIT_NOT_FOUND, f"command not found: {program!r}"
    return EXIT_NOT_EXECUTABLE, f"cannot execute {program!r}: {error.strerror or error}"


def _program(command: _Command) -> str:
    """The program a command names, for error messages."""
    if isinstance(command.command, list):
        return command.command[0]
    return "/bin/sh" if command.shell else command.command.split(maxsplit=1)[0]


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

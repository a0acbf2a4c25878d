"""`cronkeeper exec <slug> -- CMD…`: run a command as one run of a heartbeat job.

Pings `/start?rid=…`, runs CMD (no shell; stdin passed through; stdout and stderr shown
as they come), then pings `/<exit status>?rid=…` with the tail of the output as the
body. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the
command; its exit status is ours (killed by signal N: 128+N, reported as a failure).
Pings never stop or fail the command (cronkeeper.pinger): an unreachable server costs
one warning line on stderr. Usage errors: one line, exit 2; a command that cannot be
started: exit 127 (not found) or 126 (not executable), as a shell would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import IO, Annotated

import typer

from cronkeeper.errors import InvalidInput
from cronkeeper.pinger import OutputTail, PingConfigError, PingTarget, RunPings

FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
CHUNK = 65536


def exec_command(
    slug: Annotated[str, typer.Argument(help="The heartbeat job's slug")],
    command: Annotated[
        list[str] | None, typer.Argument(help="The command and its arguments, after --")
    ] = None,
    ping_key: Annotated[
        str | None, typer.Option("--ping-key", help="Project ping key [CRONKEEPER_PING_KEY]")
    ] = None,
    ping_url: Annotated[
        str | None,
        typer.Option("--ping-url", help="The job's ping URL …/ping/<uuid> [CRONKEEPER_PING_URL]"),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Server URL [CRONKEEPER_URL, http://127.0.0.1:8080]")
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the heartbeat job on its first ping")
    ] = False,
) -> int:
    """Run a command and record it as a run: start/finish pings, exit code, output tail."""
    if not command:
        raise InvalidInput([], "no command: cronkeeper exec <slug> -- COMMAND [ARGS…]")
    try:
        target = PingTarget.resolve(
            slug, ping_key=ping_key, url=url, ping_url=ping_url, create=create
        )
    except PingConfigError as error:
        raise InvalidInput([], str(error)) from None
    return run_monitored(target, command)


def run_monitored(target: PingTarget, command: list[str]) -> int:
    """Ping start, run `command`, ping its end; the command's exit status."""
    pings = RunPings(target, _warn, agent="cronkeeper-exec")
    pings.start()
    tail = OutputTail()
    try:
        child = subprocess.Popen(  # noqa: S603 - the user's own command, no shell
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
    except OSError as error:
        code = 127 if isinstance(error, FileNotFoundError) else 126
        said = f"cannot run {command[0]}: {error.strerror or error}"
        _error_line(said)
        pings.finish(code, f"cronkeeper exec: {said}\n".encode())
        return code
    status = _wait_forwarding_signals(child, tail)
    if status < 0:
        number = -status
        note = f"\n[cronkeeper exec: killed by signal {number} ({_signal_name(number)})]\n"
        tail.write(note.encode())
        status = 128 + number
    pings.finish(status, tail.value())
    return status


def _wait_forwarding_signals(child: subprocess.Popen[bytes], tail: OutputTail) -> int:
    """Copy the child's output while it runs, forwarding our signals to it; its returncode."""
    assert child.stdout is not None and child.stderr is not None

    def forward(number: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(number)

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    copiers = [
        threading.Thread(target=_copy, args=(child.stdout, 1, tail), daemon=True),
        threading.Thread(target=_copy, args=(child.stderr, 2, tail), daemon=True),
    ]
    try:
        for copier in copiers:
            copier.start()
        for copier in copiers:
            copier.join()  # both pipes reached end of file
        return child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _copy(source: IO[bytes], fd: int, tail: OutputTail) -> None:
    """Pass a pipe through to our `fd` chunk by chunk (no buffering), keeping its tail."""
    reader = source.fileno()
    while chunk := os.read(reader, CHUNK):
        tail.write(chunk)
        with contextlib.suppress(OSError):  # our stdout is gone: keep the tail, drain the child
            _write_all(fd, chunk)
    source.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _warn(message: str) -> None:
    sys.stderr.write(f"cronkeeper exec: warning: {' '.join(message.split())}\n")
    sys.stderr.flush()


def _error_line(message: str) -> None:
    sys.stderr.write(f"cronkeeper exec: error: {' '.join(message.split())}\n")
    sys.stderr.flush()

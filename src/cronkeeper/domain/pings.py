"""Heartbeat pings (DESIGN §3 Ping API): what a ping says, and what it does to the ledger.

A heartbeat job's runs are made of pings: `/start` opens a run, a success, `/fail` or
exit-status ping closes it, `/log` adds a line. Every concurrent run is timed by its
`rid`; without one, only the latest start is timed (as Healthchecks does).

Decisions, all pure:
- a finishing ping closes the newest running run with the same rid (None matches None);
  with none open, it records a run that starts and ends at the ping (no duration);
- a start supersedes the running runs with the same rid: they are cancelled, not failed
  (a repeated start is not the job failing), and the new run is timed from this start;
- `/fail` fails with reason `unknown` (the job said it failed, not how); a non-zero exit
  status fails with `exit_code`; exit status 0 is a success that records exit code 0;
- a success sooner than the job's `min_runtime` after its start fails the run with
  `too_fast` (the attempt itself succeeded), as settlement does for our own runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol, TypeVar

from cronkeeper.domain.durations import format_duration
from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.states import AttemptStatus, EventType, RunStatus
from cronkeeper.errors import FieldError, InvalidInput

#: Bytes of a ping's body kept (the tail); announced in the `Ping-Body-Limit` header.
PING_BODY_LIMIT = 100_000
_RID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class PingAction(StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"
    LOG = "log"


@dataclass(frozen=True)
class Ping:
    """One received ping, validated."""

    action: PingAction
    at: datetime
    exit_status: int | None = None  # 0-255 when the URL ended in an exit status
    rid: str | None = None  # canonical lowercase UUID text
    body: str = ""  # the tail of the request body, storable text
    client: dict[str, str] = field(default_factory=dict)  # method, remote_addr, user_agent

    @property
    def finishes(self) -> bool:
        return self.action in (PingAction.SUCCESS, PingAction.FAIL)


def parse_exit_status(text: str) -> int:
    """An exit status from the URL (digits); InvalidInput unless it is 0-255."""
    if not text.isdigit() or len(text) > 3 or int(text) > 255:
        raise InvalidInput(FieldError("exit_status", "must be an integer from 0 to 255"))
    return int(text)


def action_for_exit_status(exit_status: int) -> PingAction:
    """Exit status 0 reports success, anything else failure."""
    return PingAction.SUCCESS if exit_status == 0 else PingAction.FAIL


def parse_rid(text: str) -> str:
    """The `rid` query parameter as canonical UUID text; InvalidInput if it is not a UUID."""
    if not _RID.match(text):
        raise InvalidInput(FieldError("rid", "must be a UUID"))
    return str(uuid.UUID(text))


def body_text(tail: bytes) -> str:
    """The kept body as text the ledger can store: the last PING_BODY_LIMIT bytes, decoded
    leniently, NUL characters replaced (PostgreSQL refuses them in text)."""
    return tail[-PING_BODY_LIMIT:].decode("utf-8", "replace").replace("\x00", "\ufffd")


@dataclass(frozen=True)
class PingedJob:
    """The few facts about a job that recording a ping needs."""

    id: uuid.UUID
    project_id: uuid.UUID
    project_slug: str
    slug: str
    kind: str
    status: str
    queue: str
    min_runtime: float | None = None  # seconds; a faster finish is `too_fast`
    max_runtime: float | None = None  # seconds; the monitor closes a run open longer


class OpenRun(NamedTuple):
    """A heartbeat run that a start ping opened and no finish has closed yet (a NamedTuple,
    cheaper to make than a frozen dataclass: a batch of pings reads one per finish)."""

    id: uuid.UUID
    rid: str | None
    started_at: datetime
    last_event: int = 0  # the number of its last event so far


class Started(Protocol):
    """What the decisions below read of an open run (an `OpenRun`, or a caller's own
    record of one)."""

    @property
    def rid(self) -> str | None: ...

    @property
    def started_at(self) -> datetime: ...


Run = TypeVar("Run", bound=Started)


def matching_run(open_runs: Sequence[Run], rid: str | None) -> Run | None:
    """The newest open run with this rid (a ping without rid matches runs without one;
    of runs started at the same instant, the first)."""
    found = None
    for run in open_runs:
        if run.rid == rid and (found is None or run.started_at > found.started_at):
            found = run
    return found


def superseded_runs(open_runs: Sequence[Run], rid: str | None) -> list[Run]:
    """The open runs a new start with this rid replaces (same rid, or both without)."""
    return [run for run in open_runs if run.rid == rid]


class Closing(NamedTuple):
    """What a finishing ping writes on its run and the run's single attempt (a NamedTuple,
    cheaper to make than a frozen dataclass: one is made per finishing ping)."""

    status: RunStatus
    attempt_status: AttemptStatus
    failure_reason: FailureReason | None
    exit_code: int | None
    duration_ms: int | None
    error: str | None
    events: tuple[tuple[EventType, str], ...]

    @property
    def attempt_failure_reason(self) -> FailureReason | None:
        """The attempt's own reason: none when it succeeded (a `too_fast` run)."""
        return None if self.attempt_status is AttemptStatus.SUCCESS else self.failure_reason


def close_run(ping: Ping, started_at: datetime | None, min_runtime: float | None = None) -> Closing:
    """Decide the final state of the run `ping` finishes (`started_at` None: no start ping
    was received, so the run has no duration and cannot be too fast)."""
    duration = elapsed = None
    if started_at is not None:
        elapsed = (ping.at - started_at).total_seconds()
        duration = max(0, int(elapsed * 1000))
    said = _described(ping)
    if ping.action is PingAction.SUCCESS:
        if min_runtime is not None and elapsed is not None and elapsed < min_runtime:
            return _too_fast(ping, said, duration, elapsed, min_runtime)
        events = ((EventType.ATTEMPT_SUCCEEDED, said), (EventType.RUN_SUCCEEDED, "succeeded"))
        return Closing(
            RunStatus.SUCCEEDED,
            AttemptStatus.SUCCESS,
            None,
            ping.exit_status,
            duration,
            None,
            events,
        )
    if ping.exit_status is None:
        reason, error = FailureReason.UNKNOWN, "the job reported failure (fail ping)"
    else:
        reason, error = FailureReason.EXIT_CODE, f"the job exited with status {ping.exit_status}"
    events = ((EventType.ATTEMPT_FAILED, said), (EventType.RUN_FAILED, f"failed: {error}"))
    return Closing(
        RunStatus.FAILED,
        AttemptStatus.EXIT_ERROR,
        reason,
        ping.exit_status,
        duration,
        error,
        events,
    )


def _too_fast(
    ping: Ping, said: str, duration: int | None, elapsed: float, min_runtime: float
) -> Closing:
    error = (
        f"finished in {format_duration(max(0.0, elapsed))}, under its min_runtime of "
        f"{format_duration(min_runtime)}"
    )
    events = ((EventType.ATTEMPT_SUCCEEDED, said), (EventType.RUN_FAILED, f"failed: {error}"))
    return Closing(
        RunStatus.FAILED,
        AttemptStatus.SUCCESS,
        FailureReason.TOO_FAST,
        ping.exit_status,
        duration,
        error,
        events,
    )


def _described(ping: Ping) -> str:
    if ping.exit_status is not None:
        return f"exit status {ping.exit_status} ping received"
    return f"{ping.action} ping received"  # a StrEnum formats as its value

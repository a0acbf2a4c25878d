"""What a finished attempt does to its run: succeed, retry later, or fail for good.

`settle` is the worker's whole decision, pure: the worker records what it returns in
one transaction (attempt row, events, run state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.domain.durations import format_duration
from cronkeeper.domain.failures import FailureReason, explain
from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.models import Run
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.retry import backoff_delay, should_retry
from cronkeeper.domain.states import EventType, RunStatus

EventEntry = tuple[EventType, str, dict[str, Any]]


@dataclass(frozen=True)
class Settlement:
    status: RunStatus  # SUCCEEDED, FAILED, or QUEUED for a retry
    not_before: datetime | None = None
    failure_reason: str | None = None
    error: str | None = None
    events: list[EventEntry] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.status is not RunStatus.QUEUED


def settle(
    run: Run, spec: JobSpec, outcome: Outcome, now: datetime, random: Callable[[], float]
) -> Settlement:
    """Decide the run's next state after attempt number `run.attempts` ended with `outcome`."""
    attempt = run.attempts
    summary = _attempt_event(outcome, attempt)
    elapsed = (now - run.started_at).total_seconds() if run.started_at else 0.0
    if outcome.succeeded:
        if spec.min_runtime is not None and elapsed < spec.min_runtime:
            error = (
                f"finished in {format_duration(elapsed)}, under its min_runtime of "
                f"{format_duration(spec.min_runtime)}"
            )
            return _failed(summary, FailureReason.TOO_FAST.value, error)
        done: EventEntry = (EventType.RUN_SUCCEEDED, f"succeeded on attempt {attempt}", {})
        return Settlement(RunStatus.SUCCEEDED, events=[summary, done])
    reason = outcome.failure_reason.value if outcome.failure_reason else "unknown"
    out_of_time = _out_of_time(spec, elapsed)
    # The run's max_attempts was fixed when it was queued; a later policy edit keeps it.
    policy = replace(spec.retry, max_attempts=run.max_attempts)
    if out_of_time is None and should_retry(outcome, attempt, policy):
        delay = backoff_delay(attempt, policy, random, outcome.retry_after)
        out_of_time = _out_of_time(spec, elapsed + delay)
        if out_of_time is None:
            retry = (
                EventType.RETRY_SCHEDULED,
                f"attempt {attempt + 1} of {policy.max_attempts} in {delay:.2f}s",
                {"delay_s": round(delay, 3), "next_attempt": attempt + 1},
            )
            return Settlement(
                RunStatus.QUEUED,
                now + timedelta(seconds=delay),
                reason,
                outcome.error,
                [summary, retry],
            )
    if out_of_time is not None:  # the run's time is up: no (further) retry
        return _failed(summary, FailureReason.MAX_RUNTIME.value, f"{out_of_time}; {outcome.error}")
    return _failed(summary, reason, outcome.error)


def _failed(summary: EventEntry, reason: str, error: str | None) -> Settlement:
    failed = (EventType.RUN_FAILED, f"failed: {reason} — {explain(reason)}", {"reason": reason})
    return Settlement(RunStatus.FAILED, None, reason, error, [summary, failed])


def _out_of_time(spec: JobSpec, elapsed: float) -> str | None:
    """Why the run may not go on (its `max_runtime` is spent by `elapsed`), or None."""
    if spec.max_runtime is None or elapsed < spec.max_runtime:
        return None
    return f"max_runtime of {format_duration(spec.max_runtime)} reached"


def _attempt_event(outcome: Outcome, attempt: int) -> EventEntry:
    data: dict[str, Any] = {
        "attempt": attempt,
        "status": outcome.status.value,
        "latency_ms": outcome.latency_ms,
    }
    if outcome.status_code is not None:
        data["status_code"] = outcome.status_code
    if outcome.exit_code is not None:
        data["exit_code"] = outcome.exit_code
    if outcome.succeeded:
        return EventType.ATTEMPT_SUCCEEDED, f"attempt {attempt} succeeded", data
    data["failure_reason"] = outcome.failure_reason.value if outcome.failure_reason else None
    message = f"attempt {attempt} failed: {outcome.error or data['failure_reason']}"
    return EventType.ATTEMPT_FAILED, message[:500], data

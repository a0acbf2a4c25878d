"""`settle`: what a finished attempt does to its run — succeed, retry later (queued with
`not_before` and a `retry_scheduled` event), or fail for good with a `run_failed` event
that names the reason and explains it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronkeeper.domain.failures import FailureReason, explain
from cronkeeper.domain.jobs import JobSpec, RetryPolicy
from cronkeeper.domain.models import Run
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.settlement import settle
from cronkeeper.domain.states import AttemptStatus, EventType, JobKind, RunStatus

NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
SPEC = JobSpec(
    slug="backup",
    kind=JobKind.COMMAND,
    target={"command": "true"},
    retry=RetryPolicy(max_attempts=3, backoff=1.0, max_backoff=30.0),
)
SUCCESS = Outcome(status=AttemptStatus.SUCCESS, exit_code=0, latency_ms=42)
EXIT_1 = Outcome(
    status=AttemptStatus.EXIT_ERROR,
    failure_reason=FailureReason.EXIT_CODE,
    exit_code=1,
    latency_ms=7,
    error="exited with status 1",
)


def run_on_attempt(attempt: int, **fields: Any) -> Run:
    """A running run whose attempt number `attempt` just ended."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "project_id": uuid.uuid4(),
        "job_id": uuid.uuid4(),
        "source": "schedule",
        "status": "running",
        "scheduled_for": NOW - timedelta(seconds=5),
        "queue": "default",
        "not_before": None,
        "queued_at": NOW - timedelta(seconds=5),
        "started_at": NOW - timedelta(seconds=4),
        "finished_at": None,
        "duration_ms": None,
        "drift_ms": None,
        "attempts": attempt,
        "max_attempts": 3,
        "failure_reason": None,
        "error": None,
        "payload": None,
        "trace_id": "0" * 32,
        "replay_of": None,
        "node": "node-a",
        "lease_expires_at": NOW + timedelta(seconds=30),
        "created_at": NOW - timedelta(seconds=5),
    }
    values.update(fields)
    return Run(**values)


def types(events: list[tuple[EventType, str, dict[str, Any]]]) -> list[EventType]:
    return [kind for kind, _, _ in events]


def never() -> float:
    raise AssertionError("a decision without a retry must not draw a random number")


# --- success -------------------------------------------------------------------------------------


def test_a_successful_attempt_succeeds_the_run() -> None:
    decision = settle(run_on_attempt(1), SPEC, SUCCESS, NOW, never)

    assert decision.status is RunStatus.SUCCEEDED
    assert decision.final
    assert decision.not_before is None
    assert decision.failure_reason is None
    assert decision.error is None
    assert types(decision.events) == [EventType.ATTEMPT_SUCCEEDED, EventType.RUN_SUCCEEDED]


def test_the_success_events_carry_the_attempt_facts() -> None:
    decision = settle(run_on_attempt(2), SPEC, SUCCESS, NOW, never)

    (_, message, data), (_, done, _) = decision.events
    assert message == "attempt 2 succeeded"
    assert data == {"attempt": 2, "status": "success", "latency_ms": 42, "exit_code": 0}
    assert done == "succeeded on attempt 2"


def test_success_on_the_last_attempt_still_succeeds() -> None:
    assert settle(run_on_attempt(3), SPEC, SUCCESS, NOW, never).status is RunStatus.SUCCEEDED


# --- retry ---------------------------------------------------------------------------------------


def test_a_retryable_failure_with_attempts_left_requeues_the_run_after_the_backoff() -> None:
    decision = settle(run_on_attempt(1), SPEC, EXIT_1, NOW, lambda: 0.5)

    assert decision.status is RunStatus.QUEUED
    assert not decision.final
    assert decision.not_before == NOW + timedelta(seconds=0.5)
    assert decision.failure_reason == "exit_code"
    assert decision.error == "exited with status 1"
    assert types(decision.events) == [EventType.ATTEMPT_FAILED, EventType.RETRY_SCHEDULED]


def test_the_retry_event_names_the_next_attempt_and_the_delay() -> None:
    decision = settle(run_on_attempt(2), SPEC, EXIT_1, NOW, lambda: 0.5)

    _, message, data = decision.events[1]
    assert decision.not_before == NOW + timedelta(seconds=1.0)  # 0.5 · (1s · 2^1)
    assert message == "attempt 3 of 3 in 1.00s"
    assert data == {"delay_s": 1.0, "next_attempt": 3}


def test_the_attempt_failed_event_records_the_reason_and_codes() -> None:
    decision = settle(run_on_attempt(1), SPEC, EXIT_1, NOW, lambda: 0.0)

    _, message, data = decision.events[0]
    assert message == "attempt 1 failed: exited with status 1"
    assert data == {
        "attempt": 1,
        "status": "exit_error",
        "latency_ms": 7,
        "exit_code": 1,
        "failure_reason": "exit_code",
    }


def test_a_zero_draw_retries_right_away() -> None:
    assert settle(run_on_attempt(1), SPEC, EXIT_1, NOW, lambda: 0.0).not_before == NOW


def test_retry_after_from_the_target_sets_the_retry_time() -> None:
    throttled = Outcome(
        status=AttemptStatus.HTTP_ERROR,
        failure_reason=FailureReason.HTTP_4XX,
        status_code=429,
        retry_after=12.0,
    )

    decision = settle(run_on_attempt(1), SPEC, throttled, NOW, lambda: 0.0)

    assert decision.status is RunStatus.QUEUED
    assert decision.not_before == NOW + timedelta(seconds=12)
    assert decision.events[0][2]["status_code"] == 429


def test_retry_after_beyond_max_backoff_waits_max_backoff() -> None:
    throttled = Outcome(
        status=AttemptStatus.HTTP_ERROR,
        failure_reason=FailureReason.HTTP_5XX,
        status_code=503,
        retry_after=86_400.0,
    )

    decision = settle(run_on_attempt(1), SPEC, throttled, NOW, lambda: 0.0)

    assert decision.not_before == NOW + timedelta(seconds=30)


# --- final failure -------------------------------------------------------------------------------


def test_the_last_attempt_failing_fails_the_run_with_its_reason() -> None:
    decision = settle(run_on_attempt(3), SPEC, EXIT_1, NOW, never)

    assert decision.status is RunStatus.FAILED
    assert decision.final
    assert decision.not_before is None
    assert decision.failure_reason == "exit_code"
    assert decision.error == "exited with status 1"
    assert types(decision.events) == [EventType.ATTEMPT_FAILED, EventType.RUN_FAILED]


def test_the_run_failed_event_names_and_explains_the_reason() -> None:
    decision = settle(run_on_attempt(3), SPEC, EXIT_1, NOW, never)

    _, message, data = decision.events[-1]
    assert data == {"reason": "exit_code"}
    assert "exit_code" in message
    assert explain("exit_code") in message


@pytest.mark.parametrize(
    "reason",
    [FailureReason.SSRF_BLOCKED, FailureReason.BLOCKED_IP, FailureReason.BLOCKED_HOSTNAME],
)
def test_a_blocked_destination_fails_the_run_on_the_first_attempt(reason: FailureReason) -> None:
    blocked = Outcome(status=AttemptStatus.BLOCKED, failure_reason=reason, error="not allowed")

    decision = settle(run_on_attempt(1), SPEC, blocked, NOW, never)

    assert decision.status is RunStatus.FAILED
    assert decision.failure_reason == reason.value
    assert decision.events[-1][2] == {"reason": reason.value}


def test_a_client_error_outside_retry_statuses_fails_at_once() -> None:
    not_found = Outcome(
        status=AttemptStatus.HTTP_ERROR, failure_reason=FailureReason.HTTP_4XX, status_code=404
    )

    decision = settle(run_on_attempt(1), SPEC, not_found, NOW, never)

    assert decision.status is RunStatus.FAILED
    assert decision.failure_reason == "http_4xx"
    assert decision.error is None


def test_a_failure_without_a_reason_is_recorded_as_unknown() -> None:
    odd = Outcome(status=AttemptStatus.EXCEPTION, error="something odd")

    decision = settle(run_on_attempt(3), SPEC, odd, NOW, never)

    assert decision.failure_reason == "unknown"
    assert decision.events[0][2]["failure_reason"] is None
    assert decision.events[-1][2] == {"reason": "unknown"}


def test_a_single_attempt_job_fails_on_its_first_failure() -> None:
    once = replace(SPEC, retry=RetryPolicy(max_attempts=1))

    decision = settle(run_on_attempt(1, max_attempts=1), once, EXIT_1, NOW, never)

    assert decision.status is RunStatus.FAILED


def test_a_run_keeps_the_attempt_budget_it_was_queued_with_when_the_policy_changes() -> None:
    raised = replace(SPEC, retry=RetryPolicy(max_attempts=5))

    decision = settle(run_on_attempt(3, max_attempts=3), raised, EXIT_1, NOW, never)

    assert decision.status is RunStatus.FAILED


def test_a_very_long_error_is_cut_in_the_attempt_event_but_kept_on_the_run() -> None:
    noisy = replace(EXIT_1, error="x" * 5000)

    decision = settle(run_on_attempt(3), SPEC, noisy, NOW, never)

    assert len(decision.events[0][1]) == 500
    assert decision.error == "x" * 5000

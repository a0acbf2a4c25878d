"""Retry decisions: full-jitter exponential backoff with a pinned random source, capped,
`Retry-After` honoured up to the cap; which failures retry and which never do."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.jobs import RetryPolicy
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.retry import (
    ALWAYS_RETRY,
    NEVER_RETRY,
    backoff_delay,
    is_retryable,
    should_retry,
)
from cronkeeper.domain.states import AttemptStatus

POLICY = RetryPolicy(max_attempts=3, backoff=0.25, max_backoff=60.0)


def fixed(value: float) -> Callable[[], float]:
    """A random source that always draws `value`."""
    return lambda: value


def failed(
    reason: FailureReason,
    status: AttemptStatus = AttemptStatus.EXCEPTION,
    status_code: int | None = None,
) -> Outcome:
    return Outcome(status=status, failure_reason=reason, status_code=status_code)


def http(code: int) -> Outcome:
    reason = FailureReason.HTTP_5XX if code >= 500 else FailureReason.HTTP_4XX
    if code in (401, 403):
        reason = FailureReason.CREDENTIAL
    return failed(reason, AttemptStatus.HTTP_ERROR, code)


TIMEOUT = failed(FailureReason.TIMEOUT, AttemptStatus.TIMEOUT)
CONNECTION = failed(FailureReason.CONNECTION, AttemptStatus.CONNECTION_ERROR)
EXIT = Outcome(status=AttemptStatus.EXIT_ERROR, failure_reason=FailureReason.EXIT_CODE, exit_code=1)


# --- backoff ---------------------------------------------------------------------------------


def test_a_random_draw_of_zero_retries_at_once() -> None:
    for attempt in (1, 2, 10):
        assert backoff_delay(attempt, POLICY, fixed(0.0)) == 0.0


def test_a_random_draw_just_under_one_waits_just_under_the_ceiling() -> None:
    assert backoff_delay(1, POLICY, fixed(0.999)) == pytest.approx(0.24975)
    assert backoff_delay(3, POLICY, fixed(0.999)) == pytest.approx(0.999)


def test_the_ceiling_doubles_with_each_attempt() -> None:
    ceilings = [backoff_delay(n, POLICY, fixed(1.0)) for n in range(1, 6)]

    assert ceilings == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_the_ceiling_stops_at_max_backoff() -> None:
    assert backoff_delay(20, POLICY, fixed(0.999)) == pytest.approx(59.94)
    assert backoff_delay(20, POLICY, fixed(0.999)) < POLICY.max_backoff
    assert backoff_delay(10_000, POLICY, fixed(1.0)) == 60.0


def test_retry_after_is_honoured_when_longer_than_the_jitter() -> None:
    delay = backoff_delay(1, POLICY, fixed(0.5), retry_after=10.0)

    assert delay == 10.0


def test_retry_after_shorter_than_the_jitter_does_not_shorten_the_wait() -> None:
    delay = backoff_delay(5, POLICY, fixed(0.5), retry_after=0.1)

    assert delay == pytest.approx(2.0)


def test_retry_after_is_capped_at_max_backoff() -> None:
    delay = backoff_delay(1, POLICY, fixed(0.0), retry_after=3600.0)

    assert delay == 60.0


def test_a_negative_retry_after_is_ignored() -> None:
    assert backoff_delay(1, POLICY, fixed(0.0), retry_after=-5.0) == 0.0


policies = st.builds(
    lambda backoff, extra: RetryPolicy(backoff=backoff, max_backoff=backoff + extra),
    st.floats(min_value=0.001, max_value=600),
    st.floats(min_value=0, max_value=3600),
)


@settings(max_examples=300, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    policy=policies,
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
    retry_after=st.none() | st.floats(min_value=-1e6, max_value=1e9),
)
def test_the_delay_is_never_negative_and_never_above_max_backoff(
    attempt: int, policy: RetryPolicy, draw: float, retry_after: float | None
) -> None:
    delay = backoff_delay(attempt, policy, lambda: draw, retry_after)

    assert 0.0 <= delay <= policy.max_backoff
    if retry_after is not None and retry_after > 0:
        assert delay >= min(retry_after, policy.max_backoff)


@settings(max_examples=300, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=200),
    policy=policies,
    draw=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_with_the_same_draw_a_later_attempt_never_waits_less(
    attempt: int, policy: RetryPolicy, draw: float
) -> None:
    earlier = backoff_delay(attempt, policy, lambda: draw)
    later = backoff_delay(attempt + 1, policy, lambda: draw)

    assert earlier <= later <= policy.max_backoff
    assert later <= max(2 * earlier, draw * policy.max_backoff)


# --- should_retry --------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [TIMEOUT, CONNECTION], ids=["timeout", "connection"])
def test_timeouts_and_connection_errors_retry_while_attempts_remain(outcome: Outcome) -> None:
    assert should_retry(outcome, 1, POLICY)
    assert should_retry(outcome, 2, POLICY)
    assert not should_retry(outcome, 3, POLICY)


def test_timeouts_retry_even_when_no_status_is_listed() -> None:
    policy = RetryPolicy(retry_on_statuses=())

    assert should_retry(TIMEOUT, 1, policy)
    assert should_retry(CONNECTION, 1, policy)
    assert not should_retry(http(503), 1, policy)


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_the_default_retry_statuses_retry(code: int) -> None:
    assert should_retry(http(code), 1, POLICY)


@pytest.mark.parametrize("code", [400, 404, 409, 410, 422, 501, 505])
def test_statuses_outside_retry_on_statuses_fail_at_once(code: int) -> None:
    assert not should_retry(http(code), 1, POLICY)


def test_retry_on_statuses_decides_for_http_errors() -> None:
    policy = RetryPolicy(retry_on_statuses=(404,))

    assert should_retry(http(404), 1, policy)
    assert not should_retry(http(503), 1, policy)


@pytest.mark.parametrize("code", [401, 403])
def test_credential_failures_never_retry_unless_their_status_is_listed(code: int) -> None:
    assert not should_retry(http(code), 1, POLICY)
    assert should_retry(http(code), 1, RetryPolicy(retry_on_statuses=(code,)))


@pytest.mark.parametrize(
    "reason",
    [
        FailureReason.SSRF_BLOCKED,
        FailureReason.BLOCKED_HOSTNAME,
        FailureReason.BLOCKED_IP,
        FailureReason.DESTINATION_UNRESOLVABLE,
    ],
)
def test_ssrf_blocks_never_retry(reason: FailureReason) -> None:
    every_status = RetryPolicy(max_attempts=10, retry_on_statuses=tuple(range(100, 600)))

    assert not should_retry(failed(reason, AttemptStatus.BLOCKED), 1, every_status)
    assert not should_retry(failed(reason, AttemptStatus.CONNECTION_ERROR), 1, every_status)


def test_a_blocked_attempt_never_retries_whatever_its_reason() -> None:
    assert not should_retry(failed(FailureReason.TIMEOUT, AttemptStatus.BLOCKED), 1, POLICY)


@pytest.mark.parametrize(
    "outcome",
    [
        EXIT,
        failed(FailureReason.SIGNAL, AttemptStatus.EXIT_ERROR),
        failed(FailureReason.EXCEPTION),
        failed(FailureReason.MAX_RUNTIME, AttemptStatus.TIMEOUT),
        failed(FailureReason.NODE_LOST),
        failed(FailureReason.DNS, AttemptStatus.CONNECTION_ERROR),
        failed(FailureReason.TLS, AttemptStatus.CONNECTION_ERROR),
    ],
    ids=lambda outcome: outcome.failure_reason.value,
)
def test_command_python_and_transport_failures_retry(outcome: Outcome) -> None:
    assert should_retry(outcome, 1, POLICY)


def test_a_success_is_never_retried() -> None:
    assert not should_retry(Outcome(status=AttemptStatus.SUCCESS), 1, POLICY)


def test_a_single_attempt_policy_never_retries() -> None:
    assert not should_retry(TIMEOUT, 1, RetryPolicy(max_attempts=1))


def test_too_fast_and_rejected_never_retry() -> None:
    assert not should_retry(failed(FailureReason.TOO_FAST), 1, POLICY)
    assert not should_retry(failed(FailureReason.REJECTED), 1, POLICY)


outcomes = st.builds(
    Outcome,
    status=st.sampled_from(list(AttemptStatus)),
    failure_reason=st.none() | st.sampled_from(list(FailureReason)),
    status_code=st.none() | st.integers(min_value=100, max_value=599),
)


@settings(max_examples=500, deadline=None)
@given(
    outcome=outcomes,
    attempt=st.integers(min_value=1, max_value=12),
    max_attempts=st.integers(min_value=1, max_value=10),
    statuses=st.lists(st.integers(min_value=100, max_value=599), max_size=5),
)
def test_retry_rules_hold_for_any_outcome(
    outcome: Outcome, attempt: int, max_attempts: int, statuses: list[int]
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, retry_on_statuses=tuple(statuses))

    decision = should_retry(outcome, attempt, policy)

    hopeless = outcome.failure_reason in NEVER_RETRY or outcome.status is AttemptStatus.BLOCKED
    if attempt >= max_attempts or outcome.succeeded or hopeless:
        assert not decision
    elif outcome.failure_reason in ALWAYS_RETRY:
        assert decision
    elif outcome.status_code is not None:
        assert decision == (outcome.status_code in statuses)
    assert decision == (attempt < max_attempts and is_retryable(outcome, policy))

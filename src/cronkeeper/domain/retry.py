"""Retry decisions: whether an attempt's failure retries, and how long to wait.

Backoff is `backoff · 2^(attempt-1)` with full jitter (a uniform draw from 0 to that),
capped at `max_backoff`; a `Retry-After` from the target is honoured up to the cap.
The random source is injected so tests can pin it.
"""

from __future__ import annotations

from collections.abc import Callable

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.jobs import RetryPolicy
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.states import AttemptStatus

#: Failures that no retry can fix: the request will be refused the same way again.
NEVER_RETRY = frozenset(
    {
        FailureReason.SSRF_BLOCKED,
        FailureReason.BLOCKED_HOSTNAME,
        FailureReason.BLOCKED_IP,
        FailureReason.DESTINATION_UNRESOLVABLE,
        FailureReason.REJECTED,
        FailureReason.TOO_FAST,
    }
)
#: Failures that always retry while attempts remain.
ALWAYS_RETRY = frozenset(
    {FailureReason.TIMEOUT, FailureReason.CONNECTION, FailureReason.DNS, FailureReason.NODE_LOST}
)


def is_retryable(outcome: Outcome, policy: RetryPolicy) -> bool:
    """True when this failed outcome is worth another attempt under `policy`."""
    if outcome.succeeded or outcome.status is AttemptStatus.BLOCKED:
        return False
    reason = outcome.failure_reason
    if reason in NEVER_RETRY:
        return False
    if reason in ALWAYS_RETRY:
        return True
    if outcome.status_code is not None:
        return outcome.status_code in policy.retry_on_statuses
    return reason in (
        FailureReason.EXIT_CODE,
        FailureReason.SIGNAL,
        FailureReason.EXCEPTION,
        FailureReason.PROTOCOL,
        FailureReason.TLS,
        FailureReason.MAX_RUNTIME,
    )


def should_retry(outcome: Outcome, attempt: int, policy: RetryPolicy) -> bool:
    """Retry when the failure is retryable and attempts remain (`attempt` is 1-based)."""
    return attempt < policy.max_attempts and is_retryable(outcome, policy)


def backoff_delay(
    attempt: int, policy: RetryPolicy, random: Callable[[], float], retry_after: float | None = None
) -> float:
    """Seconds to wait before attempt `attempt + 1`; `random()` returns a float in [0, 1)."""
    ceiling = min(policy.max_backoff, policy.backoff * float(2 ** min(attempt - 1, 60)))
    delay = random() * ceiling
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_backoff))
    return delay

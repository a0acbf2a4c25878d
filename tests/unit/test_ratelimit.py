"""Token buckets: a burst of `capacity`, then one token per 1/rate seconds, per key."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.domain.ratelimit import TokenBuckets


def test_a_full_bucket_allows_capacity_requests_then_asks_to_wait() -> None:
    buckets = TokenBuckets(capacity=3, per_second=0.5)
    assert [buckets.take("ip", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("ip", now=100.0) == pytest.approx(2.0)


def test_a_refused_request_does_not_spend_a_token() -> None:
    buckets = TokenBuckets(capacity=1, per_second=1)
    buckets.take("ip", now=0.0)
    assert buckets.take("ip", now=0.0) == pytest.approx(1.0)
    assert buckets.take("ip", now=0.5) == pytest.approx(0.5)
    assert buckets.take("ip", now=1.0) == 0.0


def test_tokens_refill_with_time() -> None:
    buckets = TokenBuckets(capacity=2, per_second=1)
    buckets.take("ip", now=10.0)
    buckets.take("ip", now=10.0)
    assert buckets.take("ip", now=10.4) > 0
    assert buckets.take("ip", now=11.0) == 0.0
    assert buckets.take("ip", now=11.0) > 0


def test_a_long_pause_refills_only_up_to_capacity() -> None:
    buckets = TokenBuckets(capacity=2, per_second=1)
    buckets.take("ip", now=0.0)
    allowed = [buckets.take("ip", now=1_000.0) == 0 for _ in range(5)]
    assert allowed == [True, True, False, False, False]


def test_keys_have_independent_buckets() -> None:
    buckets = TokenBuckets(capacity=1, per_second=0.1)
    assert buckets.take("10.0.0.1", now=0.0) == 0.0
    assert buckets.take("10.0.0.1", now=0.0) > 0
    assert buckets.take("10.0.0.2", now=0.0) == 0.0


def test_blocked_for_reports_the_wait_without_spending_a_token() -> None:
    buckets = TokenBuckets(capacity=1, per_second=0.25)
    assert buckets.blocked_for("ip", now=0.0) == 0.0
    assert buckets.blocked_for("ip", now=0.0) == 0.0
    buckets.take("ip", now=0.0)
    assert buckets.blocked_for("ip", now=1.0) == pytest.approx(3.0)
    assert buckets.blocked_for("ip", now=1.0) == pytest.approx(3.0)
    assert buckets.blocked_for("ip", now=4.0) == 0.0


rates = st.sampled_from([0.1, 0.25, 1 / 3, 0.7, 1.0, 3.0, 7.0])
instants = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(capacity=st.integers(1, 5), rate=rates, now=instants)
def test_waiting_the_time_it_asks_for_is_always_enough(
    capacity: int, rate: float, now: float
) -> None:
    buckets = TokenBuckets(capacity=capacity, per_second=rate)
    for _ in range(capacity):
        buckets.take("ip", now)
    wait = buckets.take("ip", now)
    assert wait > 0
    assert buckets.blocked_for("ip", now + wait) == 0.0
    assert buckets.take("ip", now + wait) == 0.0


@given(
    capacity=st.integers(1, 5),
    rate=rates,
    start=instants,
    gaps=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=60),
)
def test_never_more_than_capacity_plus_refill_in_any_window(
    capacity: int, rate: float, start: float, gaps: list[float]
) -> None:
    buckets = TokenBuckets(capacity=capacity, per_second=rate)
    times = list(itertools.accumulate(gaps, initial=start))
    allowed = [t for t in times if buckets.take("ip", t) == 0]
    for first, last in itertools.combinations_with_replacement(range(len(allowed)), 2):
        window = allowed[last] - allowed[first]
        assert last - first + 1 <= capacity + window * rate + 1e-5

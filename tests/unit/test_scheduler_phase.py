"""When the scheduler's next pass happens: once the earliest slot enters the look-ahead
(at most `max_sleep` away), always on the half second, so the runs a pass creates are
never written while the runs due at a whole second start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.runtime.scheduler import PASS_PHASE, next_pass_in

LOOKAHEAD = timedelta(seconds=10)
T = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_a_slot_entering_the_lookahead_at_a_whole_second_is_fired_half_a_second_later() -> None:
    # After a pass at 12:00:00.5 fired up to 12:00:10.5, the next slot 12:00:11 enters the
    # look-ahead at 12:00:01: the pass waits for 12:00:01.5.
    now = T + timedelta(seconds=0.5)
    assert next_pass_in(now, T + timedelta(seconds=11), LOOKAHEAD, 1.0) == 1.0


def test_with_nothing_due_the_pass_is_at_most_max_sleep_and_a_phase_away() -> None:
    assert next_pass_in(T, None, LOOKAHEAD, 1.0) == 1.5


def test_a_slot_already_inside_the_lookahead_waits_only_for_the_phase() -> None:
    now = T + timedelta(seconds=0.2)
    assert abs(next_pass_in(now, T + timedelta(seconds=3), LOOKAHEAD, 1.0) - 0.3) < 1e-6


@given(
    offset=st.floats(min_value=0, max_value=86_400, allow_nan=False),
    due_in=st.none() | st.floats(min_value=-60, max_value=3_600, allow_nan=False),
    max_sleep=st.floats(min_value=0.1, max_value=5),
)
def test_passes_fall_on_the_phase_and_never_after_a_slot_is_due(
    offset: float, due_in: float | None, max_sleep: float
) -> None:
    now = T + timedelta(seconds=offset)
    due = None if due_in is None else now + timedelta(seconds=due_in)
    delay = next_pass_in(now, due, LOOKAHEAD, max_sleep)
    at = now + timedelta(seconds=delay)
    assert 0 <= delay < max_sleep + 1
    assert abs((at.timestamp() - PASS_PHASE + 0.5) % 1.0 - 0.5) < 1e-4  # on the phase
    if due is not None:
        # the slot is fired at least lookahead − 1 s before it is due (or at once if late)
        assert at <= max(now, due - LOOKAHEAD) + timedelta(seconds=1)

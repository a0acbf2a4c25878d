"""The monitor's pure rules (domain/monitor.py): streaks, the slot a ping answers, the
expected slot, overdue slots, our own outages, decide, flapping, reminders, maintenance
windows — examples and Hypothesis properties. Plus the run-time limits of settlement
(max_runtime, min_runtime → too_fast) for runs we execute."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronkeeper.domain.jobs import AlertPolicy, JobSpec
from cronkeeper.domain.models import Run
from cronkeeper.domain.monitor import (
    MAX_MISSED,
    Anchor,
    FinishedRun,
    MaintenanceWindow,
    decide,
    during_outage,
    expected_slot,
    is_flapping,
    maintenance_at,
    next_realert,
    overdue_slots,
    slot_of_ping,
    streaks,
)
from cronkeeper.domain.outcomes import Outcome
from cronkeeper.domain.schedules import parse_schedule, parse_timezone
from cronkeeper.domain.settlement import settle
from cronkeeper.domain.states import AttemptStatus, JobKind, MonitorState, RunStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CRONS = ["0 * * * *", "*/5 * * * *", "30 2 * * *", "* * * * *", "0 9 * * 1-5", "15,45 * * * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York"]


def spec(schedule: str = "0 * * * *", **fields: Any) -> JobSpec:
    return JobSpec(slug="backup", kind=JobKind.HEARTBEAT, schedule=schedule, **fields)


def run(status: RunStatus, at: datetime = T0) -> FinishedRun:
    reason = "missed" if status is RunStatus.MISSED else None
    return FinishedRun(uuid.uuid4(), status, at, reason)


def h(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute, second=second)


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
statuses = st.sampled_from([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.MISSED])
histories = st.lists(statuses, max_size=12)  # newest first
policies = st.builds(
    AlertPolicy,
    failure_threshold=st.integers(1, 5),
    recovery_threshold=st.integers(1, 5),
)
states = st.sampled_from(list(MonitorState))


def history(kinds: list[RunStatus]) -> list[FinishedRun]:
    """Runs newest first, an hour apart."""
    return [run(kind, T0 - timedelta(hours=i)) for i, kind in enumerate(kinds)]


# -- streaks ------------------------------------------------------------------------------


def test_streaks_count_from_the_newest_run() -> None:
    F, S, M = RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.MISSED
    assert streaks(history([])) == (0, 0)
    assert streaks(history([F, M, S, F])) == (2, 0)
    assert streaks(history([S, S, S, F])) == (3, 0)[::-1]
    assert streaks(history([M])) == (1, 0)


@given(histories)
def test_streaks_partition_the_newest_runs(kinds: list[RunStatus]) -> None:
    failures, successes = streaks(history(kinds))
    assert failures == 0 or successes == 0
    streak = failures or successes
    head = kinds[:streak]
    if failures:
        assert all(kind is not RunStatus.SUCCEEDED for kind in head)
    if successes:
        assert all(kind is RunStatus.SUCCEEDED for kind in head)
    if streak < len(kinds):  # the run after the streak ends it
        assert (kinds[streak] is RunStatus.SUCCEEDED) == bool(failures)
    assert (streak == 0) == (not kinds)


# -- decide ---------------------------------------------------------------------------------


@given(states, policies, histories)
def test_decide_never_flips_down_before_failure_threshold_failures(
    state: MonitorState, policy: AlertPolicy, kinds: list[RunStatus]
) -> None:
    recent = history(kinds)
    flip = decide(state, policy, recent)
    if flip is not None and flip.new is MonitorState.DOWN:
        assert streaks(recent)[0] >= policy.failure_threshold
        assert flip.old in (MonitorState.NEW, MonitorState.UP, MonitorState.LATE)
        # dated by the run that made the streak long enough
        assert flip.at == recent[streaks(recent)[0] - policy.failure_threshold].at
    if flip is not None and flip.old is MonitorState.DOWN:
        assert flip.new is MonitorState.UP
        assert streaks(recent)[1] >= policy.recovery_threshold
    if state is MonitorState.PAUSED:
        assert flip is None


@given(policies, histories)
def test_a_down_job_stays_down_until_recovery_threshold_successes(
    policy: AlertPolicy, kinds: list[RunStatus]
) -> None:
    flip = decide(MonitorState.DOWN, policy, history(kinds))
    recovered = streaks(history(kinds))[1] >= policy.recovery_threshold
    assert (flip is not None) == recovered


def test_decide_examples() -> None:
    three = AlertPolicy(failure_threshold=3, recovery_threshold=2)
    F, S, M = RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.MISSED
    assert decide(MonitorState.UP, three, history([F, M])) is None
    flip = decide(MonitorState.UP, three, history([F, F, M, S]))
    assert flip is not None and (flip.new, flip.at) == (MonitorState.DOWN, T0)
    flip = decide(MonitorState.UP, three, history([M, F, F, M, S]))
    assert flip is not None and flip.at == T0 - timedelta(hours=1)  # the third failure
    assert decide(MonitorState.DOWN, three, history([S, F])) is None
    flip = decide(MonitorState.DOWN, three, history([S, S, S, F]))
    assert flip is not None and flip.at == T0 - timedelta(hours=1)  # the second success
    flip = decide(MonitorState.NEW, three, history([S]))
    assert flip is not None and (flip.new, flip.reason) == (MonitorState.UP, "first success")
    assert decide(MonitorState.NEW, three, []) is None


def test_late_comes_at_the_slot_and_ends_only_with_a_ping() -> None:
    policy = AlertPolicy(failure_threshold=3)
    recent = history([RunStatus.MISSED, RunStatus.SUCCEEDED])
    flip = decide(MonitorState.UP, policy, recent, late_since=h(13))
    assert flip is not None and (flip.new, flip.at) == (MonitorState.LATE, h(13))
    # a missed slot below the threshold: no ping since, still late
    assert decide(MonitorState.LATE, policy, recent) is None
    flip = decide(MonitorState.LATE, policy, recent, pinged_at=h(13, 3))
    assert flip is not None and (flip.new, flip.at) == (MonitorState.UP, h(13, 3))


# -- slots ------------------------------------------------------------------------------------


def test_a_ping_answers_the_nearest_slot() -> None:
    hourly, zone = parse_schedule("0 * * * *"), spec()
    assert slot_of_ping(hourly, zone, h(12, 29, 59)) == h(12)
    assert slot_of_ping(hourly, zone, h(12, 30)) == h(12)  # a tie answers the earlier one
    assert slot_of_ping(hourly, zone, h(12, 30, 1)) == h(13)
    assert slot_of_ping(hourly, zone, h(12, 59, 40)) == h(13)  # early: counts for 13:00


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CRONS), st.sampled_from(ZONES), instants)
def test_a_ping_exactly_at_a_slot_answers_that_slot(
    expression: str, zone: str, when: datetime
) -> None:
    schedule, job = parse_schedule(expression), spec(expression, timezone=zone)
    slot = schedule.next_fire(when, parse_timezone(zone))
    assert slot is not None
    assert slot_of_ping(schedule, job, slot) == slot
    assert expected_slot(job, Anchor(slot)) == schedule.next_fire(slot, parse_timezone(zone))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CRONS), st.sampled_from(ZONES), instants)
def test_a_ping_answers_one_of_its_two_neighbouring_slots(
    expression: str, zone: str, when: datetime
) -> None:
    schedule, job = parse_schedule(expression), spec(expression, timezone=zone)
    tz = parse_timezone(zone)
    answered = slot_of_ping(schedule, job, when)
    before = schedule.prev_fires(when + timedelta(microseconds=1), tz, 1)
    after = schedule.next_fire(when - timedelta(microseconds=1), tz)
    assert answered in {*(before or []), after}
    # the next expected slot is strictly after both the ping and the slot it answered
    nxt = expected_slot(job, Anchor(when))
    assert nxt is not None and nxt > when and nxt > answered


def test_every_counts_from_the_last_ping() -> None:
    job = spec("every 1h")
    assert expected_slot(job, Anchor(h(12, 17, 3))) == h(13, 17, 3)
    assert expected_slot(job, Anchor(h(13, 17, 3), is_slot=True)) == h(14, 17, 3)
    assert expected_slot(spec(None), Anchor(h(12))) is None


def test_overdue_slots_examples() -> None:
    job = spec(start_grace=300)
    assert overdue_slots(job, Anchor(h(12, 0, 5)), h(13, 4, 59)) == []
    assert overdue_slots(job, Anchor(h(12, 0, 5)), h(13, 5)) == [h(13)]
    assert overdue_slots(job, Anchor(h(13), is_slot=True), h(15, 6)) == [h(14), h(15)]
    assert overdue_slots(spec(None), Anchor(h(1)), h(23)) == []


def test_overdue_slots_keep_the_most_recent_max_missed() -> None:
    job = spec("* * * * *", start_grace=1)
    slots = overdue_slots(job, Anchor(h(0)), h(10))
    assert len(slots) == MAX_MISSED
    assert slots[-1] == h(9, 59)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([*CRONS, "every 90s", "every 2h", "every 1d"]),
    st.sampled_from(ZONES),
    instants,
    st.integers(0, 3 * 86400),
    st.sampled_from([0, 10, 60, 300, 3600]),
    st.booleans(),
)
def test_overdue_slots_are_increasing_past_their_deadline_and_bounded(
    expression: str, zone: str, anchor_at: datetime, ahead: int, grace: int, is_slot: bool
) -> None:
    job = spec(expression, timezone=zone, start_grace=grace)
    now = anchor_at + timedelta(seconds=ahead)
    anchor = Anchor(anchor_at, is_slot=is_slot)
    slots = overdue_slots(job, anchor, now)
    assert len(slots) <= MAX_MISSED
    assert slots == sorted(set(slots))
    assert all(slot + timedelta(seconds=grace) <= now for slot in slots)
    assert all(slot > anchor_at for slot in slots)
    # none forgotten: the slot after the last overdue one is not overdue yet
    after = expected_slot(job, Anchor(slots[-1], is_slot=True) if slots else anchor)
    assert after is None or after + timedelta(seconds=grace) > now


# -- our own outages ------------------------------------------------------------------------


def test_during_outage_covers_the_time_the_ping_could_have_arrived() -> None:
    outage = [(h(12), h(12, 3))]
    assert during_outage(h(12, 1), 10, outage)
    assert during_outage(h(12, 4), 10, outage)  # its ping could have come from 12:03 on
    assert not during_outage(h(12, 4, 1), 10, outage)
    assert during_outage(h(11, 59, 55), 10, outage)  # deadline 12:00:05, inside
    assert not during_outage(h(11, 59, 49), 10, outage)
    assert during_outage(h(12, 30), 3600, outage)  # a long grace: pinged from 11:30 on
    assert not during_outage(h(14), 3600, outage)
    assert not during_outage(h(12, 1), 10, [])


@given(instants, st.floats(0, 7200), st.integers(1, 3600), st.integers(-7200, 7200))
def test_a_slot_whose_deadline_falls_in_an_outage_is_during_it(
    start: datetime, grace: float, length: int, offset: int
) -> None:
    end = start + timedelta(seconds=length)
    deadline = start + timedelta(seconds=offset)
    slot = deadline - timedelta(seconds=grace)
    inside = start <= deadline <= end
    if inside:
        assert during_outage(slot, grace, [(start, end)])


# -- flapping and reminders --------------------------------------------------------------


def test_flapping_is_more_flips_than_the_threshold_within_the_window() -> None:
    policy = AlertPolicy(flap_threshold=3, flap_window=3600)
    now = h(13)
    three = [h(12, 30), h(12, 40), h(12, 50)]
    assert not is_flapping(three, policy, now)
    assert is_flapping([*three, h(12, 55)], policy, now)
    assert not is_flapping([h(11, 59), *three], policy, now)  # outside the window
    assert not is_flapping([h(12, 59)] * 20, AlertPolicy(flap_threshold=None), now)


@given(instants, st.integers(60, 86400), st.integers(-86400, 30 * 86400))
def test_next_realert_is_strictly_after_now_and_aligned_to_down_since(
    down_since: datetime, every: int, elapsed: int
) -> None:
    now = down_since + timedelta(seconds=elapsed)
    reminder = next_realert(down_since, every, now)
    assert reminder > now
    assert reminder > down_since
    steps = (reminder - down_since) / timedelta(seconds=every)
    assert steps == int(steps) and steps >= 1
    if steps > 1:  # the first such time: the one before is not after now
        assert reminder - timedelta(seconds=every) <= now


# -- maintenance windows --------------------------------------------------------------------


def window(**fields: Any) -> MaintenanceWindow:
    values: dict[str, Any] = {"id": uuid.uuid4(), "project_id": uuid.uuid4(), "name": "w"}
    values.setdefault("mode", "mute")
    return MaintenanceWindow(**{**values, **fields})


def test_a_one_off_window_covers_its_half_open_interval() -> None:
    w = window(starts_at=h(13), ends_at=h(14))
    assert w.covering(h(12, 59, 59)) is None
    assert w.covering(h(13)) == (h(13), h(14))
    assert w.covering(h(13, 59, 59)) == (h(13), h(14))
    assert w.covering(h(14)) is None


def test_a_recurring_window_covers_each_occurrence() -> None:
    w = window(schedule="0 2 * * *", duration_s=1800)
    day = h(2)
    assert w.covering(day) == (day, day + timedelta(minutes=30))
    assert w.covering(day + timedelta(days=3, minutes=29)) is not None
    assert w.covering(day + timedelta(minutes=30)) is None
    assert w.covering(day - timedelta(seconds=1)) is None


def test_a_recurring_window_keeps_its_local_time_across_dst() -> None:
    w = window(schedule="0 2 * * *", duration_s=3600, timezone="Europe/Berlin")
    winter = datetime(2026, 1, 15, 1, 30, tzinfo=UTC)  # 02:30 CET
    summer = datetime(2026, 7, 15, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert w.covering(winter) is not None and w.covering(summer) is not None
    assert w.covering(datetime(2026, 7, 15, 1, 30, tzinfo=UTC)) is None  # 03:30 CEST


def test_an_oncalendar_window_is_found_by_scanning_forward() -> None:
    w = window(schedule="*-*-* 02:00:00", duration_s=1800)
    assert w.covering(h(2, 10)) == (h(2), h(2, 30))
    assert w.covering(h(2, 40)) is None


def test_a_window_applies_to_the_jobs_it_names_or_to_all() -> None:
    nightly = spec(tags=("nightly",))
    assert window().applies_to(nightly)
    assert window(job_slugs=("backup",)).applies_to(nightly)
    assert window(tags=("nightly", "db")).applies_to(nightly)
    assert not window(job_slugs=("other",), tags=("db",)).applies_to(nightly)


def test_maintenance_at_filters_by_mode() -> None:
    mute = window(name="a", starts_at=h(13), ends_at=h(14))
    skip = window(name="b", mode="skip", starts_at=h(13), ends_at=h(14))
    assert maintenance_at([mute, skip], spec(), h(13, 30)) is mute
    assert maintenance_at([mute, skip], spec(), h(13, 30), mode="skip") is skip
    assert maintenance_at([mute, skip], spec(), h(15)) is None


# -- run-time limits of runs we execute (domain/settlement.py) ------------------------------


def executed(started: datetime, attempts: int = 1, max_attempts: int = 3) -> Run:
    return Run(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        source="schedule",
        status="running",
        scheduled_for=started,
        queue="default",
        not_before=None,
        queued_at=started,
        started_at=started,
        finished_at=None,
        duration_ms=None,
        drift_ms=None,
        attempts=attempts,
        max_attempts=max_attempts,
        failure_reason=None,
        error=None,
        payload=None,
        trace_id=None,
        replay_of=None,
        node=None,
        lease_expires_at=None,
        created_at=started,
    )


COMMAND = JobSpec(slug="sync", kind=JobKind.COMMAND, target={"command": "true"})
OK = Outcome(status=AttemptStatus.SUCCESS, exit_code=0, latency_ms=5)


def test_a_run_finished_under_min_runtime_fails_too_fast() -> None:
    job = JobSpec(**{**COMMAND.__dict__, "min_runtime": 10.0})
    done = settle(executed(T0), job, OK, T0 + timedelta(seconds=3), random.random)
    assert (done.status, done.failure_reason) == (RunStatus.FAILED, "too_fast")
    assert done.error is not None and "min_runtime" in done.error
    slow = settle(executed(T0), job, OK, T0 + timedelta(seconds=10), random.random)
    assert slow.status is RunStatus.SUCCEEDED


def test_a_failed_attempt_past_max_runtime_is_not_retried() -> None:
    from cronkeeper.domain.failures import FailureReason

    job = JobSpec(**{**COMMAND.__dict__, "max_runtime": 60.0})
    failed = Outcome(
        status=AttemptStatus.TIMEOUT,
        failure_reason=FailureReason.TIMEOUT,
        latency_ms=60_000,
        error="timed out",
    )
    done = settle(executed(T0), job, failed, T0 + timedelta(seconds=60), random.random)
    assert (done.status, done.failure_reason) == (RunStatus.FAILED, "max_runtime")
    early = settle(executed(T0), job, failed, T0 + timedelta(seconds=1), lambda: 0.0)
    assert early.status is RunStatus.QUEUED  # time left: retried


@pytest.mark.parametrize("claimed_after", [0.0, 50.0, 59.9, 120.0])
def test_an_attempt_timeout_is_cut_to_what_max_runtime_leaves(claimed_after: float) -> None:
    from cronkeeper.service.execution import attempt_timeout

    job = JobSpec(**{**COMMAND.__dict__, "max_runtime": 60.0, "timeout": 30.0})
    timeout = attempt_timeout(job, executed(T0), T0 + timedelta(seconds=claimed_after))
    assert 0 < timeout <= 30.0
    assert timeout == pytest.approx(max(0.001, min(30.0, 60.0 - claimed_after)))

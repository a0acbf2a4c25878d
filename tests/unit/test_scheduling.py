"""The scheduler's decisions: which due slots fire (start grace, catch-up), where the next
fire lands, and what the overlap policy makes of a slot.

Interval schedules are anchored on the Unix epoch, so `every 1m` fires on whole minutes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.schedules import parse_schedule, parse_timezone
from cronkeeper.domain.scheduling import MAX_CATCH_UP, FirePlan, overlap_action, plan_fires
from cronkeeper.domain.states import JobKind

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UTC_ZONE = parse_timezone("UTC")


def spec(**fields: Any) -> JobSpec:
    values: dict[str, Any] = {
        "slug": "job",
        "kind": JobKind.COMMAND,
        "schedule": "every 1m",
        "target": {"command": "true"},
    }
    values.update(fields)
    return JobSpec(**values)


def at(hours: int = 12, minutes: int = 0, seconds: int = 0) -> datetime:
    return datetime(2026, 3, 1, hours, minutes, seconds, tzinfo=UTC)


def minutes(first: datetime, last: datetime) -> list[datetime]:
    """Every whole minute from `first` to `last`, both included."""
    count = int((last - first).total_seconds() // 60) + 1
    return [first + timedelta(minutes=i) for i in range(count)]


def slots_between(expression: str, first: datetime, now: datetime) -> list[datetime]:
    """The slots of a schedule from `first` (a slot) up to `now`, walked one by one."""
    schedule, found = parse_schedule(expression), []
    slot: datetime | None = first
    while slot is not None and slot <= now:
        found.append(slot)
        slot = schedule.next_fire(slot, UTC_ZONE)
    return found


# --- on time ---------------------------------------------------------------------------------


def test_a_slot_that_just_came_fires_and_the_next_fire_is_the_following_slot() -> None:
    plan = plan_fires(spec(), next_fire_at=NOON, now=NOON + timedelta(seconds=30))

    assert plan == FirePlan(fire=[NOON], missed=[], next_fire_at=at(12, 1))


def test_a_slot_fires_at_its_exact_instant() -> None:
    plan = plan_fires(spec(), next_fire_at=NOON, now=NOON)

    assert plan.fire == [NOON]
    assert plan.next_fire_at == at(12, 1)


def test_nothing_fires_before_the_next_slot_and_the_next_fire_stays_put() -> None:
    plan = plan_fires(spec(), next_fire_at=NOON, now=NOON - timedelta(seconds=1))

    assert plan == FirePlan(fire=[], missed=[], next_fire_at=NOON)


def test_every_slot_within_the_start_grace_fires_whatever_the_catch_up() -> None:
    now = at(12, 5, 30)
    for catch_up in ("none", "latest", "all"):
        plan = plan_fires(spec(start_grace=300, catch_up=catch_up), at(12, 1), now)

        assert plan.fire == minutes(at(12, 1), at(12, 5)), catch_up
        assert plan.missed == []
        assert plan.next_fire_at == at(12, 6)


def test_a_slot_exactly_start_grace_old_is_still_on_time() -> None:
    plan = plan_fires(spec(start_grace=60), next_fire_at=NOON, now=at(12, 1))

    assert plan.fire == [NOON, at(12, 1)]


def test_a_zero_start_grace_fires_only_a_slot_due_this_very_instant() -> None:
    assert plan_fires(spec(start_grace=0), NOON, NOON).fire == [NOON]
    late = plan_fires(spec(start_grace=0), NOON, NOON + timedelta(milliseconds=1))
    assert late.fire == []
    assert late.missed == [NOON]


# --- catch-up after downtime -------------------------------------------------------------------


def test_catch_up_none_fires_no_missed_slot_after_an_hour_of_downtime() -> None:
    plan = plan_fires(spec(catch_up="none", start_grace=10), at(11, 0), at(12, 0, 30))

    assert plan.fire == []
    assert plan.missed == minutes(at(11, 0), at(12, 0))
    assert plan.next_fire_at == at(12, 1)


def test_catch_up_none_still_fires_the_slot_that_is_on_time() -> None:
    plan = plan_fires(spec(catch_up="none", start_grace=60), at(11, 0), at(12, 0, 30))

    assert plan.fire == [at(12, 0)]
    assert plan.missed == minutes(at(11, 0), at(11, 59))


def test_catch_up_latest_fires_only_the_most_recent_missed_slot() -> None:
    plan = plan_fires(spec(catch_up="latest", start_grace=10), at(11, 0), at(12, 0, 30))

    assert plan.fire == [at(12, 0)]
    assert plan.missed == minutes(at(11, 0), at(11, 59))
    assert plan.next_fire_at == at(12, 1)


def test_catch_up_latest_adds_nothing_when_a_slot_is_on_time() -> None:
    plan = plan_fires(spec(catch_up="latest", start_grace=60), at(11, 0), at(12, 0, 30))

    assert plan.fire == [at(12, 0)]


def test_catch_up_all_fires_every_missed_slot_oldest_first() -> None:
    plan = plan_fires(spec(catch_up="all", start_grace=10), at(11, 0), at(12, 0, 30))

    assert plan.fire == minutes(at(11, 0), at(12, 0))
    assert plan.missed == []


def test_catch_up_all_replays_at_most_the_most_recent_max_catch_up_slots() -> None:
    plan = plan_fires(spec(catch_up="all", start_grace=10), at(9, 0), at(12, 0, 30))

    assert len(plan.fire) == MAX_CATCH_UP
    assert plan.fire[-1] == at(12, 0)
    assert plan.fire == minutes(at(12, 0) - timedelta(minutes=MAX_CATCH_UP - 1), at(12, 0))
    assert all(slot < plan.fire[0] for slot in plan.missed)


def test_catch_up_all_never_fires_fewer_slots_than_catch_up_none() -> None:
    """The bound limits the replay of *missed* slots; on-time slots always fire."""
    on_time = {"schedule": "every 1s", "start_grace": 3600}
    none = plan_fires(spec(catch_up="none", **on_time), NOON, NOON + timedelta(minutes=30))
    everything = plan_fires(spec(catch_up="all", **on_time), NOON, NOON + timedelta(minutes=30))

    assert len(none.fire) == 30 * 60 + 1
    assert everything.fire == none.fire


def test_cron_schedules_catch_up_in_the_jobs_time_zone() -> None:
    nightly = spec(schedule="0 2 * * *", timezone="Europe/Berlin", catch_up="all", start_grace=60)
    # Two nights missed: 02:00 Berlin is 01:00 UTC in winter.
    plan = plan_fires(nightly, datetime(2026, 2, 27, 1, 0, tzinfo=UTC), NOON)

    assert plan.fire == [
        datetime(2026, 2, 27, 1, 0, tzinfo=UTC),
        datetime(2026, 2, 28, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 1, 0, tzinfo=UTC),
    ]
    assert plan.next_fire_at == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


# --- far behind ----------------------------------------------------------------------------------


def test_a_job_millions_of_slots_behind_jumps_ahead_quickly() -> None:
    behind = NOON - timedelta(days=60)  # 5,184,000 one-second slots
    now = NOON + timedelta(milliseconds=500)
    started = time.perf_counter()

    plan = plan_fires(spec(schedule="every 1s", catch_up="none", start_grace=0), behind, now)

    assert time.perf_counter() - started < 2.0
    assert plan.next_fire_at == NOON + timedelta(seconds=1)
    assert plan.fire == []


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        ("none", [NOON - timedelta(seconds=1), NOON]),
        ("latest", [NOON - timedelta(seconds=1), NOON]),
        # the 100 most recent late slots, then the two on-time ones
        ("all", [NOON - timedelta(seconds=101 - i) for i in range(102)]),
    ],
)
def test_a_job_far_behind_fires_its_most_recent_slots_not_its_oldest(
    catch_up: str, expected: list[datetime]
) -> None:
    behind = NOON - timedelta(days=3)  # 259,200 slots: more than one scan looks at
    plan = plan_fires(spec(schedule="every 1s", catch_up=catch_up, start_grace=1), behind, NOON)

    assert plan.fire == expected
    assert plan.next_fire_at == NOON + timedelta(seconds=1)


def test_catch_up_latest_far_behind_fires_the_latest_missed_slot() -> None:
    behind = NOON - timedelta(days=3)
    now = NOON + timedelta(milliseconds=1500)
    plan = plan_fires(spec(schedule="every 1s", catch_up="latest", start_grace=0), behind, now)

    assert plan.fire == [NOON + timedelta(seconds=1)]
    assert plan.next_fire_at == NOON + timedelta(seconds=2)


@pytest.mark.parametrize("expression", ["* * * * *", "every 1m", "*/1 * * * * *"])
def test_a_cron_job_a_month_behind_replays_its_100_most_recent_slots(expression: str) -> None:
    step = timedelta(seconds=1 if expression.count("*") == 6 else 60)
    job = spec(schedule=expression, catch_up="all", start_grace=0)
    started = time.perf_counter()

    plan = plan_fires(job, NOON - timedelta(days=30), NOON + step / 2)

    assert time.perf_counter() - started < 2.0
    assert plan.fire == [NOON - step * (99 - i) for i in range(100)]
    assert plan.next_fire_at == NOON + step


# --- properties ----------------------------------------------------------------------------------

interval_seconds = st.sampled_from([1, 5, 30, 60, 90, 300, 3600])


@settings(max_examples=200, deadline=None)
@given(
    seconds=interval_seconds,
    behind_slots=st.integers(min_value=0, max_value=400),
    extra=st.floats(min_value=0, max_value=0.999),
    grace=st.sampled_from([0, 1, 30, 60, 600, 3600]),
    catch_up=st.sampled_from(["none", "latest", "all"]),
)
def test_fired_and_missed_slots_are_the_due_slots(
    seconds: int, behind_slots: int, extra: float, grace: int, catch_up: str
) -> None:
    expression = f"every {seconds}s"
    first = NOON - timedelta(seconds=seconds * behind_slots)
    now = NOON + timedelta(seconds=seconds * extra)
    job = spec(schedule=expression, start_grace=grace, catch_up=catch_up)

    plan = plan_fires(job, first, now)

    due = slots_between(expression, first, now)
    on_time = [slot for slot in due if now - slot <= timedelta(seconds=grace)]
    late = [slot for slot in due if slot not in on_time]
    assert plan.fire == sorted(set(plan.fire))
    assert set(plan.fire) <= set(due)
    assert set(plan.missed) <= set(late)
    assert not set(plan.missed) & set(plan.fire)
    if len(late) <= MAX_CATCH_UP:  # beyond that, `missed` may name only the recent ones
        assert sorted(plan.fire + plan.missed) == due
    assert set(on_time) <= set(plan.fire)
    fired_late = [slot for slot in plan.fire if slot in late]
    if catch_up == "none":
        assert fired_late == []
    elif catch_up == "latest":
        assert fired_late == (late[-1:] if not on_time else [])
    else:
        assert fired_late == late[-MAX_CATCH_UP:]
    assert plan.next_fire_at == parse_schedule(expression).next_fire(now, UTC_ZONE)


@settings(max_examples=100, deadline=None)
@given(
    expression=st.sampled_from(["*/5 * * * *", "0 * * * *", "30 2 * * 1-5", "every 7m", "@daily"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    behind=st.integers(min_value=0, max_value=3 * 24 * 3600),
    catch_up=st.sampled_from(["none", "latest", "all"]),
)
def test_the_next_fire_is_always_the_first_slot_after_now(
    expression: str, zone: str, behind: int, catch_up: str
) -> None:
    schedule, tz = parse_schedule(expression), parse_timezone(zone)
    first = schedule.next_fire(NOON - timedelta(seconds=behind + 1), tz)
    assert first is not None

    plan = plan_fires(spec(schedule=expression, timezone=zone, catch_up=catch_up), first, NOON)

    assert plan.next_fire_at == schedule.next_fire(NOON, tz)
    assert all(first <= slot <= NOON for slot in plan.fire + plan.missed)


# --- look-ahead ------------------------------------------------------------------------------


def test_slots_within_the_look_ahead_fire_early_and_the_next_fire_moves_past_them() -> None:
    now = at(12, 0, 59)

    plan = plan_fires(spec(schedule="every 1s"), at(12, 0, 59), now, horizon=at(12, 1, 1))

    assert plan.fire == [at(12, 0, 59), at(12, 1, 0), at(12, 1, 1)]
    assert plan.next_fire_at == at(12, 1, 2)


def test_a_horizon_before_now_changes_nothing() -> None:
    with_past_horizon = plan_fires(spec(), NOON, at(12, 0, 30), horizon=at(11, 0))

    assert with_past_horizon == plan_fires(spec(), NOON, at(12, 0, 30))


def test_catch_up_latest_still_fires_the_missed_slot_when_only_future_slots_follow() -> None:
    job = spec(schedule="every 1m", catch_up="latest", start_grace=10)

    plan = plan_fires(job, at(11, 0), at(12, 0, 59), horizon=at(12, 1, 1))

    assert plan.fire == [at(12, 0), at(12, 1)]
    assert plan.next_fire_at == at(12, 2)


# --- overlap -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overlap", "concurrency", "running", "expected"),
    [
        ("skip", 1, 0, "start"),
        ("skip", 1, 1, "skip"),
        ("skip", 1, 5, "skip"),
        ("skip", 3, 2, "start"),
        ("skip", 3, 3, "skip"),
        ("queue", 1, 0, "start"),
        ("queue", 1, 1, "wait"),
        ("queue", 2, 10, "wait"),
        ("allow", 1, 10, "start"),
    ],
)
def test_overlap_decides_only_once_concurrency_is_used_up(
    overlap: str, concurrency: int, running: int, expected: str
) -> None:
    assert overlap_action(overlap, concurrency, running) == expected


def test_runs_somebody_asked_for_wait_their_turn_instead_of_being_skipped() -> None:
    assert overlap_action("skip", 1, 1, scheduled=True) == "skip"
    assert overlap_action("skip", 1, 1, scheduled=False) == "wait"
    assert overlap_action("skip", 1, 0, scheduled=False) == "start"

"""The monitor's decisions (DESIGN §2 monitor state and flips), as pure functions of a
job's policy, its recent runs and the time. `service.monitor` loads the inputs, calls
these and writes what they return.

The rules, in the order they apply:
- A heartbeat with a schedule expects its next ping at a slot. A cron schedule's slot is
  the one nearest the last ping (a ping a little early counts for the upcoming slot,
  Healthchecks #830/#888); an `every …` schedule counts from the last ping, as
  Healthchecks' "period" does. Past the slot the job is `late`; past the slot plus
  `start_grace` the slot becomes a `missed` run.
- `failure_threshold` consecutive failed or missed runs make a job `down`;
  `recovery_threshold` consecutive successes bring it back `up`; a `new` job goes `up`
  on its first success. Runs missed during Cronkeeper's own outage never count.
- Every change is a flip back-dated to the moment it became true: the run's end, or the
  exact deadline of a missed slot.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronkeeper.domain.jobs import AlertPolicy, JobSpec
from cronkeeper.domain.schedules import Schedule, parse_schedule, parse_timezone
from cronkeeper.domain.states import MonitorState, RunStatus

#: A `deadline_at` meaning "look at this job now" (set when a run finishes and may change
#: the job's state); earlier than any real deadline, so poked jobs are taken first.
POKE = datetime(2000, 1, 1, tzinfo=UTC)
#: Missed slots recorded per job and check, however long nobody pinged (the most recent).
MAX_MISSED = 100
#: Slots examined per check before jumping ahead.
MAX_SLOTS_SCANNED = 10_000
#: Runs that count towards the thresholds (cancelled and skipped runs say nothing).
COUNTED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.MISSED})
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class FinishedRun:
    """A final run as the monitor counts it, newest first in every list."""

    id: uuid.UUID
    status: RunStatus
    at: datetime  # when it ended; for a missed slot, its deadline
    failure_reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in (RunStatus.FAILED, RunStatus.MISSED)


@dataclass(frozen=True)
class Anchor:
    """The last sign of a heartbeat job: a ping (`at`) or a slot already accounted for."""

    at: datetime
    is_slot: bool = False


@dataclass(frozen=True)
class Flip:
    old: MonitorState
    new: MonitorState
    at: datetime
    reason: str
    run_id: uuid.UUID | None = None


def streaks(runs: Sequence[FinishedRun]) -> tuple[int, int]:
    """(consecutive failures, consecutive successes) counted from the newest run."""
    failures = successes = 0
    for run in runs:
        if run.failed and not successes:
            failures += 1
        elif run.status is RunStatus.SUCCEEDED and not failures:
            successes += 1
        else:
            break
    return failures, successes


def runs_needed(policy: AlertPolicy) -> int:
    """How many recent runs the thresholds look at."""
    return max(policy.failure_threshold, policy.recovery_threshold, 1)


def slot_of_ping(schedule: Schedule, spec: JobSpec, at: datetime) -> datetime:
    """The slot a ping at `at` answers: the nearest one, so a ping a little before its
    slot counts for it. Schedules that cannot be walked backwards take the ping as
    answering the slot at or before it."""
    zone = parse_timezone(spec.timezone)
    following = schedule.next_fire(at - _TICK, zone)  # at or after
    before = schedule.prev_fires(at + _TICK, zone, 1)  # at or before
    previous = before[0] if before else None
    if following is None or previous is None:
        return previous or at
    return following if following - at < at - previous else previous


def expected_slot(spec: JobSpec, anchor: Anchor) -> datetime | None:
    """When a heartbeat job is expected to ping next, or None (no schedule)."""
    schedule = parse_schedule(spec.schedule)
    if schedule.kind == "none":
        return None
    period = schedule.period()
    if period is not None:
        return anchor.at + timedelta(seconds=period)
    zone = parse_timezone(spec.timezone)
    answered = anchor.at if anchor.is_slot else slot_of_ping(schedule, spec, anchor.at)
    return schedule.next_fire(answered, zone)


def overdue_slots(spec: JobSpec, anchor: Anchor, now: datetime) -> list[datetime]:
    """The expected slots after `anchor` whose deadline (slot + start_grace) has passed,
    oldest first; at most the MAX_MISSED most recent."""
    grace = timedelta(seconds=spec.start_grace)
    slots: list[datetime] = []
    slot = expected_slot(spec, anchor)
    while slot is not None and slot + grace <= now and len(slots) < MAX_SLOTS_SCANNED:
        slots.append(slot)
        slot = expected_slot(spec, Anchor(slot, is_slot=True))
    return slots[-MAX_MISSED:]


def during_outage(
    slot: datetime, grace: float, outages: Sequence[tuple[datetime, datetime]]
) -> bool:
    """Whether Cronkeeper itself was down while the ping for `slot` could have arrived:
    from a grace (at least a minute) before the slot to its deadline."""
    opens = slot - timedelta(seconds=max(grace, 60.0))
    closes = slot + timedelta(seconds=grace)
    return any(start <= closes and end >= opens for start, end in outages)


def decide(
    state: MonitorState,
    policy: AlertPolicy,
    recent: Sequence[FinishedRun],
    *,
    late_since: datetime | None = None,
    pinged_at: datetime | None = None,
) -> Flip | None:
    """The flip the job's state takes now, or None.

    `recent`: the job's newest counted runs; `late_since`: the slot a heartbeat job is
    overdue for (None if not overdue); `pinged_at`: its last ping, None when a slot has
    passed unanswered since (only a ping brings a `late` job back `up`).
    """
    failures, successes = streaks(recent)
    threshold = policy.failure_threshold
    if state in (MonitorState.NEW, MonitorState.UP, MonitorState.LATE) and failures >= threshold:
        run = recent[failures - threshold]  # the run that made the streak long enough
        return Flip(state, MonitorState.DOWN, run.at, run.failure_reason or "failed", run.id)
    if state is MonitorState.DOWN:
        if successes >= policy.recovery_threshold:
            run = recent[successes - policy.recovery_threshold]
            return Flip(state, MonitorState.UP, run.at, "recovered", run.id)
        return None
    if state is MonitorState.NEW:
        if successes:
            return Flip(state, MonitorState.UP, recent[0].at, "first success", recent[0].id)
        return None
    if state is MonitorState.UP and late_since is not None:
        return Flip(state, MonitorState.LATE, late_since, "late")
    if state is MonitorState.LATE and late_since is None and pinged_at is not None:
        return Flip(state, MonitorState.UP, pinged_at, "ping received")
    return None


def is_flapping(flip_times: Sequence[datetime], policy: AlertPolicy, now: datetime) -> bool:
    """More up/down flips than the job's `flap_threshold` within its `flap_window`."""
    if policy.flap_threshold is None:
        return False
    since = now - timedelta(seconds=policy.flap_window)
    return sum(1 for at in flip_times if at > since) > policy.flap_threshold


def next_realert(down_since: datetime, every: float, now: datetime) -> datetime:
    """The first "still down" reminder time after `now`: down_since + k·every."""
    step = timedelta(seconds=every)
    elapsed = max(0, int((now - down_since) / step))
    return down_since + step * (elapsed + 1)


@dataclass(frozen=True)
class MaintenanceWindow:
    """A period in which jobs are not alerted (`mute`) or, for jobs we run, not fired
    (`skip`). One-off (`starts_at`..`ends_at`) or recurring (`schedule` + `duration_s`)."""

    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    mode: str  # mute | skip
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    schedule: str | None = None
    duration_s: int | None = None
    timezone: str = "UTC"
    job_slugs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def applies_to(self, spec: JobSpec) -> bool:
        """Whether the window names the job (by slug or tag), or names none at all."""
        if not self.job_slugs and not self.tags:
            return True
        return spec.slug in self.job_slugs or bool(set(self.tags) & set(spec.tags))

    def covering(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The (start, end) of the occurrence that covers `at`, or None."""
        if self.schedule is None:
            if self.starts_at and self.ends_at and self.starts_at <= at < self.ends_at:
                return self.starts_at, self.ends_at
            return None
        schedule, zone = parse_schedule(self.schedule), parse_timezone(self.timezone)
        length = timedelta(seconds=self.duration_s or 0)
        starts = schedule.prev_fires(at + _TICK, zone, 1)
        if starts is None:  # cannot walk backwards: the first start after `at - length`
            start = schedule.next_fire(at - length - _TICK, zone)
            starts = [start] if start is not None and start <= at else []
        if starts and at < starts[0] + length:
            return starts[0], starts[0] + length
        return None


def maintenance_at(
    windows: Sequence[MaintenanceWindow], spec: JobSpec, at: datetime, mode: str | None = None
) -> MaintenanceWindow | None:
    """The first window (of `mode`, if given) that covers the job at `at`."""
    for window in windows:
        if mode is not None and window.mode != mode:
            continue
        if window.applies_to(spec) and window.covering(at) is not None:
            return window
    return None

"""The scheduler's decisions: which slots of a due job to fire, and what overlap means.

Pure functions of (schedule, policy, now); the runtime loop only carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.schedules import parse_schedule, parse_timezone

#: `catch_up = all` replays at most this many missed slots (the most recent ones).
MAX_CATCH_UP = 100
#: Slots examined per decision; a job due millions of slots ago jumps ahead instead.
MAX_SLOTS_SCANNED = 10_000


@dataclass(frozen=True)
class FirePlan:
    fire: list[datetime]  # slots to turn into runs now, oldest first
    missed: list[datetime]  # late slots not fired (the most recent MAX_CATCH_UP at most)
    next_fire_at: datetime | None  # the first slot after now


def plan_fires(
    spec: JobSpec, next_fire_at: datetime, now: datetime, horizon: datetime | None = None
) -> FirePlan:
    """Which slots from `next_fire_at` up to `horizon` (default: now) fire, per `catch_up`
    and `start_grace`.

    Slots after `now` (within the scheduler's look-ahead) fire: their runs wait in the
    queue until their time. A past slot is on time while `now - slot <= start_grace`;
    on-time slots always fire. Late slots (the process was down or the job paused) fire
    only as `catch_up` says: `none` never, `latest` the most recent one, `all` up to
    MAX_CATCH_UP of the most recent. However far behind the job is, the work is bounded:
    late slots are found walking backwards from the cutoff, not forwards from the past.
    """
    schedule, zone = parse_schedule(spec.schedule), parse_timezone(spec.timezone)
    horizon = max(now, horizon or now)
    cutoff = now - timedelta(seconds=spec.start_grace)  # slots before this are late
    late: list[datetime] = []
    first: datetime | None = next_fire_at
    if next_fire_at < cutoff:
        recent = schedule.prev_fires(cutoff, zone, MAX_CATCH_UP)
        if recent is None:  # cannot walk backwards: scan forwards, bounded
            return _plan_by_scanning(spec, next_fire_at, cutoff, horizon)
        late = sorted(slot for slot in recent if slot >= next_fire_at)
        first = schedule.next_fire(cutoff - _TICK, zone)
    on_time = _slots_between(spec, first, horizon)
    fire = _with_catch_up(spec, late, on_time, now)
    missed = [slot for slot in late if slot not in fire]
    return FirePlan(fire=fire, missed=missed, next_fire_at=_after(spec, on_time, first, horizon))


_TICK = timedelta(microseconds=1)


def _slots_between(spec: JobSpec, first: datetime | None, horizon: datetime) -> list[datetime]:
    """Slots from `first` up to `horizon` (at most MAX_SLOTS_SCANNED)."""
    schedule, zone = parse_schedule(spec.schedule), parse_timezone(spec.timezone)
    slots: list[datetime] = []
    slot = first
    while slot is not None and slot <= horizon and len(slots) < MAX_SLOTS_SCANNED:
        slots.append(slot)
        slot = schedule.next_fire(slot, zone)
    return slots


def _after(
    spec: JobSpec, slots: list[datetime], first: datetime | None, horizon: datetime
) -> datetime | None:
    """The first slot after `horizon` (the job's next fire)."""
    schedule, zone = parse_schedule(spec.schedule), parse_timezone(spec.timezone)
    if first is None:
        return None
    following = schedule.next_fire(slots[-1], zone) if slots else first
    if following is not None and following <= horizon:  # scan limit hit: jump ahead
        following = schedule.next_fire(horizon, zone)
    return following


def _with_catch_up(
    spec: JobSpec, late: list[datetime], on_time: list[datetime], now: datetime
) -> list[datetime]:
    if spec.catch_up == "latest" and late and not any(slot <= now for slot in on_time):
        return late[-1:] + on_time
    if spec.catch_up == "all":
        return late[-MAX_CATCH_UP:] + on_time
    return on_time


def _plan_by_scanning(
    spec: JobSpec, next_fire_at: datetime, cutoff: datetime, horizon: datetime
) -> FirePlan:
    """plan_fires for schedules that cannot walk backwards (OnCalendar)."""
    slots = _slots_between(spec, next_fire_at, horizon)
    late = [slot for slot in slots if slot < cutoff][-MAX_CATCH_UP:]
    on_time = [slot for slot in slots if slot >= cutoff]
    now = cutoff + timedelta(seconds=spec.start_grace)
    fire = _with_catch_up(spec, late, on_time, now)
    missed = [slot for slot in late if slot not in fire]
    return FirePlan(fire, missed, _after(spec, slots, next_fire_at, horizon))


OverlapAction = Literal["start", "wait", "skip"]


def overlap_action(
    overlap: str, concurrency: int, running: int, *, scheduled: bool = True
) -> OverlapAction:
    """What a due run does when its job already has `running` runs in flight: start;
    wait in the queue (`queue` at the limit); or be skipped (`skip` at the limit).
    `allow` always starts. Runs somebody asked for (manual, replay, trigger) are never
    skipped: at the limit they wait their turn."""
    if overlap == "allow" or running < concurrency:
        return "start"
    return "skip" if overlap == "skip" and scheduled else "wait"

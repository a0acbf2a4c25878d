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
    missed: list[datetime]  # slots that are too late and are not fired
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
    MAX_CATCH_UP of the most recent.
    """
    schedule, zone = parse_schedule(spec.schedule), parse_timezone(spec.timezone)
    horizon = max(now, horizon or now)
    grace = timedelta(seconds=spec.start_grace)
    slots: list[datetime] = []
    slot: datetime | None = next_fire_at
    while slot is not None and slot <= horizon and len(slots) < MAX_SLOTS_SCANNED:
        slots.append(slot)
        slot = schedule.next_fire(slot, zone)
    if slot is not None and slot <= horizon:  # far behind: jump to the present
        slot = schedule.next_fire(horizon, zone)
    on_time = [s for s in slots if now - s <= grace]
    late = [s for s in slots if now - s > grace]
    fire = on_time
    if spec.catch_up == "latest" and late:
        fire = late[-1:] + on_time if not any(s <= now for s in on_time) else on_time
    elif spec.catch_up == "all":
        fire = late[-MAX_CATCH_UP:] + on_time
    missed = [s for s in late if s not in fire]
    return FirePlan(fire=fire, missed=missed, next_fire_at=slot)


OverlapAction = Literal["start", "wait", "skip"]


def overlap_action(overlap: str, concurrency: int, running: int) -> OverlapAction:
    """What a due run does when its job already has `running` runs in flight: start;
    wait in the queue (`queue` at the limit); or be skipped (`skip` at the limit).
    `allow` always starts."""
    if overlap == "allow" or running < concurrency:
        return "start"
    return "skip" if overlap == "skip" else "wait"

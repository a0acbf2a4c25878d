"""The monitor's use cases: check the jobs whose deadline has come (one transaction per
batch) and keep the record of Cronkeeper's own outages.

A check turns passed deadlines into outcomes — missed slots of heartbeat jobs become
`missed` runs, heartbeat runs past `max_runtime` are closed as failed — then applies the
rules of `domain.monitor` to the job's recent runs. A change of state is a flip row,
back-dated to the moment it became true; a flip that should reach people also queues an
alert for the notifier, unless something suppresses it (maintenance, a parent job that
is down, flapping). Slots that fell inside our own outage are recorded as missed runs
marked `during_outage`, and never count or alert.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.domain.durations import format_duration
from cronkeeper.domain.ids import uuid7
from cronkeeper.domain.monitor import (
    Anchor,
    FinishedRun,
    Flip,
    MaintenanceWindow,
    decide,
    during_outage,
    expected_slot,
    is_flapping,
    maintenance_at,
    next_realert,
    overdue_slots,
    runs_needed,
    streaks,
)
from cronkeeper.domain.states import EventType, JobKind, MonitorState, RunSource, RunStatus
from cronkeeper.service.context import Context
from cronkeeper.store import claims
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store import runs as run_store
from cronkeeper.store.engine import Connection
from cronkeeper.store.monitor import MonitoredJob

#: How often a down job whose alert waits for its parent job to recover is looked at.
HELD_RECHECK = timedelta(seconds=60)
#: How many of our own outages are remembered (the newest).
MAX_OUTAGES = 50
TICK_KEY, OUTAGES_KEY = "monitor_tick", "monitor_outages"


# -- our own outages ---------------------------------------------------------------------


async def record_tick(ctx: Context) -> tuple[datetime, datetime] | None:
    """Note that a monitor is alive now; if none was for longer than `ctx.outage_gap`, record
    that gap as our own outage and return it."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        raw = await monitor_store.get_value(conn, TICK_KEY)
        last = datetime.fromisoformat(raw) if raw else None
        gap = None
        if last is not None and now - last > timedelta(seconds=ctx.outage_gap):
            gap = (last, now)
            known = await monitor_store.get_json(conn, OUTAGES_KEY) or []
            known = [*known, [last.isoformat(), now.isoformat()]][-MAX_OUTAGES:]
            await monitor_store.set_value(conn, OUTAGES_KEY, json.dumps(known), now)
        if last is None or now > last:
            await monitor_store.set_value(conn, TICK_KEY, now.isoformat(), now)
    return gap


async def outages(conn: Connection) -> list[tuple[datetime, datetime]]:
    """Our own recorded outages, oldest first."""
    known = await monitor_store.get_json(conn, OUTAGES_KEY) or []
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in known]


async def next_deadline(ctx: Context) -> datetime | None:
    """When the monitor next has something to check."""
    async with ctx.db.read() as conn:
        return await monitor_store.next_deadline(conn)


# -- checks ------------------------------------------------------------------------------


async def check(ctx: Context, limit: int = 200) -> int:
    """Check up to `limit` jobs whose deadline has come; returns how many were checked."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        due = await monitor_store.lock_due_jobs(conn, now, limit)
        if not due:
            return 0
        batch = await _Batch.load(conn, due, now)
        # Jobs that depend on others last: a parent that goes down in this batch (often
        # at the very deadline its child misses) suppresses the child's alert.
        for job in sorted(due, key=lambda job: bool(job.spec.alerts.depends_on)):
            await batch.check(conn, job)
        await batch.write(conn)
    if batch.alerts:
        ctx.wakeups.alerts_pending.set()
    return len(due)


def _watched(job: MonitoredJob, anchor: Anchor) -> bool:
    """Whether the job's slots are watched from `anchor`: not while paused, and a `new`
    job only from its first ping since it became new (a job resumed from `paused` is `new`
    again; its runs from before the pause say nothing about its slots now)."""
    if job.state is MonitorState.PAUSED:
        return False
    if job.state is MonitorState.NEW:
        return anchor.at >= (job.state_since or job.created_at)
    return True


@dataclass
class _Batch:
    """The inputs of one batch of checks, and the rows it will write."""

    now: datetime
    recent: dict[uuid.UUID, list[FinishedRun]]
    anchors: dict[uuid.UUID, Anchor]
    open_runs: dict[uuid.UUID, list[tuple[uuid.UUID, datetime]]]
    windows: dict[uuid.UUID, list[MaintenanceWindow]]
    outages: list[tuple[datetime, datetime]]
    new_runs: list[dict[str, Any]] = field(default_factory=list)
    closings: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[uuid.UUID, str, datetime, str | None, dict[str, Any] | None]] = field(
        default_factory=list
    )
    alerts: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    # Up/down flips of the due jobs within their flap windows (read once for the batch,
    # then kept up to date with the flips this batch records), and those new flips:
    # inserted by `write` in one statement; alerts name theirs by index until then.
    flip_log: dict[uuid.UUID, list[datetime]] = field(default_factory=dict)
    flips: list[dict[str, Any]] = field(default_factory=list)
    # The states this batch gave its jobs, by (project, slug): not written until the end.
    decided: dict[tuple[uuid.UUID, str], MonitorState] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: Connection, due: list[MonitoredJob], now: datetime) -> _Batch:
        ids = [job.id for job in due]
        heartbeats = [job.id for job in due if job.spec.kind is JobKind.HEARTBEAT]
        per_job = max(runs_needed(job.spec.alerts) for job in due)
        window = timedelta(seconds=max(job.spec.alerts.flap_window for job in due))
        return cls(
            now=now,
            recent=await monitor_store.recent_counted_runs(conn, ids, per_job),
            anchors=await monitor_store.anchors(conn, heartbeats),
            open_runs=await monitor_store.open_heartbeat_runs(conn, heartbeats),
            windows=await monitor_store.windows_of(conn, {job.project_id for job in due}),
            outages=await outages(conn),
            flip_log=await monitor_store.flip_log(conn, ids, now - window),
        )

    async def check(self, conn: Connection, job: MonitoredJob) -> None:
        spec, now = job.spec, self.now
        deadlines: list[datetime] = []
        fresh: list[FinishedRun] = []  # runs this check ends, newest last
        late_since = pinged_at = None
        if spec.kind is JobKind.HEARTBEAT:
            fresh += self._close_overrunning(job, deadlines)
            anchor = self.anchors.get(job.id)
            if anchor is not None and _watched(job, anchor):
                first_missed = None  # the first slot this check records as missed (counted)
                for slot in overdue_slots(spec, anchor, now):
                    counted = self._missed(job, slot)
                    first_missed = first_missed or (slot if counted else None)
                    fresh += counted
                    anchor = Anchor(slot, is_slot=True)
                # A slot recorded since the last ping means no ping yet: still overdue.
                pinged_at = None if anchor.is_slot else anchor.at
                late_since = first_missed
                expected = expected_slot(spec, anchor)
                if expected is not None:
                    # A slot inside a `skip` window is not waited for: it will be skipped.
                    windows = self.windows.get(job.project_id, [])
                    skipped = maintenance_at(windows, spec, expected, mode="skip") is not None
                    late = expected <= now and not skipped
                    late_since = late_since or (expected if late else None)
                    grace = timedelta(seconds=spec.start_grace)
                    deadlines.append(expected + grace if expected <= now else expected)
        # Every run this check ends stays in the list: when one check records several
        # missed slots, the flip is dated by the one that made the streak long enough.
        needed = len(fresh) + runs_needed(spec.alerts)
        recent = sorted(fresh, key=lambda run: run.at, reverse=True) + self.recent.get(job.id, [])
        recent = recent[:needed]

        state, since = job.state, job.state_since
        realert_at, flapping_since = job.realert_at, job.flapping_since
        for _ in range(3):  # e.g. new → up, then up → late
            flip = decide(state, spec.alerts, recent, late_since=late_since, pinged_at=pinged_at)
            if flip is None:
                break
            flapping_since, held = await self._flip(conn, job, flip, flapping_since)
            state, since = flip.new, flip.at
            if state is MonitorState.DOWN:
                realert_at = (
                    self._held_until(job, held)
                    if held in ("maintenance", "depends_on")
                    else self._next_reminder(job, since)
                )
        if state is not MonitorState.DOWN:
            realert_at = None
        elif realert_at is not None and realert_at <= now:
            realert_at = await self._while_down(conn, job, since or now)
        if realert_at is not None:
            deadlines.append(realert_at)
        if flapping_since is not None:
            flapping_since = await self._calm_down(conn, job, state, flapping_since, deadlines)

        failures, successes = streaks(recent)
        self.decided[(job.project_id, spec.slug)] = state
        self.jobs.append(
            {
                "id": job.id,
                "monitor_state": state.value,
                "state_since": since,
                "fail_streak": failures,
                "ok_streak": successes,
                "realert_at": realert_at,
                "flapping_since": flapping_since,
                "deadline_at": min(deadlines, default=None),
            }
        )

    def _close_overrunning(self, job: MonitoredJob, deadlines: list[datetime]) -> list[FinishedRun]:
        """Close the job's heartbeat runs that ran past max_runtime without a finish ping."""
        limit = job.spec.max_runtime
        if limit is None:
            return []
        closed = []
        for run_id, started_at in self.open_runs.get(job.id, []):
            ends = started_at + timedelta(seconds=limit)
            if ends > self.now:
                deadlines.append(ends)
                continue
            error = f"no finish ping within max_runtime ({format_duration(limit)})"
            self.closings.append(
                {
                    "id": run_id,
                    "finished_at": ends,
                    "duration_ms": int(limit * 1000),
                    "failure_reason": "max_runtime",
                    "error": error,
                }
            )
            self.events.append((run_id, EventType.RUN_FAILED.value, ends, f"failed: {error}", None))
            closed.append(FinishedRun(run_id, RunStatus.FAILED, ends, "max_runtime"))
        return closed

    def _missed(self, job: MonitoredJob, slot: datetime) -> list[FinishedRun]:
        """Record a slot nobody pinged for: missed, skipped (maintenance `skip`), or
        missed during our own outage (never counted)."""
        spec = job.spec
        deadline = slot + timedelta(seconds=spec.start_grace)
        windows = self.windows.get(job.project_id, [])
        skipped = maintenance_at(windows, spec, slot, mode="skip")
        ours = during_outage(slot, spec.start_grace, self.outages)
        run_id = uuid7(slot)
        if skipped is not None:
            status, reason = RunStatus.SKIPPED, None
            message = f"skipped: inside maintenance window {skipped.name!r}"
        else:
            status, reason = RunStatus.MISSED, "missed"
            message = f"missed: no ping by {deadline.isoformat()} (slot + start_grace)"
            if ours:
                message += "; Cronkeeper itself was down then, so this is not alerted"
        self.new_runs.append(
            {
                "id": run_id,
                "project_id": job.project_id,
                "job_id": job.id,
                "source": RunSource.HEARTBEAT.value,
                "status": status.value,
                "scheduled_for": slot,
                "ordered_at": slot,
                "queue": spec.queue,
                "not_before": slot,
                "finished_at": deadline,
                "attempts": 0,
                "max_attempts": 1,
                "failure_reason": reason,
                "error": message,
                "during_outage": ours,
                "created_at": self.now,
            }
        )
        self.events.append((run_id, EventType.RUN_FAILED.value, deadline, message, None))
        if skipped is not None or ours:
            return []
        return [FinishedRun(run_id, RunStatus.MISSED, deadline, "missed")]

    async def _flip(
        self, conn: Connection, job: MonitoredJob, flip: Flip, flapping_since: datetime | None
    ) -> tuple[datetime | None, str | None]:
        """Record the flip and queue its alert unless suppressed; returns flapping_since and
        why the flip was not alerted (None if it was)."""
        suppressed = None
        if flip.new in (MonitorState.DOWN, MonitorState.UP):
            suppressed = await self._suppressed(conn, job, flip.at)
        up_or_down = flip.new in (MonitorState.UP, MonitorState.DOWN) and flip.old in (
            MonitorState.UP,
            MonitorState.DOWN,
            MonitorState.LATE,
        )
        if up_or_down:
            window_start = self.now - timedelta(seconds=job.spec.alerts.flap_window)
            times = [*self._flip_times(job, window_start), flip.at]
            if is_flapping(times, job.spec.alerts, self.now):
                if flapping_since is None and suppressed is None:
                    self._alert(job, "flapping", self.now, reason="flapping", run_id=flip.run_id)
                flapping_since = flapping_since or self.now
                suppressed = suppressed or "flapping"
            elif flapping_since is not None:
                suppressed = suppressed or "flapping"
        told = False  # an up is announced only when its down was
        if flip.new is MonitorState.UP and flip.old is MonitorState.DOWN:
            down_since = job.state_since if job.state is MonitorState.DOWN else None
            told = any(
                alert["job_id"] == job.id and alert["event"] == "down" for alert in self.alerts
            ) or await monitor_store.down_alert_since(conn, job.id, down_since or flip.at)
        flip_id = len(self.flips)  # its index until `write` inserts it
        self.flips.append(
            {
                "job_id": job.id,
                "old_state": flip.old.value,
                "new_state": flip.new.value,
                "reason": flip.reason[:64],
                "run_id": flip.run_id,
                "created_at": flip.at,
                "suppressed_reason": suppressed,
            }
        )
        if flip.new in (MonitorState.UP, MonitorState.DOWN) and flip.old is not MonitorState.NEW:
            self.flip_log.setdefault(job.id, []).append(flip.at)
        if suppressed is not None:
            return flapping_since, suppressed
        if flip.new is MonitorState.DOWN:
            deliver = flip.at + timedelta(seconds=job.spec.alerts.delay)
            self._alert(job, "down", deliver, flip.reason, flip.run_id, flip_id, created=flip.at)
        elif told:
            self._alert(job, "up", flip.at, flip.reason, flip.run_id, flip_id, created=flip.at)
        return flapping_since, None

    def _flip_times(self, job: MonitoredJob, since: datetime) -> list[datetime]:
        """When the job flipped between up and down after `since` (flapping): what
        `monitor_store.flip_times` would read, this batch's own flips included."""
        return [at for at in self.flip_log.get(job.id, []) if at > since]

    def _next_reminder(self, job: MonitoredJob, since: datetime) -> datetime | None:
        every = job.spec.alerts.realert_every
        return next_realert(since, every, self.now) if every else None

    def _held_until(self, job: MonitoredJob, reason: str | None) -> datetime:
        """When to look again at a down job whose alert was held back: the end of the
        maintenance window, or in a minute (a parent job that is down)."""
        if reason == "maintenance":
            window = maintenance_at(self.windows.get(job.project_id, []), job.spec, self.now)
            occurrence = window.covering(self.now) if window is not None else None
            if occurrence is not None:
                return occurrence[1]
            return self.now
        return self.now + HELD_RECHECK

    async def _while_down(
        self, conn: Connection, job: MonitoredJob, since: datetime
    ) -> datetime | None:
        """A down job's look-again time has come: tell about it now if its down alert was
        held back (the window is over, the parent is up again) and it was never told; or
        remind (`realert_every`). Returns the next time to look."""
        held = await self._suppressed(conn, job, self.now)
        if held is not None or job.flapping_since is not None:
            return self._held_until(job, held) if held else self._next_reminder(job, since)
        if not await monitor_store.down_alert_since(conn, job.id, since):
            self._alert(job, "down", self.now, reason="down; its alert was held back until now")
        elif job.spec.alerts.realert_every:
            self._alert(job, "down", self.now, reason="still down", reminder=True)
        return self._next_reminder(job, since)

    async def _suppressed(self, conn: Connection, job: MonitoredJob, at: datetime) -> str | None:
        """Why an alert about the job at `at` reaches nobody, or None."""
        if maintenance_at(self.windows.get(job.project_id, []), job.spec, at) is not None:
            return "maintenance"
        parents = job.spec.alerts.depends_on
        if parents:
            states = await monitor_store.states_by_slug(conn, job.project_id, parents)
            for slug in parents:
                if (job.project_id, slug) in self.decided:
                    states[slug] = self.decided[(job.project_id, slug)].value
            if any(state == MonitorState.DOWN.value for state in states.values()):
                return "depends_on"
        return None

    async def _calm_down(
        self,
        conn: Connection,
        job: MonitoredJob,
        state: MonitorState,
        flapping_since: datetime,
        deadlines: list[datetime],
    ) -> datetime | None:
        """End flapping once the job has not flipped for a whole window; a job that
        settled down is told about once more."""
        window = timedelta(seconds=job.spec.alerts.flap_window)
        times = self._flip_times(job, self.now - window)
        if times:
            deadlines.append(max(times) + window)
            return flapping_since
        if state is MonitorState.DOWN and await self._suppressed(conn, job, self.now) is None:
            self._alert(job, "down", self.now, reason="still down after flapping")
        return None

    def _alert(
        self,
        job: MonitoredJob,
        event: str,
        deliver_at: datetime,
        reason: str | None = None,
        run_id: uuid.UUID | None = None,
        flip_id: int | None = None,
        *,
        created: datetime | None = None,
        reminder: bool = False,
    ) -> None:
        self.alerts.append(
            {
                "project_id": job.project_id,
                "job_id": job.id,
                "flip_id": flip_id,
                "run_id": run_id,
                "event": event,
                "reminder": reminder,
                "reason": reason,
                "created_at": created or self.now,
                "deliver_at": deliver_at,
            }
        )

    async def write(self, conn: Connection) -> None:
        flip_ids = await monitor_store.insert_flips(conn, self.flips)
        for alert in self.alerts:  # the flip's index → its id
            if alert["flip_id"] is not None:
                alert["flip_id"] = flip_ids[alert["flip_id"]]
        inserted = await claims.insert_slot_runs(conn, self.new_runs)
        await monitor_store.fail_running_runs(conn, self.closings)
        events = [event for event in self.events if event[0] in inserted]
        openings = [(run_id, kind, at, message or "") for run_id, kind, at, message, _ in events]
        await run_store.insert_opening_events(conn, openings)
        closed = {row["id"] for row in self.closings}
        await run_store.append_events_many(conn, [e for e in self.events if e[0] in closed])
        await monitor_store.insert_alerts(conn, self.alerts)
        await monitor_store.update_jobs(conn, self.jobs)

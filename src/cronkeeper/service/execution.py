"""Use cases of the runtime: fire due slots, claim runs, record outcomes, reap lost runs.

Each function is one transaction. The loops in `cronkeeper.runtime` call these and
nothing else touches run state.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from cronkeeper.clock import Clock
from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.ids import uuid7
from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.masking import mask_target
from cronkeeper.domain.models import DueJob, Run
from cronkeeper.domain.monitor import MaintenanceWindow, maintenance_at
from cronkeeper.domain.outcomes import AttemptRequest, Outcome
from cronkeeper.domain.scheduling import plan_fires
from cronkeeper.domain.settlement import Settlement, settle
from cronkeeper.domain.states import AttemptStatus, EventType, RunStatus, is_final
from cronkeeper.service.context import Context
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store import runs as run_store


@dataclass(frozen=True)
class ClaimedRun:
    """A run this node now executes, with what the executor needs."""

    run: Run
    spec: JobSpec
    project: str
    claimed_at: datetime | None = None  # when this attempt was claimed

    @property
    def starts_at(self) -> datetime | None:
        """When the attempt is to start: its `not_before` if it was claimed ahead of it."""
        if self.claimed_at is None:
            return None
        due = self.run.not_before
        return due if due is not None and due > self.claimed_at else self.claimed_at

    def attempt_request(self) -> AttemptRequest:
        """The executor's input for the run's current attempt."""
        return AttemptRequest(
            run_id=self.run.id,
            project=self.project,
            job_slug=self.spec.slug,
            job_name=self.spec.name,
            kind=self.spec.kind.value,
            target=self.spec.target or {},
            timeout=attempt_timeout(self.spec, self.run, self.claimed_at),
            attempt=self.run.attempts,
            max_attempts=self.run.max_attempts,
            scheduled_for=self.run.scheduled_for,
            traceparent=f"00-{self.run.trace_id or new_trace_id()}-{secrets.token_hex(8)}-01",
            payload=self.run.payload.get("input") if isinstance(self.run.payload, dict) else None,
        )


def attempt_timeout(spec: JobSpec, run: Run, claimed_at: datetime | None) -> float:
    """The attempt's timeout: the job's, cut short where the run's `max_runtime` (counted
    from its first attempt, retries and backoff included) ends sooner."""
    if spec.max_runtime is None or run.started_at is None or claimed_at is None:
        return spec.timeout
    left = spec.max_runtime - (claimed_at - run.started_at).total_seconds()
    return max(0.001, min(spec.timeout, left))


def new_trace_id() -> str:
    """A W3C trace id (32 hex digits)."""
    return secrets.token_hex(16)


def new_run_values(
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    spec: JobSpec,
    *,
    source: str,
    now: datetime,
    scheduled_for: datetime | None = None,
    status: RunStatus = RunStatus.QUEUED,
) -> dict[str, Any]:
    """Column values of a fresh run of `spec`."""
    return {
        "id": uuid7(scheduled_for or now),  # sorts runs of one pass by their slot
        "project_id": project_id,
        "job_id": job_id,
        "source": source,
        "status": status.value,
        "scheduled_for": scheduled_for,
        "ordered_at": scheduled_for or now,
        "queue": spec.queue,
        "queued_at": now,
        "not_before": scheduled_for or now,  # the claim order (an index) has no NULLs
        "finished_at": now if is_final(status) else None,
        "attempts": 0,
        "max_attempts": spec.retry.max_attempts,
        "trace_id": new_trace_id(),
        "created_at": now,
    }


#: The scheduler creates runs this far ahead of their slot; they wait in the queue
#: (`not_before` = the slot) so a worker can claim them ahead and start them at the exact
#: second. Ten seconds covers creating 10,000 runs due in the same second (DESIGN §6).
LOOKAHEAD = timedelta(seconds=10)


async def fire_due_slots(ctx: Context, limit: int = 2000, lookahead: timedelta = LOOKAHEAD) -> int:
    """Turn every slot due by now + `lookahead` into a queued run (at most once per slot)
    and move each job's next fire past it; late slots not replayed become `missed` runs
    (during our own outage), slots inside a `skip` maintenance window `skipped` runs.
    Returns how many runs were queued. On SQLite the whole transaction is one call on the
    connection's thread."""
    now = ctx.clock.now()
    horizon = now + lookahead
    if claims.on_thread(ctx.db):
        done = await ctx.db.write_on_thread(partial(_fire_on_thread, now, horizon, limit))
    else:
        async with ctx.db.write() as conn:
            done = _SlotPass(await claims.due_jobs(conn, horizon, limit))
            if done.due:
                projects = {job.project_id for job in done.due}
                done.plan(await monitor_store.windows_of(conn, projects), now, horizon)
                await claims.advance_next_fires(conn, done.moves)
                done.inserted = await claims.insert_slot_runs(conn, done.rows)
                await run_store.insert_opening_events(conn, done.openings(now))
    if not done.due:
        return 0
    oldest = min(job.next_fire_at for job in done.due)
    ctx.metrics.scheduler_lag.set(max(0.0, (now - oldest).total_seconds()))
    return sum(1 for row in done.rows if row["id"] in done.inserted and row["status"] == "queued")


def _fire_on_thread(
    now: datetime, horizon: datetime, limit: int, db: sqlite3.Connection
) -> _SlotPass:
    """`fire_due_slots`' transaction on SQLite's thread, inside `write_on_thread`'s."""
    done = _SlotPass(claims.sqlite_due_jobs(db, horizon, limit))
    if done.due:
        projects = {job.project_id for job in done.due}
        done.plan(monitor_store.sqlite_windows_of(db, projects), now, horizon)
        claims.sqlite_advance_next_fires(db, done.moves)
        done.inserted = claims.sqlite_insert_slot_runs(db, done.rows)
        run_store.sqlite_insert_opening_events(db, done.openings(now))
    return done


@dataclass
class _SlotPass:
    """One pass of the scheduler: the due jobs, the runs of their slots, each job's move
    of its next fire (job id, from, to), and which runs were really inserted."""

    due: list[DueJob]
    rows: list[dict[str, Any]] = field(default_factory=list)
    moves: list[tuple[uuid.UUID, datetime, datetime | None]] = field(default_factory=list)
    inserted: set[uuid.UUID] = field(default_factory=set)

    def plan(
        self, windows: dict[uuid.UUID, list[MaintenanceWindow]], now: datetime, horizon: datetime
    ) -> None:
        """The runs and moves of every due job's slots up to `horizon`."""
        for job in self.due:
            plan = plan_fires(job.spec, job.next_fire_at, now, horizon)
            skips = windows.get(job.project_id, [])
            self.rows += [_slot_run(job, slot, now, skips) for slot in plan.fire]
            self.rows += [_missed_run(job, slot, now) for slot in plan.missed]
            self.moves.append((job.id, job.next_fire_at, plan.next_fire_at))

    def openings(self, now: datetime) -> list[tuple[uuid.UUID, str, datetime, str]]:
        """The first event of each run inserted."""
        return [(row["id"], *_opening(row, now)) for row in self.rows if row["id"] in self.inserted]


def _scheduled(job: DueJob, slot: datetime, now: datetime, status: RunStatus) -> dict[str, Any]:
    """A slot run's columns; every slot run has the same keys, as the one INSERT of a pass
    takes its columns from its first row (the others' extra keys would be dropped)."""
    values = new_run_values(
        job.project_id,
        job.id,
        job.spec,
        source="schedule",
        now=now,
        scheduled_for=slot,
        status=status,
    )
    values.update(failure_reason=None, during_outage=False, error=None)
    return values


def _slot_run(
    job: DueJob, slot: datetime, now: datetime, windows: list[MaintenanceWindow]
) -> dict[str, Any]:
    """The run of a slot: queued, or skipped inside a maintenance window of mode `skip`."""
    window = maintenance_at(windows, job.spec, slot, mode="skip")
    values = _scheduled(job, slot, now, RunStatus.QUEUED if window is None else RunStatus.SKIPPED)
    if window is not None:
        values["error"] = f"skipped: inside maintenance window {window.name!r}"
    return values


def _missed_run(job: DueJob, slot: datetime, now: datetime) -> dict[str, Any]:
    """A slot that came and went while no scheduler was running (or keeping up), not
    replayed per the job's catch_up: recorded as missed during our own outage, which
    never alerts."""
    values = _scheduled(job, slot, now, RunStatus.MISSED)
    values["failure_reason"] = FailureReason.MISSED.value
    values["during_outage"] = True
    values["error"] = (
        f"missed: Cronkeeper was not running (or not keeping up) at this slot, and "
        f"catch_up={job.spec.catch_up!r} does not replay it"
    )
    return values


def _opening(row: dict[str, Any], now: datetime) -> tuple[str, datetime, str]:
    """The first event of a run the scheduler created: (type, at, message)."""
    if row["status"] == RunStatus.QUEUED.value:
        return EventType.RUN_QUEUED.value, now, "queued (schedule)"
    if row["status"] == RunStatus.MISSED.value:
        return EventType.RUN_FAILED.value, now, row["error"]
    return EventType.LOG.value, now, row["error"]


SKIPPED_MESSAGE = (
    "skipped: overlap policy 'skip' and the job already has its maximum number of runs in flight"
)


async def claim_runs(
    ctx: Context,
    *,
    node: str,
    queues: list[str],
    limit: int,
    lease: float,
    ahead: float = 0.0,
) -> list[ClaimedRun]:
    """Claim up to `limit` queued runs due within `ahead` seconds for this node and open
    their attempts (a run claimed ahead starts at its `not_before`: `ClaimedRun.starts_at`);
    due runs that their job's overlap policy drops are recorded as skipped.

    On SQLite the whole transaction is one call on the connection's thread."""
    asked = _ClaimRequest(node, queues, limit, lease, ahead)
    if claims.on_thread(ctx.db):
        return await ctx.db.write_on_thread(partial(_claim_on_thread, ctx.clock, asked))
    async with ctx.db.write() as conn:
        now = ctx.clock.now()  # after the write lock: started_at is when the run really starts
        claim = await claims.claim_runs(conn, **asked.claim_arguments(now))
        specs = await job_store.specs_by_id(conn, list({run.job_id for run in claim.claimed}))
        await run_store.append_events_many(conn, _claim_events(claim, now, node))
    return _claimed(claim, specs, now)


def _claim_on_thread(
    clock: Clock, asked: _ClaimRequest, db: sqlite3.Connection
) -> list[ClaimedRun]:
    """`claim_runs`' transaction on SQLite's thread, inside `write_on_thread`'s transaction
    (the clock is read after the write lock there too)."""
    now = clock.now()
    claim = claims.sqlite_claim_runs(db, **asked.claim_arguments(now))
    specs = job_store.sqlite_specs_by_id(db, list({run.job_id for run in claim.claimed}))
    run_store.sqlite_append_events_many(db, _claim_events(claim, now, asked.node))
    return _claimed(claim, specs, now)


@dataclass(frozen=True)
class _ClaimRequest:
    """What `claim_runs` was asked for."""

    node: str
    queues: list[str]
    limit: int
    lease: float
    ahead: float

    def claim_arguments(self, now: datetime) -> dict[str, Any]:
        """The store's claim arguments at `now`."""
        return {
            "node": self.node,
            "now": now,
            "lease_until": now + timedelta(seconds=self.lease + self.ahead),
            "queues": self.queues,
            "limit": self.limit,
            "due_by": now + timedelta(seconds=self.ahead),
        }


def _claim_events(
    claim: claims.Claim, now: datetime, node: str
) -> list[tuple[uuid.UUID, str, datetime, str, None]]:
    """The events of a claim: a log line per skipped run, attempt_started per claimed one."""
    events = [(run_id, EventType.LOG.value, now, SKIPPED_MESSAGE, None) for run_id in claim.skipped]
    events += [
        (
            run.id,
            EventType.ATTEMPT_STARTED.value,
            max(now, run.not_before or now),
            f"attempt {run.attempts} of {run.max_attempts} started on {node}",
            None,
        )
        for run in claim.claimed
    ]
    return events


def _claimed(
    claim: claims.Claim, specs: dict[uuid.UUID, tuple[JobSpec, str]], now: datetime
) -> list[ClaimedRun]:
    return [
        ClaimedRun(run, *specs[run.job_id], claimed_at=now)
        for run in claim.claimed
        if run.job_id in specs
    ]


async def next_queued_at(
    ctx: Context, queues: list[str], after: datetime | None = None
) -> datetime | None:
    """When the earliest queued run of these queues (not due before `after`) may start."""
    async with ctx.db.read() as conn:
        return await claims.next_queued_at(conn, queues, after)


async def renew_leases(
    ctx: Context, *, node: str, run_ids: list[uuid.UUID], lease: float
) -> set[uuid.UUID]:
    """Extend this node's leases; the result omits runs that were cancelled or reaped."""
    until = ctx.clock.now() + timedelta(seconds=lease)
    async with ctx.db.write() as conn:
        return await claims.renew_leases(conn, node, run_ids, until)


@dataclass(frozen=True)
class Finished:
    """An attempt that has ended, waiting to be recorded."""

    claimed: ClaimedRun
    outcome: Outcome
    started_at: datetime
    ended_at: datetime | None = None  # when the attempt ended (default: when recorded)

    def ended(self, recorded_at: datetime) -> datetime:
        """When the attempt ended: the run's times are the attempt's, not the recorder's
        (outcomes wait a moment to be written many at once)."""
        return self.ended_at or recorded_at


async def record_outcome(
    ctx: Context,
    claimed: ClaimedRun,
    outcome: Outcome,
    *,
    node: str | None,
    random: Callable[[], float],
    started_at: datetime,
) -> Settlement | None:
    """Record one attempt (see `record_outcomes`)."""
    return (
        await record_outcomes(
            ctx, [Finished(claimed, outcome, started_at)], node=node, random=random
        )
    )[0]


async def record_outcomes(
    ctx: Context, finished: list[Finished], *, node: str | None, random: Callable[[], float]
) -> list[Settlement | None]:
    """Record attempts and move each run on (done, retry later, or failed), all in one
    transaction (group commit). A None in the result: that run was no longer ours
    (cancelled or reaped meanwhile) and its outcome was dropped.

    On SQLite the whole transaction is one call on the connection's thread
    (`_record_on_thread`); elsewhere the same statements go one by one."""
    if claims.on_thread(ctx.db):
        recorded = await ctx.db.write_on_thread(
            partial(_record_on_thread, ctx.clock, finished, node, random)
        )
    else:
        async with ctx.db.write() as conn:
            recording = _Recording.of(finished, ctx.clock.now(), random)
            recorded = recording.rows(await claims.finish_runs(conn, node, recording.values))
            await run_store.insert_attempts(conn, recorded.attempts)
            await run_store.append_events_many(conn, recorded.events)
            await claims.set_last_runs(conn, recorded.last_runs)
    for claimed, status, run_values in recorded.counted:
        count_finished_run(ctx, claimed.project, claimed.spec.slug, status, run_values)
    if any(status is not RunStatus.SUCCEEDED for _, status, _ in recorded.counted):
        ctx.wakeups.runs_finished.set()  # the monitor looks at failures at once
    return recorded.decisions


def _record_on_thread(
    clock: Clock,
    finished: list[Finished],
    node: str | None,
    random: Callable[[], float],
    db: sqlite3.Connection,
) -> _Recorded:
    """`record_outcomes`' transaction on SQLite's thread, inside `write_on_thread`'s
    transaction (the clock is read there too: after the write lock, as on the other path)."""
    recording = _Recording.of(finished, clock.now(), random)
    recorded = recording.rows(claims.sqlite_finish_runs(db, node, recording.values))
    run_store.sqlite_insert_attempts(db, recorded.attempts)
    run_store.sqlite_append_events_many(db, recorded.events)
    claims.sqlite_set_last_runs(db, recorded.last_runs)
    return recorded


@dataclass
class _Recorded:
    """What recording a batch writes besides the runs, and what follows its commit."""

    decisions: list[Settlement | None] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[uuid.UUID, str, datetime, str | None, dict[str, Any] | None]] = field(
        default_factory=list
    )
    last_runs: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    counted: list[tuple[ClaimedRun, RunStatus, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Recording:
    """A batch of ended attempts, each settled, and the columns each sets on its run."""

    now: datetime
    planned: list[tuple[Finished, Settlement]]
    values: dict[uuid.UUID, dict[str, Any]]

    @classmethod
    def of(cls, finished: list[Finished], now: datetime, random: Callable[[], float]) -> _Recording:
        planned = [
            (
                item,
                settle(item.claimed.run, item.claimed.spec, item.outcome, item.ended(now), random),
            )
            for item in finished
        ]
        values = {
            item.claimed.run.id: _run_values(
                item.claimed.run, decision, item.outcome, item.ended(now), item.started_at
            )
            for item, decision in planned
        }
        return cls(now, planned, values)

    def rows(self, ours: set[uuid.UUID]) -> _Recorded:
        """The attempts, events and last runs of the runs still `ours` (the others' outcomes
        are dropped: None among the decisions)."""
        recorded = _Recorded()
        for item, decision in self.planned:
            run = item.claimed.run
            if run.id not in ours:
                recorded.decisions.append(None)
                continue
            recorded.decisions.append(decision)
            ended = item.ended(self.now)
            recorded.attempts.append(_attempt_values(run, item.outcome, item.started_at, ended))
            recorded.events += [
                (run.id, EventType.LOG.value, line.at, line.message, {"level": line.level})
                for line in item.outcome.logs
            ]
            recorded.events += [
                (run.id, kind.value, ended, message, data)
                for kind, message, data in decision.events
            ]
            if decision.final:
                recorded.last_runs.append((run.job_id, run.id))
                recorded.counted.append((item.claimed, decision.status, self.values[run.id]))
        return recorded


def count_finished_run(
    ctx: Context, project: str, job: str, status: RunStatus, values: dict[str, Any]
) -> None:
    """Feed a run that reached a final status (its written column values) into the metrics."""
    duration, drift = values.get("duration_ms"), values.get("drift_ms")
    ctx.metrics.run_finished(
        project,
        job,
        status.value,
        None if duration is None else duration / 1000,
        None if drift is None else drift / 1000,
        ctx.clock.now().timestamp(),
    )


def _run_values(
    run: Run, decision: Settlement, outcome: Outcome, now: datetime, attempt_started: datetime
) -> dict[str, Any]:
    """Every column a finished attempt sets on its run (the same keys whatever the outcome,
    so a batch of them is one executemany). The first attempt records when the run really
    started (a run claimed ahead had its planned start until now)."""
    started_at = attempt_started if run.attempts <= 1 else run.started_at
    drift = None
    if run.scheduled_for is not None and started_at is not None:
        drift = int((started_at - run.scheduled_for).total_seconds() * 1000)
    values: dict[str, Any] = {
        "started_at": started_at,
        "status": decision.status.value,
        "failure_reason": decision.failure_reason,
        "error": decision.error,
        "payload": _stored_payload(run, outcome),
        "drift_ms": drift,
        "lease_expires_at": None,
    }
    if decision.final:
        duration = int((now - (started_at or now)).total_seconds() * 1000)
        values.update(
            finished_at=now, duration_ms=duration, node=run.node, not_before=run.not_before
        )
    else:  # back to the queue until the retry is due
        values.update(finished_at=None, duration_ms=None, node=None, not_before=decision.not_before)
    return values


def _stored_payload(run: Run, outcome: Outcome) -> Any:
    """The resolved request with secrets masked, keeping any input the run was given."""
    payload = dict(run.payload) if isinstance(run.payload, dict) else {}
    if outcome.resolved is not None:
        payload["request"] = mask_target(outcome.resolved)
    return payload or None


def _attempt_values(
    run: Run, outcome: Outcome, started_at: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "number": run.attempts,
        "status": outcome.status.value,
        "failure_reason": outcome.failure_reason.value if outcome.failure_reason else None,
        "status_code": outcome.status_code,
        "exit_code": outcome.exit_code,
        "latency_ms": outcome.latency_ms,
        "body_preview": outcome.body_preview,
        "response_headers": outcome.response_headers or None,
        "error_class": outcome.error_class,
        "error": outcome.error,
        "started_at": started_at,
        "finished_at": now,
    }


async def reap_lost_runs(ctx: Context, random: Callable[[], float], limit: int = 100) -> int:
    """Fail (and retry per policy) runs whose node stopped renewing its lease."""
    now = ctx.clock.now()
    async with ctx.db.read() as conn:
        lost = await claims.expired_leases(conn, now, limit)
        specs = await job_store.specs_by_id(conn, list({run.job_id for run in lost}))
    by_node: dict[str | None, list[Finished]] = {}
    for run in lost:
        if run.job_id not in specs:
            continue
        outcome = Outcome(
            status=AttemptStatus.EXCEPTION,
            failure_reason=FailureReason.NODE_LOST,
            error_class="cronkeeper.NodeLost",
            error=f"node {run.node} stopped renewing its lease (crashed or hung)",
        )
        finished = Finished(ClaimedRun(run, *specs[run.job_id]), outcome, run.started_at or now)
        by_node.setdefault(run.node, []).append(finished)
    reaped = 0
    for node, items in by_node.items():  # one transaction per lost node
        decisions = await record_outcomes(ctx, items, node=node, random=random)
        reaped += sum(decision is not None for decision in decisions)
    return reaped


async def next_due_at(ctx: Context) -> datetime | None:
    """When the earliest active job is next due."""
    async with ctx.db.read() as conn:
        return await claims.next_due_at(conn)


async def release_runs(ctx: Context, *, node: str, run_ids: list[uuid.UUID]) -> int:
    """Hand this node's unfinished runs back to the queue (shutdown past the drain bound);
    the interrupted attempt does not count."""
    now = ctx.clock.now()
    released = 0
    async with ctx.db.write() as conn:
        for run_id in run_ids:
            if await claims.release_run(conn, run_id, node):
                released += 1
                message = f"released by {node} at shutdown; the attempt will run again"
                await run_store.append_events(
                    conn, run_id, [(EventType.LOG.value, now, message, None)]
                )
    return released

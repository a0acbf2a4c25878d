"""Use cases of the runtime: fire due slots, claim runs, record outcomes, reap lost runs.

Each function is one transaction. The loops in `cronkeeper.runtime` call these and
nothing else touches run state.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.ids import uuid7
from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.masking import mask_target
from cronkeeper.domain.models import DueJob, Run
from cronkeeper.domain.outcomes import AttemptRequest, Outcome
from cronkeeper.domain.scheduling import overlap_status, plan_fires
from cronkeeper.domain.settlement import Settlement, settle
from cronkeeper.domain.states import AttemptStatus, EventType, RunStatus
from cronkeeper.service.context import Context
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import runs as run_store
from cronkeeper.store.engine import Connection


@dataclass(frozen=True)
class ClaimedRun:
    """A run this node now executes, with what the executor needs."""

    run: Run
    spec: JobSpec
    project: str

    def attempt_request(self) -> AttemptRequest:
        """The executor's input for the run's current attempt."""
        return AttemptRequest(
            run_id=self.run.id,
            project=self.project,
            job_slug=self.spec.slug,
            job_name=self.spec.name,
            kind=self.spec.kind.value,
            target=self.spec.target or {},
            timeout=self.spec.timeout,
            attempt=self.run.attempts,
            max_attempts=self.run.max_attempts,
            scheduled_for=self.run.scheduled_for,
            traceparent=f"00-{self.run.trace_id or new_trace_id()}-{secrets.token_hex(8)}-01",
            payload=self.run.payload.get("input") if isinstance(self.run.payload, dict) else None,
        )


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
        "id": uuid7(now),
        "project_id": project_id,
        "job_id": job_id,
        "source": source,
        "status": status.value,
        "scheduled_for": scheduled_for,
        "ordered_at": scheduled_for or now,
        "queue": spec.queue,
        "queued_at": now,
        "finished_at": None if status is RunStatus.QUEUED else now,
        "attempts": 0,
        "max_attempts": spec.retry.max_attempts,
        "trace_id": new_trace_id(),
        "created_at": now,
    }


async def fire_due_slots(ctx: Context, limit: int = 2000) -> int:
    """Turn every due slot into a run (queued, or skipped by the overlap policy) and move
    each job's next fire forward. Returns how many runs were created."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        due = await claims.due_jobs(conn, now, limit)
        if not due:
            return 0
        in_flight = await run_store.count_in_flight(conn, [job.id for job in due])
        rows = []
        for job in due:
            rows += _slot_runs(job, now, in_flight)
            plan_next = plan_fires(job.spec, job.next_fire_at, now).next_fire_at
            await claims.advance_next_fire(conn, job.id, job.next_fire_at, plan_next)
        created = await claims.insert_slot_runs(conn, rows)
        await _first_events(conn, rows, now)
    oldest = min(job.next_fire_at for job in due)
    ctx.metrics.scheduler_lag.set(max(0.0, (now - oldest).total_seconds()))
    return created


def _slot_runs(job: DueJob, now: datetime, in_flight: dict[uuid.UUID, int]) -> list[dict[str, Any]]:
    rows = []
    for slot in plan_fires(job.spec, job.next_fire_at, now).fire:
        status = overlap_status(job.spec, in_flight.get(job.id, 0))
        if status is RunStatus.QUEUED:
            in_flight[job.id] = in_flight.get(job.id, 0) + 1
        rows.append(
            new_run_values(
                job.project_id,
                job.id,
                job.spec,
                source="schedule",
                now=now,
                scheduled_for=slot,
                status=status,
            )
        )
    return rows


async def _first_events(conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
    """The opening event of each new run that really got inserted (not a duplicate slot)."""
    inserted = {run.id for run in await run_store.runs_by_id(conn, [r["id"] for r in rows])}
    entries = []
    for row in rows:
        if row["id"] not in inserted:
            continue
        if row["status"] == RunStatus.SKIPPED.value:
            entries.append((row["id"], EventType.LOG.value, now, SKIPPED_MESSAGE))
        else:
            entries.append(
                (row["id"], EventType.RUN_QUEUED.value, now, f"queued ({row['source']})")
            )
    await run_store.insert_opening_events(conn, entries)


SKIPPED_MESSAGE = (
    "skipped: overlap policy 'skip' and the job already has its maximum number of runs in flight"
)


async def claim_runs(
    ctx: Context, *, node: str, queues: list[str], limit: int, lease: float
) -> list[ClaimedRun]:
    """Claim up to `limit` queued runs for this node and open their attempts."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        claimed = await claims.claim_runs(
            conn,
            node=node,
            now=now,
            lease_until=now + timedelta(seconds=lease),
            queues=queues,
            limit=limit,
        )
        specs = await job_store.specs_by_id(conn, list({run.job_id for run in claimed}))
        for run in claimed:
            message = f"attempt {run.attempts} of {run.max_attempts} started on {node}"
            await run_store.append_events(
                conn, run.id, [(EventType.ATTEMPT_STARTED.value, now, message, None)]
            )
    return [ClaimedRun(run, *specs[run.job_id]) for run in claimed if run.job_id in specs]


async def renew_leases(
    ctx: Context, *, node: str, run_ids: list[uuid.UUID], lease: float
) -> set[uuid.UUID]:
    """Extend this node's leases; the result omits runs that were cancelled or reaped."""
    until = ctx.clock.now() + timedelta(seconds=lease)
    async with ctx.db.write() as conn:
        return await claims.renew_leases(conn, node, run_ids, until)


async def record_outcome(
    ctx: Context,
    claimed: ClaimedRun,
    outcome: Outcome,
    *,
    node: str | None,
    random: Callable[[], float],
    started_at: datetime,
) -> Settlement | None:
    """Record an attempt and move the run on (done, retry later, or failed), in one
    transaction. None when the run was no longer ours (cancelled or reaped meanwhile)."""
    now = ctx.clock.now()
    run = claimed.run
    decision = settle(run, claimed.spec, outcome, now, random)
    values = _run_values(run, decision, outcome, now)
    async with ctx.db.write() as conn:
        if not await claims.finish_run(conn, run.id, node, values):
            return None
        await run_store.insert_attempt(conn, _attempt_values(run, outcome, started_at, now))
        logs = [
            (EventType.LOG.value, line.at, line.message, {"level": line.level})
            for line in outcome.logs
        ]
        entries = [(kind.value, now, message, data) for kind, message, data in decision.events]
        await run_store.append_events(conn, run.id, logs + entries)
        if decision.final:
            await claims.set_last_run(conn, run.job_id, run.id)
    if decision.final:
        count_finished_run(ctx, claimed.project, claimed.spec.slug, decision.status, values)
    return decision


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


def _run_values(run: Run, decision: Settlement, outcome: Outcome, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": decision.status.value,
        "failure_reason": decision.failure_reason,
        "error": decision.error,
        "payload": _stored_payload(run, outcome),
    }
    if run.scheduled_for is not None and run.started_at is not None:
        values["drift_ms"] = int((run.started_at - run.scheduled_for).total_seconds() * 1000)
    if decision.final:
        started = run.started_at or now
        values.update(
            finished_at=now,
            lease_expires_at=None,
            duration_ms=int((now - started).total_seconds() * 1000),
        )
    else:
        values.update(node=None, lease_expires_at=None, not_before=decision.not_before)
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
    reaped = 0
    for run in lost:
        if run.job_id not in specs:
            continue
        outcome = Outcome(
            status=AttemptStatus.EXCEPTION,
            failure_reason=FailureReason.NODE_LOST,
            error_class="cronkeeper.NodeLost",
            error=f"node {run.node} stopped renewing its lease (crashed or hung)",
        )
        claimed = ClaimedRun(run, *specs[run.job_id])
        decision = await record_outcome(
            ctx, claimed, outcome, node=run.node, random=random, started_at=run.started_at or now
        )
        reaped += decision is not None
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

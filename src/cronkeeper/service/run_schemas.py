"""Runs as the API returns them (pydantic), and the query of run lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from cronkeeper.domain.failures import explain
from cronkeeper.domain.models import Attempt, Event, Run
from cronkeeper.store.runs import ListedRun


class AttemptOut(BaseModel):
    number: int
    status: str
    failure_reason: str | None
    failure_explanation: str | None
    status_code: int | None
    exit_code: int | None
    latency_ms: int | None
    body_preview: str | None
    response_headers: dict[str, str] | None
    error_class: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class RunOut(BaseModel):
    id: str
    job: str
    source: str
    status: str
    scheduled_for: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    drift_ms: int | None
    attempts: int
    max_attempts: int
    failure_reason: str | None
    failure_explanation: str | None
    error: str | None
    payload: Any
    trace_id: str | None
    replay_of: str | None
    node: str | None
    during_outage: bool  # missed while Cronkeeper itself was down: never alerted
    created_at: datetime


class RunDetailOut(RunOut):
    attempt_details: list[AttemptOut]
    steps: list[dict[str, Any]]


class EventOut(BaseModel):
    sequence_num: int
    type: str
    at: datetime
    message: str | None
    data: dict[str, Any] | None


def run_out(run: Run, job_slug: str) -> RunOut:
    """The API view of a run."""
    return RunOut(**_run_fields(run, job_slug))


@dataclass(slots=True)  # not frozen: a frozen dataclass took 10x longer to build
class RunListItem:
    """A run as a list shows it: RunOut's fields in RunOut's order, so it serialises to
    the very same JSON (tests/api/test_run_list_items.py), but built without validation —
    every value comes typed from the ledger, and a page builds fifty per request."""

    id: str
    job: str
    source: str
    status: str
    scheduled_for: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    drift_ms: int | None
    attempts: int
    max_attempts: int
    failure_reason: str | None
    failure_explanation: str | None
    error: str | None
    payload: Any
    trace_id: str | None
    replay_of: str | None
    node: str | None
    during_outage: bool
    created_at: datetime


def listed_run_out(run: ListedRun, job_slug: str) -> RunListItem:
    """The API view of a run as a history page lists it."""
    reason = run.failure_reason
    return RunListItem(
        str(run.id),
        job_slug,
        run.source,
        run.status,
        run.scheduled_for,
        run.queued_at,
        run.started_at,
        run.finished_at,
        run.duration_ms,
        run.drift_ms,
        run.attempts,
        run.max_attempts,
        reason,
        explain(reason) if reason else None,
        run.error,
        run.payload,
        run.trace_id,
        str(run.replay_of) if run.replay_of else None,
        run.node,
        run.during_outage,
        run.created_at,
    )


def _run_fields(run: Run, job_slug: str) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "job": job_slug,
        "source": run.source,
        "status": run.status,
        "scheduled_for": run.scheduled_for,
        "queued_at": run.queued_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": run.duration_ms,
        "drift_ms": run.drift_ms,
        "attempts": run.attempts,
        "max_attempts": run.max_attempts,
        "failure_reason": run.failure_reason,
        "failure_explanation": explain(run.failure_reason) if run.failure_reason else None,
        "error": run.error,
        "payload": run.payload,
        "trace_id": run.trace_id,
        "replay_of": str(run.replay_of) if run.replay_of else None,
        "node": run.node,
        "during_outage": run.during_outage,
        "created_at": run.created_at,
    }


def run_detail_out(run: Run, job_slug: str, attempts: list[Attempt]) -> RunDetailOut:
    """A run with its attempts (steps arrive with workflows)."""
    return RunDetailOut(
        **_run_fields(run, job_slug), attempt_details=[attempt_out(a) for a in attempts], steps=[]
    )


def attempt_out(attempt: Attempt) -> AttemptOut:
    fields = {
        name: getattr(attempt, name) for name in AttemptOut.model_fields if hasattr(attempt, name)
    }
    reason = attempt.failure_reason
    return AttemptOut(**fields, failure_explanation=explain(reason) if reason else None)


def event_out(event: Event) -> EventOut:
    return EventOut(
        sequence_num=event.sequence_num,
        type=event.type,
        at=event.at,
        message=event.message,
        data=event.data,
    )

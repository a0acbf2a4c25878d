"""Frozen records the store returns and the services pass around."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.states import AuditOutcome, KeyRole, MonitorState


@dataclass(frozen=True)
class Project:
    id: uuid.UUID
    slug: str
    name: str
    retention_days: int
    ping_key: str
    badge_key: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    project_id: uuid.UUID
    project_slug: str
    name: str
    prefix: str
    secret_hash: str
    role: KeyRole
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Job:
    """A stored job: its spec plus what the ledger adds."""

    id: uuid.UUID
    project_id: uuid.UUID
    spec: JobSpec
    monitor_state: MonitorState
    ping_uuid: uuid.UUID | None
    next_fire_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def slug(self) -> str:
        return self.spec.slug


@dataclass(frozen=True)
class RunSummary:
    """The last run of a job as shown beside it (full runs arrive with the runtime)."""

    id: uuid.UUID
    status: str
    source: str
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    failure_reason: str | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    project_id: uuid.UUID | None
    at: datetime
    actor: str
    ip: str | None
    action: str
    target: str
    diff: dict[str, Any]
    outcome: AuditOutcome
    detail: str | None


@dataclass(frozen=True)
class Actor:
    """Who is acting: the audit log's `actor`, their role and project scope."""

    name: str
    role: KeyRole
    project_slug: str | None  # None: local/system actor with access everywhere
    ip: str | None = None

    def may_act_in(self, project_slug: str) -> bool:
        """Admins and local actors reach every project; other keys only their own."""
        return (
            self.project_slug is None
            or self.role is KeyRole.ADMIN
            or (self.project_slug == project_slug)
        )


@dataclass(frozen=True)
class Run:
    """One logical execution of a job."""

    id: uuid.UUID
    project_id: uuid.UUID
    job_id: uuid.UUID
    source: str
    status: str
    scheduled_for: datetime | None
    queue: str
    not_before: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    drift_ms: int | None
    attempts: int
    max_attempts: int
    failure_reason: str | None
    error: str | None
    payload: Any
    trace_id: str | None
    replay_of: uuid.UUID | None
    node: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    during_outage: bool = False  # a slot missed while Cronkeeper itself was down


@dataclass(frozen=True)
class Attempt:
    """One try of a run."""

    id: uuid.UUID
    run_id: uuid.UUID
    number: int
    status: str
    failure_reason: str | None
    status_code: int | None
    exit_code: int | None
    latency_ms: int | None
    body_preview: str | None
    response_headers: dict[str, str] | None
    error_class: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Event:
    """One entry of a run's append-only log."""

    run_id: uuid.UUID
    sequence_num: int
    type: str
    at: datetime
    message: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True)
class DueJob:
    """A job whose next slot has come, as the scheduler sees it."""

    id: uuid.UUID
    project_id: uuid.UUID
    spec: JobSpec
    next_fire_at: datetime

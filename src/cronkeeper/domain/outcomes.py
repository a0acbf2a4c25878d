"""What the runtime hands an executor (`AttemptRequest`) and what it gets back (`Outcome`).

Executors run one attempt of one run and report; they never write rows. The worker
records the outcome (attempt row, events, run status) and decides about retries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.states import AttemptStatus

#: Previews keep at most this much of a response body or command output.
PREVIEW_LIMIT = 64 * 1024


@dataclass(frozen=True)
class AttemptRequest:
    """Everything an executor may use to run one attempt."""

    run_id: uuid.UUID
    project: str
    job_slug: str
    job_name: str
    kind: str
    target: dict[str, Any]  # validated; secrets in clear (never log it)
    timeout: float
    attempt: int  # 1-based
    max_attempts: int
    scheduled_for: datetime | None
    traceparent: str  # W3C: 00-<trace_id>-<span_id>-01
    payload: Any = None  # data a trigger or a manual run passed in

    @property
    def trace_id(self) -> str:
        return self.traceparent.split("-")[1]


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, as an executor reports it."""

    status: AttemptStatus
    failure_reason: FailureReason | None = None
    status_code: int | None = None
    exit_code: int | None = None
    latency_ms: int = 0
    body_preview: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    error_class: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the target asked us to wait (Retry-After)
    resolved: dict[str, Any] | None = None  # the request/command actually sent
    logs: tuple[LogLine, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status is AttemptStatus.SUCCESS


def preview_tail(data: bytes, limit: int = PREVIEW_LIMIT) -> str:
    """The last `limit` bytes, decoded leniently (command output keeps its end)."""
    return data[-limit:].decode("utf-8", "replace")


def preview_head(data: bytes, limit: int = PREVIEW_LIMIT) -> str:
    """The first `limit` bytes, decoded leniently (response bodies keep their start)."""
    return data[:limit].decode("utf-8", "replace")


class Executor(Protocol):
    """Runs one attempt of a job kind. Raises only asyncio.CancelledError."""

    async def execute(self, request: AttemptRequest) -> Outcome: ...

"""Every state enum of the ledger and the one table of allowed run transitions."""

from __future__ import annotations

from enum import StrEnum

from cronkeeper.errors import IllegalTransition


class JobKind(StrEnum):
    HTTP = "http"
    COMMAND = "command"
    PYTHON = "python"
    WORKFLOW = "workflow"
    HEARTBEAT = "heartbeat"
    TRIGGER = "trigger"


class JobStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class MonitorState(StrEnum):
    NEW = "new"
    UP = "up"
    LATE = "late"
    DOWN = "down"
    PAUSED = "paused"


class RunSource(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    REPLAY = "replay"
    API = "api"
    TRIGGER = "trigger"
    HEARTBEAT = "heartbeat"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"
    SKIPPED = "skipped"


class AttemptStatus(StrEnum):
    SUCCESS = "success"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    HTTP_ERROR = "http_error"
    EXIT_ERROR = "exit_error"
    EXCEPTION = "exception"
    BLOCKED = "blocked"


class EventType(StrEnum):
    RUN_QUEUED = "run_queued"
    ATTEMPT_STARTED = "attempt_started"
    ATTEMPT_SUCCEEDED = "attempt_succeeded"
    ATTEMPT_FAILED = "attempt_failed"
    RETRY_SCHEDULED = "retry_scheduled"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    RUN_SUSPENDED = "run_suspended"
    RUN_APPROVED = "run_approved"
    RUN_REJECTED = "run_rejected"
    RUN_CANCELLED = "run_cancelled"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    LOG = "log"


class KeyRole(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: KeyRole) -> bool:
        """True when this role includes everything `needed` may do."""
        order = (KeyRole.READ, KeyRole.WRITE, KeyRole.ADMIN)
        return order.index(self) >= order.index(needed)


class AuditOutcome(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"


#: A run is final once it leaves these states; nothing changes a final run.
ACTIVE_RUN_STATES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUSPENDED})
TERMINAL_RUN_STATES = frozenset(set(RunStatus) - ACTIVE_RUN_STATES)

#: The only moves a run may make. `running → queued` re-queues a run for its next attempt.
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset(
        {RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.SKIPPED, RunStatus.MISSED}
    ),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
            RunStatus.SUSPENDED,
            RunStatus.QUEUED,
        }
    ),
    RunStatus.SUSPENDED: frozenset({RunStatus.QUEUED, RunStatus.FAILED, RunStatus.CANCELLED}),
    **{state: frozenset() for state in TERMINAL_RUN_STATES},
}


def transition(current: RunStatus, new: RunStatus) -> RunStatus:
    """Return `new` if a run may move there from `current`; raise IllegalTransition if not."""
    if new not in RUN_TRANSITIONS[current]:
        raise IllegalTransition(f"a {current.value} run cannot become {new.value}")
    return new


def is_final(status: RunStatus) -> bool:
    """True once a run has left queued/running/suspended."""
    return status in TERMINAL_RUN_STATES

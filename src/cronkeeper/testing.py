"""Public test helpers: a fake clock that tests advance instead of sleeping, and a
claimed run built without a ledger."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.models import Run
from cronkeeper.service.execution import ClaimedRun


class FakeClock:
    """A Clock whose time moves only when a test says so.

    `sleep()` returns once `advance()` has moved the clock past the sleeper's deadline.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._monotonic = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._monotonic + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        due = [(at, f) for at, f in self._sleepers if at <= self._monotonic]
        self._sleepers = [(at, f) for at, f in self._sleepers if at > self._monotonic]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    def set(self, moment: datetime) -> None:
        """Jump to an absolute instant (forward only)."""
        self.advance((moment - self._now).total_seconds())


def claimed_run(
    spec: JobSpec,
    slot: datetime,
    claimed_at: datetime | None = None,
    *,
    max_attempts: int = 1,
    node: str = "test",
) -> ClaimedRun:
    """A running first attempt of `spec` (a job of its own, in project `default`) for
    `slot`, claimed at `claimed_at` (default: the slot) as the worker holds it; no ledger
    involved (for tracing and executor tests and benchmarks)."""
    now = claimed_at or slot
    run = Run(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        source="schedule",
        status="running",
        scheduled_for=slot,
        queue="default",
        not_before=slot,
        queued_at=now,
        started_at=None,
        finished_at=None,
        duration_ms=None,
        drift_ms=None,
        attempts=1,
        max_attempts=max_attempts,
        failure_reason=None,
        error=None,
        payload={},
        trace_id=secrets.token_hex(16),
        replay_of=None,
        node=node,
        lease_expires_at=None,
        created_at=now,
    )
    return ClaimedRun(run, spec, "default", claimed_at=now)

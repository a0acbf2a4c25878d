"""Public test helpers: a fake clock that tests advance instead of sleeping, a
ledger builder that writes finished runs straight into the ledger (for tests and
benchmarks that need a long history), and a claimed run built without a ledger."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cronkeeper.domain.ids import uuid7
from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.models import Run
from cronkeeper.service.context import Context
from cronkeeper.service.execution import ClaimedRun
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store.tables import attempts, events, runs


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


#: Rows per INSERT statement when writing a history.
CHUNK = 2000


async def add_runs(
    ctx: Context,
    slug: str,
    count: int,
    *,
    project: str = "default",
    end: datetime | None = None,
    every: timedelta = timedelta(minutes=5),
    fail_every: int = 4,
) -> list[uuid.UUID]:
    """`count` finished scheduled runs of the job, one per `every` up to `end` (default:
    now); every `fail_every`-th failed with http_5xx (one attempt and three events each).
    Written in one transaction, as the runtime would have recorded them; the job's last
    run becomes the newest one written. Returns the run ids, oldest first.

    Raises ValueError if the project or the job does not exist."""
    end = end or ctx.clock.now()
    async with ctx.db.write() as conn:
        found = await project_store.get_project(conn, project)
        job = await job_store.get_job(conn, found.id, slug) if found else None
        if found is None or job is None:
            raise ValueError(f"no job {slug!r} in project {project!r}")
        rows: list[dict[str, Any]] = []
        tries: list[dict[str, Any]] = []
        logs: list[dict[str, Any]] = []
        for index in range(count):
            slot = end - every * (count - index)
            failed = bool(fail_every) and index % fail_every == fail_every - 1
            run_id = uuid7(slot)
            started = slot + timedelta(milliseconds=40 + index % 7 * 15)
            finished = started + timedelta(milliseconds=120 + index % 11 * 30)
            rows.append(_run(found.id, job.id, run_id, slot, started, finished, failed))
            tries.append(_attempt(run_id, started, finished, failed))
            logs += _events(run_id, slot, started, finished, failed)
        for start in range(0, count, CHUNK):
            await conn.execute(runs.insert(), rows[start : start + CHUNK])
            await conn.execute(attempts.insert(), tries[start : start + CHUNK])
            await conn.execute(events.insert(), logs[start * 3 : (start + CHUNK) * 3])
        if rows:
            await claims.set_last_run(conn, job.id, rows[-1]["id"])
    return [row["id"] for row in rows]


def _run(
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    run_id: uuid.UUID,
    slot: datetime,
    started: datetime,
    finished: datetime,
    failed: bool,
) -> dict[str, Any]:
    return {
        "id": run_id,
        "project_id": project_id,
        "job_id": job_id,
        "source": "schedule",
        "status": "failed" if failed else "succeeded",
        "scheduled_for": slot,
        "ordered_at": slot,
        "queue": "default",
        "queued_at": slot,
        "not_before": slot,
        "started_at": started,
        "finished_at": finished,
        "duration_ms": int((finished - started).total_seconds() * 1000),
        "drift_ms": int((started - slot).total_seconds() * 1000),
        "attempts": 1,
        "max_attempts": 1,
        "failure_reason": "http_5xx" if failed else None,
        "error": "HTTP 503 Service Unavailable" if failed else None,
        "payload": {"method": "POST", "url": "https://reports.example.com/run"},
        "trace_id": uuid.uuid4().hex,
        "created_at": slot,
    }


def _attempt(
    run_id: uuid.UUID, started: datetime, finished: datetime, failed: bool
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "run_id": run_id,
        "number": 1,
        "status": "http_error" if failed else "success",
        "failure_reason": "http_5xx" if failed else None,
        "status_code": 503 if failed else 200,
        "latency_ms": int((finished - started).total_seconds() * 1000),
        "body_preview": "upstream down" if failed else "ok",
        "started_at": started,
        "finished_at": finished,
    }


def _events(
    run_id: uuid.UUID, slot: datetime, started: datetime, finished: datetime, failed: bool
) -> list[dict[str, Any]]:
    kind, message = ("run_failed", "HTTP 503") if failed else ("run_succeeded", "HTTP 200")
    return [
        _event(run_id, 1, "run_queued", slot, "queued (schedule)"),
        _event(run_id, 2, "attempt_started", started, "attempt 1"),
        _event(run_id, 3, kind, finished, message),
    ]


def _event(run_id: uuid.UUID, number: int, kind: str, at: datetime, message: str) -> dict[str, Any]:
    return {"run_id": run_id, "sequence_num": number, "type": kind, "at": at, "message": message}


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


async def dashboard_pages(client: Any, run_ids: list[Any], job: str = "big") -> dict[str, str]:
    """Every page of the dashboard by name → path, on `job` and its runs (`run_ids`, oldest
    first) where a page shows one; `client` is a logged-in httpx.AsyncClient."""
    job_page = (await client.get(f"/jobs/{job}")).text
    older = job_page.split(f'href="/jobs/{job}?cursor=')[1].split('"')[0]
    return {
        "overview": "/",
        "job detail": f"/jobs/{job}",
        "job detail, older runs": f"/jobs/{job}?cursor={older}",
        "run detail": f"/runs/{run_ids[len(run_ids) // 2]}",
        "row expand": f"/runs/{run_ids[-1]}/expand",
        "watcher poll": f"/jobs/{job}/watch",
        "edit form": f"/jobs/{job}/edit",
        "audit": "/audit",
        "queue": "/queue",
        "topology": "/topology",
    }

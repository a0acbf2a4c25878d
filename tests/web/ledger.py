"""Test data written straight into the ledger: finished runs with attempts and events, as
the runtime would have recorded them (many at once, for the history-size tests)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.domain.ids import uuid7
from cronkeeper.service.context import Context
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store.tables import attempts, events, runs


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
    """`count` finished scheduled runs of the job, one per `every` up to `end`; every
    `fail_every`-th failed with http_5xx (one attempt and events each). Oldest first."""
    end = end or ctx.clock.now()
    async with ctx.db.write() as conn:
        found = await project_store.get_project(conn, project)
        assert found is not None
        job = await job_store.get_job(conn, found.id, slug)
        assert job is not None
        rows, tries, logs = [], [], []
        for index in range(count):
            slot = end - every * (count - index)
            failed = fail_every and index % fail_every == fail_every - 1
            run_id = uuid7(slot)
            started = slot + timedelta(milliseconds=40 + index % 7 * 15)
            finished = started + timedelta(milliseconds=120 + index % 11 * 30)
            rows.append(_run(found.id, job.id, run_id, slot, started, finished, bool(failed)))
            tries.append(_attempt(run_id, started, finished, bool(failed)))
            logs += [
                _event(run_id, 1, "run_queued", slot, "queued (schedule)"),
                _event(run_id, 2, "attempt_started", started, "attempt 1"),
                _event(
                    run_id,
                    3,
                    "run_failed" if failed else "run_succeeded",
                    finished,
                    "HTTP 503" if failed else "HTTP 200",
                ),
            ]
        for start in range(0, count, 2000):
            await conn.execute(runs.insert(), rows[start : start + 2000])
            await conn.execute(attempts.insert(), tries[start : start + 2000])
            await conn.execute(events.insert(), logs[start * 3 : (start + 2000) * 3])
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


def _attempt(run_id: uuid.UUID, started: datetime, finished: datetime, failed: bool) -> Any:
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


def _event(run_id: uuid.UUID, number: int, kind: str, at: datetime, message: str) -> Any:
    return {"run_id": run_id, "sequence_num": number, "type": kind, "at": at, "message": message}

"""The rows one batch of pings writes, built ping by ping in arrival order.

`PingBatch` keeps the pinged jobs' open runs current while it goes, so a start and its
finish in the same batch pair up exactly as they would in two transactions; a run both
started and finished within the batch is inserted once, already final. `rows` then
hands the store a fixed handful of statements' rows, whatever the number of pings.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.domain.ids import uuid7
from cronkeeper.domain.pings import (
    Closing,
    OpenRun,
    Ping,
    PingAction,
    PingedJob,
    close_run,
    matching_run,
    superseded_runs,
)
from cronkeeper.domain.states import EventType, RunSource, RunStatus
from cronkeeper.store import pings as ping_store

EventRow = tuple[uuid.UUID, str, datetime, str | None, dict[str, Any] | None]


def _superseded_message(rid: str | None) -> str:
    if rid is None:
        return (
            "superseded: a newer start ping without a rid arrived before this run reported "
            "its end (without a rid only the latest start is timed)"
        )
    return f"superseded: a newer start ping with the same rid ({rid}) arrived"


_RUN = {name: position for position, name in enumerate(ping_store.RUN_COLUMNS)}
_CLOSING = {name: position for position, name in enumerate(ping_store.CLOSING_COLUMNS)}


class PingBatch:
    def __init__(
        self,
        open_runs: dict[uuid.UUID, list[OpenRun]],
        last_events: dict[uuid.UUID, int],
        latest_runs: dict[uuid.UUID, tuple[uuid.UUID, int]],
    ) -> None:
        self.open = open_runs  # job id → its running heartbeat runs, kept current
        self.last_events = last_events  # stored run id → its last event number
        self.latest = latest_runs  # job id → its newest stored run, last event (log pings)
        self.new_runs: dict[uuid.UUID, list[Any]] = {}  # run id → `runs` row (RUN_COLUMNS)
        self.closings: dict[uuid.UUID, list[Any]] = {}  # stored run id → CLOSING_COLUMNS + id
        self.attempts: list[tuple[Any, ...]] = []
        self.events: list[EventRow] = []
        self.last_runs: dict[uuid.UUID, uuid.UUID] = {}  # job id → newest finished run
        self.newest: dict[uuid.UUID, uuid.UUID] = {}  # job id → newest run of this batch
        self.deadlines: dict[uuid.UUID, datetime] = {}  # job id → look at it by then

    def add(self, job: PingedJob, ping: Ping) -> tuple[uuid.UUID | None, Closing | None]:
        """Decide one ping: (the run it touched, how it closed that run if it did)."""
        if ping.action is PingAction.START:
            return self._start(job, ping), None
        if ping.finishes:
            return self._finish(job, ping)
        return self._log(job, ping), None

    def _start(self, job: PingedJob, ping: Ping) -> uuid.UUID:
        open_runs = self.open.setdefault(job.id, [])
        for run in superseded_runs(open_runs, ping.rid):
            open_runs.remove(run)
            message = _superseded_message(ping.rid)
            self._close(run.id, RunStatus.CANCELLED, ping.at, _millis(ping.at, run.started_at))
            self._set(run.id, error=message)
            self.events.append((run.id, EventType.RUN_CANCELLED.value, ping.at, message, None))
        run_id = self._new_run(job, ping)
        open_runs.append(OpenRun(run_id, ping.rid, ping.at))
        if job.max_runtime is not None:  # the monitor closes the run if it overruns
            ends = ping.at + timedelta(seconds=job.max_runtime)
            self.deadlines[job.id] = min(ends, self.deadlines.get(job.id, ends))
        self._event(run_id, ping, EventType.ATTEMPT_STARTED, "start ping received")
        if ping.body:
            self.events.append((run_id, EventType.LOG.value, ping.at, ping.body, {"level": "info"}))
        return run_id

    def _finish(self, job: PingedJob, ping: Ping) -> tuple[uuid.UUID, Closing]:
        open_runs = self.open.setdefault(job.id, [])
        run = matching_run(open_runs, ping.rid)
        closing = close_run(ping, run.started_at if run else None, job.min_runtime)
        if run is None:
            run_id, started_at = self._new_run(job, ping), ping.at
        else:
            open_runs.remove(run)
            run_id, started_at = run.id, run.started_at
        reason = _value(closing.failure_reason)
        self._close(run_id, closing.status, ping.at, closing.duration_ms)
        self._set(run_id, failure_reason=reason, error=closing.error)
        self.attempts.append(
            (
                uuid7(ping.at),  # time-ordered: appended to its index, few pages to commit
                run_id,
                1,
                closing.attempt_status.value,
                _value(closing.attempt_failure_reason),
                closing.exit_code,
                closing.duration_ms,
                ping.body or None,
                started_at,
                ping.at,
            )
        )
        (attempt_event, said), *rest = closing.events
        self._event(run_id, ping, attempt_event, said)
        self.events += [(run_id, kind.value, ping.at, message, None) for kind, message in rest]
        self.last_runs[job.id] = run_id
        return run_id, closing

    def _log(self, job: PingedJob, ping: Ping) -> uuid.UUID | None:
        """A log line goes to the open run with the ping's rid, else to the job's newest
        run; a job that never ran has nowhere to keep it."""
        run = matching_run(self.open.get(job.id, []), ping.rid)
        run_id = run.id if run else self.newest.get(job.id)
        if run_id is None:
            latest = self.latest.get(job.id)
            if latest is not None:
                run_id, last_event = latest
                self.last_events.setdefault(run_id, last_event)
        if run_id is not None:
            data = {"level": "info", **_client(ping)}
            message = ping.body or "log ping received (empty body)"
            self.events.append((run_id, EventType.LOG.value, ping.at, message, data))
        return run_id

    def _new_run(self, job: PingedJob, ping: Ping) -> uuid.UUID:
        run_id = uuid7(ping.at)
        at = ping.at
        self.new_runs[run_id] = [
            run_id,
            job.project_id,
            job.id,
            RunSource.HEARTBEAT.value,
            RunStatus.RUNNING.value,
            job.queue,
            at,  # started_at
            None,  # finished_at
            None,  # duration_ms
            1,  # attempts
            1,  # max_attempts
            None,  # failure_reason
            None,  # error
            ping.rid,
            at,  # created_at
            at,  # ordered_at
        ]
        self.newest[job.id] = run_id
        return run_id

    def _close(
        self, run_id: uuid.UUID, status: RunStatus, at: datetime, duration_ms: int | None
    ) -> None:
        self._set(run_id, status=status.value, finished_at=at, duration_ms=duration_ms)

    def _set(self, run_id: uuid.UUID, **values: Any) -> None:
        """Change a run of this batch's insert, or the closing of a stored run."""
        row = self.new_runs.get(run_id)
        if row is not None:
            for name, value in values.items():
                row[_RUN[name]] = value
            return
        closing = self.closings.get(run_id)
        if closing is None:
            closing = self.closings[run_id] = [None] * len(_CLOSING) + [run_id]
        for name, value in values.items():
            closing[_CLOSING[name]] = value

    def _event(self, run_id: uuid.UUID, ping: Ping, kind: EventType, message: str) -> None:
        self.events.append((run_id, kind.value, ping.at, message, _client(ping) or None))

    def rows(self) -> ping_store.BatchRows:
        """Every row of the batch, events numbered: runs new in this batch count from 1,
        stored runs continue after their last event."""
        last = self.last_events
        events = []
        for run_id, kind, at, message, data in self.events:
            number = last[run_id] = last.get(run_id, 0) + 1
            events.append((run_id, number, kind, at, message, data))
        return ping_store.BatchRows(
            runs=[tuple(row) for row in self.new_runs.values()],
            closings=[tuple(row) for row in self.closings.values()],
            attempts=self.attempts,
            events=events,
            last_runs=list(self.last_runs.items()),
            deadlines=list(self.deadlines.items()),
        )


def _client(ping: Ping) -> dict[str, Any]:
    """Who sent the ping (method, address, user agent) and its rid, for the event."""
    data: dict[str, Any] = dict(ping.client)
    if ping.rid is not None:
        data["rid"] = ping.rid
    return data


def _millis(end: datetime, start: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


def _value(reason: Any) -> str | None:
    return None if reason is None else str(reason.value)

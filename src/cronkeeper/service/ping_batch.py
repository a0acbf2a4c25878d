"""The rows one batch of pings writes, built ping by ping in arrival order.

`PingBatch` keeps the pinged jobs' open runs current while it goes, so a start and its
finish in the same batch pair up exactly as they would in two transactions; a run both
started and finished within the batch is inserted once, already final. `rows` then
hands the store a fixed handful of statements' rows, whatever the number of pings.

The rows' values are in the form the store takes them in (`ValueForm`: on SQLite, as
SQLite stores them), each converted once: a ping's time, a run's id and a job's ids once
however many rows carry them; an event is numbered as it is added.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
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
from cronkeeper.store.bulk import ValueForm


def _superseded_message(rid: str | None) -> str:
    if rid is None:
        return (
            "superseded: a newer start ping without a rid arrived before this run reported "
            "its end (without a rid only the latest start is timed)"
        )
    return f"superseded: a newer start ping with the same rid ({rid}) arrived"


_START, _LOG = PingAction.START, PingAction.LOG
_HEARTBEAT, _RUNNING = RunSource.HEARTBEAT.value, RunStatus.RUNNING.value
_CANCELLED = RunStatus.CANCELLED.value
_STARTED, _LOGGED = EventType.ATTEMPT_STARTED.value, EventType.LOG.value
_RUN_CANCELLED = EventType.RUN_CANCELLED.value
#: Where a closing's values (CLOSING_COLUMNS) go in a `runs` row (RUN_COLUMNS).
_CLOSED = [ping_store.RUN_COLUMNS.index(name) for name in ping_store.CLOSING_COLUMNS]


class _Logged:
    """A run the batch adds events to, numbered after its `last_event`."""

    __slots__ = ("id", "key", "last_event")

    def __init__(self, run_id: uuid.UUID, key: Any, last_event: int) -> None:
        self.id, self.key, self.last_event = run_id, key, last_event  # key: the stored id


class _Run(_Logged):
    """An open run: stored (the batch may close it) or new (`row`: its insert, kept
    current until the batch ends)."""

    __slots__ = ("rid", "row", "started", "started_at")

    def __init__(
        self,
        run_id: uuid.UUID,
        key: Any,
        rid: str | None,
        started_at: datetime,
        started: Any,  # started_at as stored
        last_event: int,
    ) -> None:
        self.id, self.key, self.rid, self.last_event = run_id, key, rid, last_event
        self.started_at, self.started = started_at, started
        self.row: list[Any] | None = None


class _Job:
    """A pinged job's part of the batch: its ids as stored, its open runs (kept current),
    the runs it knows for log pings, its newest run of this batch."""

    __slots__ = ("key", "known", "newest", "open", "project_key")

    def __init__(self, key: Any, project_key: Any, open_runs: list[_Run]) -> None:
        self.key, self.project_key, self.open = key, project_key, open_runs
        self.known: list[_Logged] = list(open_runs)
        self.newest: _Run | None = None


class PingBatch:
    def __init__(
        self,
        open_runs: dict[uuid.UUID, list[OpenRun]],
        latest_runs: dict[uuid.UUID, tuple[uuid.UUID, int]],
        form: ValueForm,
    ) -> None:
        self.stored_open = open_runs  # job id → its running heartbeat runs as read
        self.latest = latest_runs  # job id → its newest stored run, last event (log pings)
        self.form = form
        self.no_data, self.info = form.json(None), form.json({"level": "info"})
        self.jobs: dict[uuid.UUID, _Job] = {}
        self.new_runs: list[_Run] = []
        self.closings: list[tuple[Any, ...]] = []  # CLOSING_COLUMNS + the run id
        self.attempts: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []  # EVENT_COLUMNS
        self.last_runs: dict[Any, Any] = {}  # job → its newest finished run
        self.deadlines: dict[Any, datetime] = {}  # job → look at it by then

    def add(self, job: PingedJob, ping: Ping) -> tuple[uuid.UUID | None, Closing | None]:
        """Decide one ping: (the run it touched, how it closed that run if it did)."""
        state = self.jobs.get(job.id) or self._job(job)
        at = self.form.time(ping.at)
        if ping.action is _START:
            return self._start(state, job, ping, at), None
        if ping.action is _LOG:
            return self._log(state, job, ping, at), None
        return self._finish(state, job, ping, at)

    def _start(self, state: _Job, job: PingedJob, ping: Ping, at: Any) -> uuid.UUID:
        for run in superseded_runs(state.open, ping.rid):
            state.open.remove(run)
            message = _superseded_message(ping.rid)
            self._close(run, _CANCELLED, at, _millis(ping.at, run.started_at), None, message)
            self._event(run, _RUN_CANCELLED, at, message, self.no_data)
        run = self._new_run(state, job, ping, at)
        state.open.append(run)
        if job.max_runtime is not None:  # the monitor closes the run if it overruns
            ends = ping.at + timedelta(seconds=job.max_runtime)
            self.deadlines[state.key] = min(ends, self.deadlines.get(state.key, ends))
        self._event(run, _STARTED, at, "start ping received", self.form.json(_client(ping) or None))
        if ping.body:
            self._event(run, _LOGGED, at, ping.body, self.info)
        return run.id

    def _finish(
        self, state: _Job, job: PingedJob, ping: Ping, at: Any
    ) -> tuple[uuid.UUID, Closing]:
        run = matching_run(state.open, ping.rid)
        closing = close_run(ping, run.started_at if run else None, job.min_runtime)
        if run is None:
            run = self._new_run(state, job, ping, at)
        else:
            state.open.remove(run)
        reason = _text(closing.failure_reason)
        self._close(run, str(closing.status), at, closing.duration_ms, reason, closing.error)
        self.attempts.append(
            (
                self.form.new_id(ping.at),  # time-ordered: appended to its index
                run.key,
                1,
                str(closing.attempt_status),
                _text(closing.attempt_failure_reason),
                closing.exit_code,
                closing.duration_ms,
                ping.body or None,
                run.started,
                at,
            )
        )
        data = self.form.json(_client(ping) or None)  # on the attempt's event, the first
        for kind, message in closing.events:
            self._event(run, str(kind), at, message, data)
            data = self.no_data
        self.last_runs[state.key] = run.key
        return run.id, closing

    def _log(self, state: _Job, job: PingedJob, ping: Ping, at: Any) -> uuid.UUID | None:
        """A log line goes to the open run with the ping's rid, else to the job's newest
        run; a job that never ran has nowhere to keep it."""
        run = matching_run(state.open, ping.rid) or state.newest or self._latest(state, job)
        if run is None:
            return None
        message = ping.body or "log ping received (empty body)"
        self._event(run, _LOGGED, at, message, self.form.json({"level": "info", **_client(ping)}))
        return run.id

    def _job(self, job: PingedJob) -> _Job:
        """The job's part, its stored open runs (oldest first) as the batch keeps them."""
        form = self.form
        open_runs = [
            _Run(
                run.id,
                form.id(run.id),
                run.rid,
                run.started_at,
                form.time(run.started_at),
                run.last_event,
            )
            for run in self.stored_open.get(job.id, ())
        ]
        state = self.jobs[job.id] = _Job(form.id(job.id), form.id(job.project_id), open_runs)
        return state

    def _latest(self, state: _Job, job: PingedJob) -> _Logged | None:
        """The job's newest stored run (the batch opened none), to log to."""
        latest = self.latest.get(job.id)
        if latest is None:
            return None
        run_id, last_event = latest
        for known in state.known:
            if known.id == run_id:
                return known
        run = _Logged(run_id, self.form.id(run_id), last_event)
        state.known.append(run)
        return run

    def _new_run(self, state: _Job, job: PingedJob, ping: Ping, at: Any) -> _Run:
        run_id = uuid7(ping.at)
        run = _Run(run_id, self.form.id(run_id), ping.rid, ping.at, at, 0)
        run.row = [
            run.key,
            state.project_key,
            state.key,
            _HEARTBEAT,
            _RUNNING,
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
        self.new_runs.append(run)
        state.newest = run
        return run

    def _close(
        self,
        run: _Run,
        status: str,
        at: Any,
        duration_ms: int | None,
        failure_reason: str | None,
        error: str | None,
    ) -> None:
        """Close a run of this batch's insert, or add the closing of a stored run."""
        values = (status, at, duration_ms, failure_reason, error)
        if run.row is None:
            self.closings.append((*values, run.key))
            return
        for position, value in zip(_CLOSED, values, strict=True):
            run.row[position] = value

    def _event(self, run: _Logged, kind: str, at: Any, message: str, data: Any) -> None:
        """An event of `run`, numbered: runs new in this batch count from 1, stored runs
        continue after their last event."""
        run.last_event += 1
        self.events.append((run.key, run.last_event, kind, at, message, data))

    def rows(self) -> ping_store.BatchRows:
        """Every row of the batch."""
        return ping_store.BatchRows(
            form=self.form,
            runs=[tuple(run.row) for run in self.new_runs if run.row is not None],
            closings=self.closings,
            attempts=self.attempts,
            events=self.events,
            last_runs=list(self.last_runs.items()),
            deadlines=[(job, self.form.time(at)) for job, at in self.deadlines.items()],
        )


def _client(ping: Ping) -> dict[str, Any]:
    """Who sent the ping (method, address, user agent) and its rid, for the event."""
    if ping.rid is None:
        return ping.client
    return {**ping.client, "rid": ping.rid}


def _millis(end: datetime, start: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


def _text(member: StrEnum | None) -> str | None:
    return None if member is None else str(member)  # a StrEnum's str is its value

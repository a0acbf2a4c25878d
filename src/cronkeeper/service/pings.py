"""Ping ingest (DESIGN §3 Ping API): a ping becomes heartbeat runs, attempts and events.

`record_ping` hands the ping to the process's group writer (store/writer.py) and returns
once the transaction holding it has committed, so an answered ping is durable. Many
pings share that transaction: `_write_pings` is the batch function. It locks the pinged
jobs, reads their open runs once, decides every ping in arrival order (the rules are in
domain/pings.py, the rows in service/ping_batch.py) and writes the batch with a handful
of statements. A ping for an unknown job fails alone: NotFound, nothing written for it.

Side effects beyond the run: `?create=1` on the slug form creates the heartbeat job; a
start, success or failure ping resumes a paused job (Healthchecks does the same); both
are audited with the actor `ping`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cronkeeper.domain.jobs import SLUG_RULE, JobSpec, changed_fields, is_valid_slug
from cronkeeper.domain.pings import Ping, PingAction, PingedJob
from cronkeeper.domain.states import AuditOutcome, JobKind, JobStatus, MonitorState, RunStatus
from cronkeeper.errors import Conflict, CronkeeperError, FieldError, InvalidInput, NotFound
from cronkeeper.service.context import Context
from cronkeeper.service.execution import count_finished_run
from cronkeeper.service.jobs import masked_body, next_fire
from cronkeeper.service.ping_batch import PingBatch
from cronkeeper.store import audit as audit_store
from cronkeeper.store import claims
from cronkeeper.store import jobs as job_store
from cronkeeper.store import monitor as monitor_store
from cronkeeper.store import pings as ping_store
from cronkeeper.store.bulk import SQLITE_VALUES, ValueForm
from cronkeeper.store.engine import Connection
from cronkeeper.store.writer import thread_form

#: The audit log's actor for changes a ping made (job created or resumed).
PING_ACTOR = "ping"
_HEARTBEAT, _PAUSED = JobKind.HEARTBEAT.value, JobStatus.PAUSED.value
#: What a ping key can look like (`secrets.token_urlsafe`).
_PING_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class PingRequest:
    """A validated ping and the job it names: a ping UUID, or a project ping key + slug."""

    ping: Ping
    ping_uuid: uuid.UUID | None = None
    ping_key: str | None = None
    slug: str | None = None
    create: bool = False  # `?create=1`: provision a heartbeat job for an unknown slug


@dataclass(frozen=True)
class PingResult:
    run_id: uuid.UUID | None  # the run started, finished or logged to (None: nothing to log to)
    job: PingedJob
    created_job: bool = False
    resumed_job: bool = False
    finished: RunStatus | None = None  # the final status the ping gave its run
    duration_ms: int | None = None


async def record_ping(ctx: Context, request: PingRequest) -> PingResult:
    """Record one ping; returns after its transaction committed. NotFound for an unknown
    UUID, key or slug (or a job that is not a heartbeat); InvalidInput for a slug that
    `?create=1` cannot use; Conflict when that slug belongs to a non-heartbeat job."""
    return settle_ping(ctx, await submit_ping(ctx, request))


def submit_ping(ctx: Context, request: PingRequest) -> asyncio.Future[PingResult]:
    """`record_ping` in two steps for a caller without a coroutine (the HTTP fast path,
    api/ping_protocol.py): the ping queued for the group writer (or the error above
    raised at once); once the future resolves, `settle_ping` its result."""
    if request.slug is not None and not is_valid_slug(request.slug):
        if request.create:
            raise InvalidInput(FieldError("slug", f"must be {SLUG_RULE}"))
        raise NotFound("job", request.slug[:64])
    if request.ping_key is not None and not _PING_KEY.match(request.ping_key):
        raise NotFound("ping key", "?")  # no project has it; NUL bytes would upset PostgreSQL
    return ctx.db.writer.enqueue(_write_pings, request)


def settle_ping(ctx: Context, result: PingResult) -> PingResult:
    """What follows a committed ping: the scheduler told of a created or resumed job, the
    finished run counted in the metrics."""
    if result.created_job or result.resumed_job:
        ctx.wakeups.jobs_changed.set()
    if result.finished is not None:
        values = {"duration_ms": result.duration_ms}
        count_finished_run(ctx, result.job.project_slug, result.job.slug, result.finished, values)
    return result


async def drain(ctx: Context) -> None:
    """Write the pings still queued and stop the group writer (at server shutdown)."""
    await ctx.db.writer.close()


async def _write_pings(
    conn: Connection, requests: list[PingRequest]
) -> list[PingResult | Exception]:
    """The group writer's batch function for pings (contract in store/writer.py)."""
    targets = _Targets(await ping_store.lock_targets(conn, *_names(requests)))
    resolved: list[Resolved | CronkeeperError] = []
    for request in requests:
        try:
            resolved.append(await targets.resolve(conn, request))
        except CronkeeperError as error:
            resolved.append(error)
    latest = await ping_store.latest_runs(conn, _log_jobs(requests, resolved))
    form = ping_store.value_form(conn)
    results, rows = _decide(requests, resolved, targets.found, latest, form)
    await ping_store.write_batch(conn, rows)
    return results


@thread_form(_write_pings)
def _write_pings_on_thread(
    db: sqlite3.Connection, requests: list[PingRequest]
) -> list[PingResult | Exception] | None:
    """`_write_pings` in one call on SQLite's thread; None when a ping of the batch creates
    or resumes its job (those take the ordinary path)."""
    targets = _Targets(ping_store.sqlite_targets(db, *_names(requests)))
    resolved: list[Resolved | CronkeeperError] = []
    for request in requests:
        try:
            known = targets.known(request)
        except CronkeeperError as error:
            resolved.append(error)
            continue
        if known is None:
            return None
        resolved.append(known)
    latest = ping_store.sqlite_latest_runs(db, _log_jobs(requests, resolved))
    results, rows = _decide(requests, resolved, targets.found, latest, SQLITE_VALUES)
    ping_store.sqlite_write_batch(db, rows)
    return results


#: A ping's job, and whether the ping created it or resumed it.
Resolved = tuple[PingedJob, bool, bool]


def _names(requests: list[PingRequest]) -> tuple[list[uuid.UUID], set[tuple[str, str]]]:
    """The ping UUIDs (a UUID pinged twice, twice) and (ping key, slug) pairs a batch names."""
    uuids = [r.ping_uuid for r in requests if r.ping_uuid is not None]
    slugs = {
        (r.ping_key, r.slug) for r in requests if r.ping_key is not None and r.slug is not None
    }
    return uuids, slugs


def _log_jobs(
    requests: list[PingRequest], resolved: list[Resolved | CronkeeperError]
) -> set[uuid.UUID]:
    """The jobs with a log ping in the batch (a log ping may go to the newest stored run)."""
    return {
        outcome[0].id
        for request, outcome in zip(requests, resolved, strict=True)
        if request.ping.action is PingAction.LOG and not isinstance(outcome, CronkeeperError)
    }


def _decide(
    requests: list[PingRequest],
    resolved: list[Resolved | CronkeeperError],
    found: ping_store.Targets,
    latest: dict[uuid.UUID, tuple[uuid.UUID, int]],
    form: ValueForm,
) -> tuple[list[PingResult | Exception], ping_store.BatchRows]:
    """Every ping of the batch in arrival order: its result, and the batch's rows (their
    values in `form`)."""
    batch = PingBatch(found.open_runs, latest, form)
    results: list[PingResult | Exception] = []
    for request, outcome in zip(requests, resolved, strict=True):
        if isinstance(outcome, CronkeeperError):
            results.append(outcome)
            continue
        job, created, resumed = outcome
        run_id, closing = batch.add(job, request.ping)
        if closing is None:
            results.append(PingResult(run_id, job, created, resumed))
        else:
            results.append(
                PingResult(run_id, job, created, resumed, closing.status, closing.duration_ms)
            )
    return results, batch.rows()


class _Targets:
    """The jobs a batch of pings names, locked, and the projects of its ping keys."""

    def __init__(self, found: ping_store.Targets) -> None:
        self.found = found
        self.by_uuid, self.projects, self.by_slug = found.by_uuid, found.projects, found.by_slug

    async def resolve(self, conn: Connection, request: PingRequest) -> Resolved:
        """(job, created, resumed) for a ping; creates or resumes the job if it must."""
        job, created, resumed = self._find(request), False, False
        if job is None and self._creates(request):
            job, created = await self._create(conn, request), True
        self._check(request, job)
        assert job is not None
        if self._resumes(request, job):
            job, resumed = await _resume(conn, job, request.ping), True
            self._remember(request, job)  # later pings of this batch see it active
        return job, created, resumed

    def known(self, request: PingRequest) -> Resolved | None:
        """`resolve` for a ping that neither creates nor resumes its job; None for one
        that does."""
        job = self._find(request)
        if job is None and self._creates(request):
            return None
        self._check(request, job)
        assert job is not None
        return None if self._resumes(request, job) else (job, False, False)

    def _creates(self, request: PingRequest) -> bool:
        return request.create and request.ping_key in self.projects

    def _check(self, request: PingRequest, job: PingedJob | None) -> None:
        """NotFound or Conflict unless the ping names a heartbeat job."""
        if job is None:
            raise NotFound("job", request.slug or str(request.ping_uuid))
        if job.kind != _HEARTBEAT:
            if request.create:
                raise Conflict(f"slug {job.slug!r} belongs to a {job.kind} job, not a heartbeat")
            raise NotFound("heartbeat job", job.slug)

    @staticmethod
    def _resumes(request: PingRequest, job: PingedJob) -> bool:
        return job.status == _PAUSED and request.ping.action is not PingAction.LOG

    def _find(self, request: PingRequest) -> PingedJob | None:
        if request.ping_uuid is not None:
            return self.by_uuid.get(request.ping_uuid)
        project = self.projects.get(request.ping_key or "")
        if project is None or request.slug is None:
            return None
        return self.by_slug.get((project[0], request.slug))

    def _remember(self, request: PingRequest, job: PingedJob) -> None:
        """Record a created or resumed job under every name the batch knows it by."""
        for ping_uuid, known in list(self.by_uuid.items()):
            if known.id == job.id:
                self.by_uuid[ping_uuid] = job
        if request.ping_uuid is not None:
            self.by_uuid[request.ping_uuid] = job
        self.by_slug[(job.project_id, job.slug)] = job

    async def _create(self, conn: Connection, request: PingRequest) -> PingedJob:
        assert request.ping_key is not None and request.slug is not None
        project_id, project_slug = self.projects[request.ping_key]
        spec = JobSpec(slug=request.slug, kind=JobKind.HEARTBEAT, name=request.slug)
        at = request.ping.at
        stored = await job_store.insert_job(
            conn,
            project_id=project_id,
            spec=spec,
            ping_uuid=uuid.uuid4(),
            next_fire_at=None,
            now=at,
        )
        diff = changed_fields({}, masked_body(spec))
        await _audit(conn, request.ping, project_id, "job.create", spec.slug, diff, at)
        job = PingedJob(
            stored.id,
            project_id,
            project_slug,
            spec.slug,
            _HEARTBEAT,
            JobStatus.ACTIVE.value,
            spec.queue,
            spec.min_runtime,
            spec.max_runtime,
        )
        self._remember(request, job)
        return job


async def _resume(conn: Connection, job: PingedJob, ping: Ping) -> PingedJob:
    """Un-pause a job because it was pinged (Healthchecks' behaviour), audited; its
    monitor state flips paused → new, as a resume through the API does."""
    stored = await job_store.get_job(conn, job.project_id, job.slug)
    assert stored is not None  # its row is locked by this transaction
    spec = replace(stored.spec, status=JobStatus.ACTIVE)
    await claims.discard_future_runs(conn, job.id, ping.at)  # slots are planned again
    # Before update_job, which moves monitor_state too (service/jobs.py set_paused).
    old = stored.monitor_state.value
    await monitor_store.set_state(conn, job.id, old, MonitorState.NEW.value, ping.at, "job.resume")
    await job_store.update_job(conn, stored, spec, next_fire(spec, ping.at), ping.at)
    diff = {"status": [JobStatus.PAUSED.value, JobStatus.ACTIVE.value]}
    await _audit(conn, ping, job.project_id, "job.resume", job.slug, diff, ping.at)
    return replace(job, status=JobStatus.ACTIVE.value)


async def _audit(
    conn: Connection,
    ping: Ping,
    project_id: uuid.UUID,
    action: str,
    slug: str,
    diff: dict[str, list[Any]],
    at: datetime,
) -> None:
    await audit_store.insert_audit(
        conn,
        project_id=project_id,
        at=at,
        actor=PING_ACTOR,
        ip=ping.client.get("remote_addr"),
        action=action,
        target=f"job:{slug}",
        diff=diff,
        outcome=AuditOutcome.SUCCESS,
        detail=f"{ping.action.value} ping",
    )

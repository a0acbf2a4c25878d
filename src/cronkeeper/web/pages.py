"""The read-only pages: jobs overview, job detail (with its live rows), run detail,
audit log and queue. Each reads through the services with keyset pages, never a whole
history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from cronkeeper.domain.jobs import TAG_PATTERN
from cronkeeper.domain.states import ACTIVE_RUN_STATES, RunStatus
from cronkeeper.service import audit as audit_service
from cronkeeper.service import jobs as job_service
from cronkeeper.service import overview as overview_service
from cronkeeper.service import queue as queue_service
from cronkeeper.service import runs as run_service
from cronkeeper.service.overview import Outcome
from cronkeeper.service.pagination import decode_cursor, encode_cursor
from cronkeeper.service.run_schemas import RunListItem, RunOut
from cronkeeper.service.schemas import JobOut
from cronkeeper.web.app import Web, get
from cronkeeper.web.auth import Viewer
from cronkeeper.web.views import bar_chart, render

HISTORY_PAGE = 25
CHART_RUNS = 60
STRIP_RUNS = 20
OVERVIEW_PAGE = 50
#: Search and state filters look through at most this many jobs (in slug order).
SCAN_LIMIT = 2000
ACTIVE = {status.value for status in ACTIVE_RUN_STATES}
MONITOR_STATES = ("new", "up", "late", "down", "paused")


def is_active(run: RunOut | RunListItem) -> bool:
    return run.status in ACTIVE


def _param(request: Request, name: str, limit: int = 200) -> str:
    return request.query_params.get(name, "").strip()[:limit]


async def overview(web: Web, request: Request, viewer: Viewer) -> Response:
    """Every job of the project: badges, schedule in words, countdown, last run, strip."""
    tag, state, search = _param(request, "tag", 64), _param(request, "state"), _param(request, "q")
    cursor = _param(request, "cursor", 512) or None
    errors = {}
    if tag and not re.match(TAG_PATTERN, tag):
        errors["tag"], tag = "is not a tag (letters, digits, _ . : -)", ""
    status = state if state in ("active", "paused") else None
    monitor = state if state in MONITOR_STATES and state != "paused" else None
    jobs, next_cursor = await _matching_jobs(web, viewer, tag, status, monitor, search, cursor)
    strips = await _strips(web, viewer, jobs)
    values = await web.base(
        request,
        viewer,
        jobs=jobs,
        strips=strips,
        next_cursor=next_cursor,
        filters={"tag": tag, "state": state, "q": search},
        errors=errors,
        states=("active", "paused", "up", "late", "down", "new"),
        filtered=bool(tag or state or search),
    )
    return render("overview.html", values)


async def _matching_jobs(
    web: Web,
    viewer: Viewer,
    tag: str,
    status: str | None,
    monitor: str | None,
    search: str,
    cursor: str | None,
) -> tuple[list[JobOut], str | None]:
    """A page of jobs passing the filters. Tag and status filter in SQL; monitor state and
    name search walk the slug-ordered pages, scanning at most SCAN_LIMIT jobs."""
    wanted: list[JobOut] = []
    scanned, needle = 0, search.lower()
    # Filtering here reads ahead; otherwise a page of the job list is the page shown
    # (each job listed costs its schedule's next fires and description).
    batch = 100 if monitor or needle else OVERVIEW_PAGE
    while True:
        query = job_service.JobQuery(tag or None, status, None, cursor, batch)
        page = await job_service.list_jobs(web.ctx, viewer.actor, viewer.project, query)
        for job in page.items:
            scanned += 1
            if monitor and job.monitor_state != monitor:
                continue
            if needle and needle not in job.slug and needle not in job.name.lower():
                continue
            wanted.append(job)
            if len(wanted) == OVERVIEW_PAGE:
                more = job is not page.items[-1] or page.next_cursor is not None
                return wanted, encode_cursor({"slug": job.slug}) if more else None
        cursor = page.next_cursor
        if cursor is None or scanned >= SCAN_LIMIT:
            return wanted, cursor


async def _strips(web: Web, viewer: Viewer, jobs: list[JobOut]) -> dict[str, list[Outcome]]:
    """The last STRIP_RUNS outcomes of each job, oldest first (one query for the page)."""
    found = await overview_service.recent_outcomes(
        web.ctx, viewer.actor, viewer.project, [job.id for job in jobs], STRIP_RUNS
    )
    return {job.slug: found.get(job.id, []) for job in jobs}


def _slug(request: Request) -> str:
    return str(request.path_params["slug"])


async def job_page(web: Web, request: Request, viewer: Viewer) -> Response:
    """One job: badges, countdown, last run, charts, and its run history."""
    slug = _slug(request)
    cursor = _param(request, "cursor", 512) or None
    job = await job_service.get_job(web.ctx, viewer.actor, viewer.project, slug)
    history = await run_service.list_runs(
        web.ctx,
        viewer.actor,
        viewer.project,
        run_service.RunQuery(cursor=cursor, limit=HISTORY_PAGE),
        job_slug=slug,
    )
    recent = history.items
    if cursor is None and history.next_cursor is not None:
        more = await run_service.list_runs(
            web.ctx,
            viewer.actor,
            viewer.project,
            run_service.RunQuery(cursor=history.next_cursor, limit=CHART_RUNS - HISTORY_PAGE),
            job_slug=slug,
        )
        recent = recent + more.items
    values = await web.base(
        request,
        viewer,
        job=job,
        runs=history.items,
        next_cursor=history.next_cursor,
        first_page=cursor is None,
        since=_newest_cursor(history.items) if cursor is None else None,
        duration_chart=bar_chart(recent, "duration_ms", label="duration") if not cursor else None,
        drift_chart=bar_chart(recent, "drift_ms", label="drift") if not cursor else None,
        message=None,
    )
    return render("job.html", values)


def _newest_cursor(runs: list[RunListItem]) -> str:
    """The position just after the newest run shown: the watcher asks for runs after it."""
    if not runs:
        return ""
    return encode_cursor({"at": runs[0].created_at.isoformat(), "id": runs[0].id})


async def watch_runs(web: Web, request: Request, viewer: Viewer) -> Response:
    """The hidden watcher row of a job's history and, after it, rows of runs created since
    the page (or the last poll) showed its newest run."""
    slug = _slug(request)
    since = _param(request, "since", 512) or None
    if since is not None:
        decode_cursor(since, ("at", "id"))  # InvalidInput for a cursor we did not issue
        query = run_service.RunQuery(order="asc", cursor=since, limit=HISTORY_PAGE)
        page = await run_service.list_runs(
            web.ctx, viewer.actor, viewer.project, query, job_slug=slug
        )
        new = list(reversed(page.items))
    else:
        query = run_service.RunQuery(limit=HISTORY_PAGE)
        page = await run_service.list_runs(
            web.ctx, viewer.actor, viewer.project, query, job_slug=slug
        )
        new = page.items
    since = _newest_cursor(new) if new else since or ""
    values = {"slug": slug, "runs": new, "since": since, "viewer": viewer}
    return render("fragments/watch.html", values)


async def run_row(web: Web, request: Request, viewer: Viewer) -> Response:
    """One history row (an active row polls itself through this until it is final)."""
    run = await run_service.get_run(
        web.ctx, viewer.actor, viewer.project, str(request.path_params["run_id"])
    )
    return render("fragments/row.html", {"run": run, "slug": run.job, "viewer": viewer})


async def run_expand(web: Web, request: Request, viewer: Viewer) -> Response:
    """The expanded part of a history row: error, why, payload, attempts, events."""
    run_id = str(request.path_params["run_id"])
    run = await run_service.get_run(web.ctx, viewer.actor, viewer.project, run_id)
    events, more = await run_service.list_events(
        web.ctx, viewer.actor, viewer.project, run_id, 0, 100
    )
    values = {"run": run, "events": events, "more_events": more is not None, "viewer": viewer}
    return render("fragments/expand.html", values)


async def run_page(web: Web, request: Request, viewer: Viewer) -> Response:
    """Everything about one run: fields, attempts timeline, events, output, actions."""
    run_id = str(request.path_params["run_id"])
    run = await run_service.get_run(web.ctx, viewer.actor, viewer.project, run_id)
    events, more = await run_service.list_events(
        web.ctx, viewer.actor, viewer.project, run_id, 0, 500
    )
    values = await web.base(
        request,
        viewer,
        run=run,
        events=events,
        more_events=more is not None,
        active=run.status in ACTIVE,
        can_cancel=run.status in ACTIVE,
        statuses=RunStatus,
    )
    return render("run.html", values)


AUDIT_ACTIONS = (
    "job.",
    "job.create",
    "job.update",
    "job.pause",
    "job.resume",
    "job.delete",
    "job.trigger",
    "run.",
    "run.replay",
    "run.cancel",
    "channel.",
    "key.",
    "user.",
    "config.apply",
)


def _instant(text: str) -> datetime | None:
    """A `datetime-local` value (read as UTC) or an ISO instant; ValueError if neither."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def audit_page(web: Web, request: Request, viewer: Viewer) -> Response:
    """Who changed what: filters by action, outcome and time range; newest first."""
    action, outcome = _param(request, "action", 32), _param(request, "outcome", 16)
    errors: dict[str, str] = {}
    if action and action not in AUDIT_ACTIONS:
        errors["action"], action = "is not an audit action", ""
    if outcome and outcome not in ("success", "failed"):
        errors["outcome"], outcome = "must be success or failed", ""
    bounds: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        text = _param(request, name, 40)
        try:
            bounds[name] = _instant(text) if text else None
        except ValueError:
            errors[name], bounds[name] = "is not a date and time", None
    before = _audit_position(_param(request, "cursor", 512))
    query = audit_service.AuditQuery(
        action or None, outcome or None, bounds["from"], bounds["to"], before, 51
    )
    entries = await audit_service.list_audit(web.ctx, viewer.actor, viewer.project, query)
    page, next_cursor = entries[:50], None
    if len(entries) > 50:
        next_cursor = encode_cursor({"at": page[-1].at.isoformat(), "id": page[-1].id})
    filters = {
        "action": action,
        "outcome": outcome,
        "from": _param(request, "from", 40),
        "to": _param(request, "to", 40),
    }
    values = await web.base(
        request,
        viewer,
        entries=page,
        next_cursor=next_cursor,
        filters=filters,
        errors=errors,
        actions=AUDIT_ACTIONS,
    )
    return render("audit.html", values)


def _audit_position(cursor: str) -> tuple[datetime, int] | None:
    if not cursor:
        return None
    position = decode_cursor(cursor, ("at", "id"))
    try:
        at, entry_id = datetime.fromisoformat(str(position["at"])), int(position["id"])
    except (TypeError, ValueError):
        return None
    return (at, entry_id) if at.tzinfo is not None else None


async def queue_page(web: Web, request: Request, viewer: Viewer) -> Response:
    """Queue depth and oldest wait per queue; throughput and start latency over an hour."""
    stats = await queue_service.queue_stats(web.ctx, viewer.actor, viewer.project)
    values = await web.base(
        request, viewer, stats=stats, hour_ago=datetime.now(UTC) - timedelta(hours=1)
    )
    return render("queue.html", values)


def routes(web: Web) -> list[BaseRoute]:
    pages: list[tuple[str, Any]] = [
        ("/", overview),
        ("/jobs/{slug}", job_page),
        ("/jobs/{slug}/watch", watch_runs),
        ("/runs/{run_id}", run_page),
        ("/runs/{run_id}/row", run_row),
        ("/runs/{run_id}/expand", run_expand),
        ("/audit", audit_page),
        ("/queue", queue_page),
    ]
    return [get(path, web.page(handler)) for path, handler in pages]

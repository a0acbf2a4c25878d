"""The project's topology map: every job, what it calls, who pings it, and how healthy it
has been (failure rate of its runs over the last day)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pydantic import BaseModel

from cronkeeper.domain.models import Actor
from cronkeeper.domain.topology import JobFacts, build_graph
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project
from cronkeeper.store import jobs as job_store
from cronkeeper.store import runs as run_store
from cronkeeper.store import stats as stats_store
from cronkeeper.store.engine import Connection

#: Health looks back this far.
WINDOW = timedelta(hours=24)
#: The map shows at most this many jobs (in slug order).
MAX_JOBS = 2000
#: Heartbeat sources are looked up (one small query each) for at most this many jobs.
MAX_SOURCES = 200


class TopologyNode(BaseModel):
    id: str
    kind: str  # job | destination | source
    label: str
    detail: str
    health: str  # ok | warn | bad | unknown | paused
    failure_rate: float | None
    x: int
    y: int
    width: int
    height: int
    job: str | None = None


class TopologyEdge(BaseModel):
    source: str
    target: str
    kind: str  # cron_trigger | ping | starts


class TopologyOut(BaseModel):
    nodes: list[TopologyNode]
    edges: list[TopologyEdge]
    width: int
    height: int
    window_hours: int
    truncated: bool


async def project_topology(ctx: Context, actor: Actor, project_slug: str) -> TopologyOut:
    """The laid-out graph of the project's jobs (positions in SVG user units)."""
    since = ctx.clock.now() - WINDOW
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        where = job_store.JobFilter(project.id, limit=MAX_JOBS + 1)
        jobs = await job_store.list_jobs(conn, where)
        truncated = len(jobs) > MAX_JOBS
        jobs = jobs[:MAX_JOBS]
        counts = await stats_store.status_counts(conn, project.id, since)
        heartbeats = [job.id for job in jobs if job.spec.kind.value == "heartbeat"]
        sources = await _ping_sources(conn, heartbeats[:MAX_SOURCES])
    facts = [
        JobFacts(
            slug=job.slug,
            name=job.spec.name,
            kind=job.spec.kind.value,
            status=job.spec.status.value,
            target=job.spec.target,
            queue=job.spec.queue,
            succeeded=counts.get(job.id, {}).get("succeeded", 0),
            failed=counts.get(job.id, {}).get("failed", 0)
            + counts.get(job.id, {}).get("missed", 0),
            ping_source=sources.get(job.id),
        )
        for job in jobs
    ]
    graph = build_graph(facts)
    return TopologyOut(
        nodes=[TopologyNode(**node.__dict__) for node in graph.nodes],
        edges=[TopologyEdge(**edge.__dict__) for edge in graph.edges],
        width=graph.width,
        height=graph.height,
        window_hours=int(WINDOW.total_seconds() // 3600),
        truncated=truncated,
    )


async def _ping_sources(conn: Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The client address of each heartbeat job's last ping (from its last run's events)."""
    last = await job_store.last_runs(conn, job_ids)
    sources: dict[uuid.UUID, str] = {}
    for job_id, run in last.items():
        for event in await run_store.list_events(conn, run.id, 0, 5):
            address = (event.data or {}).get("remote_addr")
            if isinstance(address, str) and address:
                sources[job_id] = address[:64]
    return sources

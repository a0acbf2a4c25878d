"""The topology map: which jobs call what, as a graph with a deterministic layered layout.

Three columns, left to right: heartbeat sources (who pings a heartbeat job), jobs, and
destinations (HTTP hosts, command workers, Python modules). Every node has the same
height, and each column places its nodes top to bottom at least a row apart, so no two
nodes overlap however many jobs there are. Jobs are sorted by their first destination,
and destinations and sources sit at the mean height of their jobs (then pushed down to
keep the spacing), which keeps most edges short and uncrossed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

NODE_WIDTH = 230
NODE_HEIGHT = 46
ROW = NODE_HEIGHT + 14
COLUMN_GAP = 130
MARGIN = 24
LABEL_CHARACTERS = 30


@dataclass(frozen=True)
class JobFacts:
    """What the map needs to know about one job."""

    slug: str
    name: str
    kind: str
    status: str  # active | paused
    target: dict[str, object] | None
    queue: str = "default"
    succeeded: int = 0  # recent runs, by outcome
    failed: int = 0
    ping_source: str | None = None  # client address of the last ping (heartbeats)


@dataclass(frozen=True)
class Node:
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
    job: str | None = None  # the job's slug, for job nodes


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # cron_trigger (job → what it calls) | ping (source → heartbeat) | starts


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def health(succeeded: int, failed: int, paused: bool = False) -> tuple[str, float | None]:
    """(health, failure rate) from recent outcomes: ok below 5 % failed, bad from 50 %."""
    decided = succeeded + failed
    rate = round(failed / decided, 4) if decided else None
    if paused:
        return "paused", rate
    if rate is None:
        return "unknown", None
    return ("ok" if rate < 0.05 else "warn" if rate < 0.5 else "bad"), rate


def destinations(job: JobFacts) -> list[tuple[str, str]]:
    """(node id, label) of everything the job calls, in target order, without repeats."""
    target = job.target or {}
    found: list[tuple[str, str]] = []
    if job.kind == "workflow":
        for step in _list(target.get("steps")):
            if isinstance(step, dict):
                step_job = JobFacts("", "", str(step.get("kind")), "", _dict(step.get("target")))
                found += destinations(JobFacts(**{**step_job.__dict__, "queue": job.queue}))
    elif job.kind == "http":
        host = _host(str(target.get("url", "")))
        found.append((f"http:{host}", host))
    elif job.kind == "command":
        found.append((f"worker:{job.queue}", f"worker:{job.queue}"))
    elif job.kind in ("python", "trigger"):
        module = str(target.get("callable", "?")).split(":", 1)[0]
        found.append((f"python:{module}", f"python:{module}"))
    return list(dict.fromkeys(found))


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "?"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return f"{host}:{port}" if port and port != default else host


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARACTERS else text[: LABEL_CHARACTERS - 1] + "…"


def build_graph(jobs: list[JobFacts]) -> Graph:
    """Nodes, edges and positions for the jobs of a project (same input, same picture)."""
    jobs = sorted(jobs, key=lambda job: (_first_destination(job), job.slug))
    edges: list[Edge] = []
    calls: dict[str, list[int]] = {}  # destination → rows of the jobs calling it
    labels: dict[str, str] = {}
    rates: dict[str, list[int]] = {}
    slugs = {job.slug for job in jobs}
    for row, job in enumerate(jobs):
        for node_id, label in destinations(job):
            calls.setdefault(node_id, []).append(row)
            labels[node_id] = label
            counts = rates.setdefault(node_id, [0, 0])
            counts[0] += job.succeeded
            counts[1] += job.failed
            edges.append(Edge(f"job:{job.slug}", node_id, "cron_trigger"))
        if job.kind == "heartbeat":
            source = job.ping_source or "heartbeat"
            node_id = f"source:{source}"
            calls.setdefault(node_id, []).append(row)
            labels[node_id] = f"pings from {source}" if job.ping_source else "heartbeat"
            edges.append(Edge(node_id, f"job:{job.slug}", "ping"))
        starts = (job.target or {}).get("starts") if job.kind == "trigger" else None
        if isinstance(starts, str) and starts in slugs:
            edges.append(Edge(f"job:{job.slug}", f"job:{starts}", "starts"))
    has_sources = any(node_id.startswith("source:") for node_id in calls)
    job_x = MARGIN + (NODE_WIDTH + COLUMN_GAP if has_sources else 0)
    nodes = [_job_node(job, row, job_x) for row, job in enumerate(jobs)]
    for column, prefix in ((MARGIN, "source:"), (job_x + NODE_WIDTH + COLUMN_GAP, "")):
        placed = _column(
            {k: v for k, v in calls.items() if k.startswith("source:") == (prefix != "")}
        )
        for node_id, y in placed:
            succeeded, failed = rates.get(node_id, [0, 0])
            state, rate = health(succeeded, failed)
            kind = "source" if prefix else "destination"
            detail = f"{len(calls[node_id])} job" + ("s" if len(calls[node_id]) != 1 else "")
            nodes.append(
                Node(
                    node_id,
                    kind,
                    _short(labels[node_id]),
                    detail,
                    "unknown" if prefix else state,
                    None if prefix else rate,
                    column,
                    y,
                    NODE_WIDTH,
                    NODE_HEIGHT,
                )
            )
    right = max((node.x + node.width for node in nodes), default=MARGIN)
    bottom = max((node.y + node.height for node in nodes), default=MARGIN)
    return Graph(nodes, edges, right + MARGIN, bottom + MARGIN)


def _first_destination(job: JobFacts) -> str:
    found = destinations(job)
    return found[0][1] if found else "~" + job.kind


def _job_node(job: JobFacts, row: int, x: int) -> Node:
    state, rate = health(job.succeeded, job.failed, paused=job.status == "paused")
    runs = job.succeeded + job.failed
    detail = job.kind + (f" · {rate:.0%} failed of {runs}" if rate is not None else " · no runs")
    return Node(
        f"job:{job.slug}",
        "job",
        _short(job.name or job.slug),
        detail,
        state,
        rate,
        x,
        MARGIN + row * ROW,
        NODE_WIDTH,
        NODE_HEIGHT,
        job.slug,
    )


def _column(calls: dict[str, list[int]]) -> list[tuple[str, int]]:
    """(node id, y) for one side column: each node at the mean row of its jobs, in that
    order (ties by id), pushed down as needed to stay a row below the previous node."""
    ordered = sorted(
        calls, key=lambda node_id: (sum(calls[node_id]) / len(calls[node_id]), node_id)
    )
    placed: list[tuple[str, int]] = []
    lowest = MARGIN - ROW
    for node_id in ordered:
        wanted = MARGIN + round(sum(calls[node_id]) / len(calls[node_id]) * ROW)
        y = max(wanted, lowest + ROW)
        placed.append((node_id, y))
        lowest = y
    return placed

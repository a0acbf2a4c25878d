"""The topology map: graph and layout (pure), the API route, and the page."""

from __future__ import annotations

import re
from itertools import combinations

import httpx

from cronkeeper.domain.models import Actor
from cronkeeper.domain.topology import JobFacts, Node, build_graph, destinations, health
from cronkeeper.service import jobs as job_service
from cronkeeper.service.context import Context

from .conftest import Browser, Keys, LogIn, http_job
from .ledger import add_runs


def _jobs(count: int) -> list[JobFacts]:
    kinds = [
        ("http", {"url": "https://api.example.com/a"}),
        ("http", {"url": "http://10.0.0.5:8081/x"}),
        ("command", {"command": ["ls"]}),
        ("python", {"callable": "myapp.tasks:cleanup"}),
        ("heartbeat", None),
    ]
    facts = []
    for index in range(count):
        kind, target = kinds[index % len(kinds)]
        source = f"192.0.2.{index % 3}" if kind == "heartbeat" else None
        facts.append(JobFacts(f"job-{index:03d}", "", kind, "active", target, ping_source=source))
    return facts


def _overlap(a: Node, b: Node) -> bool:
    return not (
        a.x + a.width <= b.x
        or b.x + b.width <= a.x
        or a.y + a.height <= b.y
        or b.y + b.height <= a.y
    )


def test_destinations_name_hosts_workers_modules_and_workflow_steps() -> None:
    assert destinations(
        JobFacts("a", "", "http", "active", {"url": "https://h.example:8443/x"})
    ) == [("http:h.example:8443", "h.example:8443")]
    assert destinations(JobFacts("b", "", "command", "active", {}, queue="gpu")) == [
        ("worker:gpu", "worker:gpu")
    ]
    assert destinations(JobFacts("c", "", "python", "active", {"callable": "m.n:f"})) == [
        ("python:m.n", "python:m.n")
    ]
    steps = {
        "steps": [
            {"name": "a", "kind": "http", "target": {"url": "https://x.example/1"}},
            {"name": "b", "kind": "http", "target": {"url": "https://x.example/2"}},
            {"name": "c", "kind": "approval"},
        ]
    }
    assert destinations(JobFacts("d", "", "workflow", "active", steps)) == [
        ("http:x.example", "x.example")
    ]


def test_health_comes_from_the_recent_failure_rate() -> None:
    assert health(0, 0) == ("unknown", None)
    assert health(99, 1) == ("ok", 0.01)
    assert health(8, 2) == ("warn", 0.2)
    assert health(1, 3) == ("bad", 0.75)
    assert health(1, 3, paused=True) == ("paused", 0.75)


def test_sixty_jobs_are_laid_out_without_overlaps_and_deterministically() -> None:
    facts = _jobs(60)
    graph = build_graph(facts)
    assert len([n for n in graph.nodes if n.kind == "job"]) == 60
    for a, b in combinations(graph.nodes, 2):
        assert not _overlap(a, b), (a.id, b.id)
    assert all(n.x + n.width <= graph.width and n.y + n.height <= graph.height for n in graph.nodes)
    assert build_graph(list(reversed(facts))) == graph
    kinds = {edge.kind for edge in graph.edges}
    assert kinds == {"cron_trigger", "ping"}
    assert any(
        n.id == "source:192.0.2.1" and n.label == "pings from 192.0.2.1" for n in graph.nodes
    )
    columns = sorted({n.x for n in graph.nodes})
    assert len(columns) == 3  # sources, jobs, destinations


def test_a_trigger_job_is_drawn_starting_its_target() -> None:
    facts = [
        JobFacts("ingest", "", "http", "active", {"url": "https://i.example/"}),
        JobFacts("poll", "", "trigger", "active", {"callable": "app.t:new", "starts": "ingest"}),
    ]
    edges = build_graph(facts).edges
    assert any(
        e.source == "job:poll" and e.target == "job:ingest" and e.kind == "starts" for e in edges
    )


async def test_the_api_returns_nodes_and_edges_with_health(
    ctx: Context, admin: Actor, browser: Browser, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    await add_runs(ctx, "nightly", 8, fail_every=2)
    client: httpx.AsyncClient = browser()
    response = await client.get(
        "/api/v1/projects/default/topology", headers={"Authorization": f"Bearer {keys.read}"}
    )
    assert response.status_code == 200
    data = response.json()["data"]
    job = next(n for n in data["nodes"] if n["id"] == "job:nightly")
    assert (job["health"], job["failure_rate"], job["job"]) == ("bad", 0.5, "nightly")
    host = next(n for n in data["nodes"] if n["kind"] == "destination")
    assert host["label"] == "reports.example.com"
    assert data["edges"] == [
        {"source": "job:nightly", "target": "http:reports.example.com", "kind": "cron_trigger"}
    ]
    other = await client.get(
        "/api/v1/projects/default/topology", headers={"Authorization": f"Bearer {keys.other}"}
    )
    assert other.status_code == 403


async def test_the_page_draws_job_nodes_as_links_with_clocks(
    ctx: Context, admin: Actor, logged_in: LogIn, keys: Keys
) -> None:
    await job_service.create_job(ctx, admin, "default", http_job("nightly"))
    client = await logged_in(keys.read)
    html = (await client.get("/topology")).text
    assert '<a href="/jobs/nightly" class="node job h-unknown"' in html
    assert 'class="clock"' in html
    assert re.search(r'<path class="edge cron_trigger" d="M[^"]+" data-kind="cron_trigger">', html)
    assert "animate" not in html

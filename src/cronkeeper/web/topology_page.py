"""`/topology`: the project's jobs and what they call, as an inline SVG map."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from cronkeeper.service import topology as topology_service
from cronkeeper.service.topology import TopologyEdge, TopologyNode
from cronkeeper.web.app import Web, get
from cronkeeper.web.auth import Viewer
from cronkeeper.web.views import render


@dataclass(frozen=True)
class DrawnEdge:
    kind: str
    path: str
    title: str


def edge_path(edge: TopologyEdge, nodes: dict[str, TopologyNode]) -> DrawnEdge | None:
    """An SVG path for an edge: a curve from the right of its source to the left of its
    target, or (job → job, same column) a loop out to the left."""
    source, target = nodes.get(edge.source), nodes.get(edge.target)
    if source is None or target is None:
        return None
    sy, ty = source.y + source.height / 2, target.y + target.height / 2
    if source.x == target.x:
        x = source.x
        path = f"M{x},{sy} C{x - 60},{sy} {x - 60},{ty} {x},{ty}"
    else:
        x1, x2 = source.x + source.width, target.x
        middle = (x1 + x2) / 2
        path = f"M{x1},{sy} C{middle},{sy} {middle},{ty} {x2},{ty}"
    return DrawnEdge(edge.kind, path, f"{source.label} → {target.label} ({edge.kind})")


async def topology_page(web: Web, request: Request, viewer: Viewer) -> Response:
    graph = await topology_service.project_topology(web.ctx, viewer.actor, viewer.project)
    by_id = {node.id: node for node in graph.nodes}
    edges = [drawn for edge in graph.edges if (drawn := edge_path(edge, by_id))]
    values = await web.base(request, viewer, graph=graph, edges=edges)
    return render("topology.html", values)


def routes(web: Web) -> list[BaseRoute]:
    return [get("/topology", web.page(topology_page))]

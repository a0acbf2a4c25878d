"""`/api/v1/projects/{project}/topology`"""

from __future__ import annotations

from fastapi import APIRouter

from cronkeeper.api.deps import ActorDep, ContextDep
from cronkeeper.api.routes.common import problems
from cronkeeper.api.schemas import Data
from cronkeeper.service import topology as topology_service
from cronkeeper.service.topology import TopologyOut

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["topology"])


@router.get("/topology", responses=problems(404))
async def topology(ctx: ContextDep, actor: ActorDep, project: str) -> Data[TopologyOut]:
    """Jobs, what they call (HTTP hosts, command workers, Python modules) and who pings
    them, laid out in columns (x, y in SVG units); nodes carry their health over the
    last 24 hours (failure rate of finished runs)."""
    return Data(data=await topology_service.project_topology(ctx, actor, project))

"""GET /api/v1/projects/{project}: settings, and the ping key only for keys that may use it."""

from __future__ import annotations

import httpx

from cronkeeper.api.app import create_app
from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service import keys
from cronkeeper.service.context import Context


async def test_write_keys_see_the_ping_key_and_read_keys_do_not(ctx: Context, admin: Actor) -> None:
    writer = await keys.create_key(ctx, admin, project_slug="ops", role=KeyRole.WRITE, name="w")
    reader = await keys.create_key(ctx, admin, project_slug="ops", role=KeyRole.READ, name="r")
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        as_writer = await http.get(
            "/api/v1/projects/ops", headers={"Authorization": f"Bearer {writer.plaintext}"}
        )
        as_reader = await http.get(
            "/api/v1/projects/ops", headers={"Authorization": f"Bearer {reader.plaintext}"}
        )
        elsewhere = await http.get(
            "/api/v1/projects/default", headers={"Authorization": f"Bearer {writer.plaintext}"}
        )

    project = as_writer.json()["data"]
    assert project["slug"] == "ops" and project["retention_days"] == 30
    assert project["ping_key"] and len(project["ping_key"]) >= 16
    assert project["ping_url_prefix"] == f"http://cronkeeper.test/ping/{project['ping_key']}"
    assert as_reader.json()["data"]["ping_key"] is None
    assert elsewhere.status_code == 403

"""Public badges through HTTP (SQLite and PostgreSQL): per job and per tag, SVG, JSON and
shields JSON, the worst state winning, unguessable keys, and render time.
"""

from __future__ import annotations

import statistics
import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from sqlalchemy import update

from cronkeeper.service.context import Context
from cronkeeper.store.tables import jobs

from .conftest import JOBS, Keys, bearer, http_job


@pytest.fixture
async def prefix(client: httpx.AsyncClient, keys: Keys) -> str:
    """`/badge/<badge_key>` of project default, from the v1 project endpoint."""
    project = await client.get("/api/v1/projects/default", headers=bearer(keys.write))
    url: str = project.json()["data"]["badge_url_prefix"]
    assert url.startswith("http://cronkeeper.test/badge/")
    return url.removeprefix("http://cronkeeper.test")


async def add_job(
    client: httpx.AsyncClient, ctx: Context, keys: Keys, slug: str, state: str, *tags: str
) -> None:
    body = {"slug": slug, "kind": "heartbeat", "schedule": "every 1h", "tags": list(tags)}
    response = await client.post(JOBS, json=body, headers=bearer(keys.write))
    assert response.status_code == 201, response.text
    async with ctx.db.write() as conn:
        await conn.execute(update(jobs).where(jobs.c.slug == slug).values(monitor_state=state))


async def badge_json(client: httpx.AsyncClient, url: str) -> object:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-cache"
    return response.json()


async def test_job_badge_in_each_format(
    client: httpx.AsyncClient, ctx: Context, keys: Keys, prefix: str
) -> None:
    await add_job(client, ctx, keys, "backups", "late")

    svg = await client.get(f"{prefix}/backups.svg")

    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.headers["cache-control"] == "no-cache"
    assert "backups" in svg.text and ">late<" in svg.text
    ET.fromstring(svg.text)
    summary = {"status": "late", "total": 1, "grace": 1, "down": 0}
    assert await badge_json(client, f"{prefix}/backups.json") == summary
    assert (await badge_json(client, f"{prefix}/backups.json?states=2"))["status"] == "up"  # type: ignore[index]
    shields = await badge_json(client, f"{prefix}/backups.shields")
    assert shields == {
        "schemaVersion": 1,
        "label": "backups",
        "message": "late",
        "color": "important",
    }


async def test_tag_badge_takes_the_worst_state_of_its_jobs(
    client: httpx.AsyncClient, ctx: Context, keys: Keys, prefix: str
) -> None:
    await add_job(client, ctx, keys, "web", "up", "prod")
    await add_job(client, ctx, keys, "db", "late", "prod")
    await add_job(client, ctx, keys, "cache", "paused", "prod", "edge")
    await add_job(client, ctx, keys, "batch", "down", "ops")
    await client.post(JOBS, json=http_job("report", tags=["prod"]), headers=bearer(keys.write))

    assert await badge_json(client, f"{prefix}/tag/prod.json") == {
        "status": "late", "total": 4, "grace": 1, "down": 0,
    }  # fmt: skip
    assert (await badge_json(client, f"{prefix}/tag/edge.json"))["status"] == "up"  # type: ignore[index]
    assert (await badge_json(client, f"{prefix}/tag/*.json"))["status"] == "down"  # type: ignore[index]
    svg = await client.get(f"{prefix}/tag/prod.svg?states=2")
    assert ">prod<" in svg.text and ">up<" in svg.text
    assert await badge_json(client, f"{prefix}/tag/unused.json") == {
        "status": "up", "total": 0, "grace": 0, "down": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "path", ["/badge/not-the-key/backups.svg", "{prefix}/missing.svg", "{prefix}/backups.png",
             "{prefix}/backups", "{prefix}/.svg"],
)  # fmt: skip
async def test_unknown_keys_jobs_and_formats_are_404(
    client: httpx.AsyncClient, ctx: Context, keys: Keys, prefix: str, path: str
) -> None:
    await add_job(client, ctx, keys, "backups", "up")

    response = await client.get(path.format(prefix=prefix))

    assert response.status_code == 404


async def test_read_keys_do_not_get_the_badge_prefix(client: httpx.AsyncClient, keys: Keys) -> None:
    project = await client.get("/api/v1/projects/default", headers=bearer(keys.read))

    assert project.json()["data"]["badge_url_prefix"] is None


async def test_a_badge_renders_in_under_5_ms(
    client: httpx.AsyncClient, ctx: Context, keys: Keys, prefix: str
) -> None:
    for n in range(20):
        await add_job(client, ctx, keys, f"job-{n}", "up", "prod")

    async def median_time() -> float:
        timings = []
        for _ in range(40):
            started = time.process_time()
            response = await client.get(f"{prefix}/tag/prod.svg")
            timings.append(time.process_time() - started)
            assert response.status_code == 200
        return statistics.median(timings)

    # The machine is shared with other work: CPU time of this process (client, app and
    # driver threads), best of three rounds, measures the badge rather than the neighbours.
    best = min([await median_time() for _ in range(3)])

    assert best < 0.005, best

"""Health, readiness, the OpenAPI document and the docs page, and unknown routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cronkeeper import __version__
from cronkeeper.api.app import create_app
from cronkeeper.service.setup import open_context

from .conftest import BASE_URL, PROBLEM_JSON

UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:1/nothing-listens-here"

#: Every route of DESIGN §3 implemented so far, with its methods.
ROUTES = {
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/api/v1/projects/{project}/jobs": {"get", "post"},
    "/api/v1/projects/{project}/jobs/{slug}": {"get", "patch", "delete"},
    "/api/v1/projects/{project}/jobs/{slug}/pause": {"post"},
    "/api/v1/projects/{project}/jobs/{slug}/resume": {"post"},
    "/api/v1/projects/{project}/audit": {"get"},
}


async def test_healthz_answers_200_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"] == __version__


async def test_readyz_answers_200_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


@pytest.fixture
async def unreachable_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client over an app whose database does not answer (nothing listens on port 1)."""
    ctx = await open_context(UNREACHABLE_DB, migrate=False)
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client
    finally:
        await ctx.db.dispose()


async def test_readyz_answers_503_when_the_database_is_unreachable(
    unreachable_client: httpx.AsyncClient,
) -> None:
    response = await unreachable_client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["database"] not in (None, "ok")
    assert (await unreachable_client.get("/healthz")).status_code == 200


async def test_openapi_lists_every_implemented_route_and_the_job_body_models(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path, methods in ROUTES.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    schemas = document["components"]["schemas"]
    assert {"JobIn", "JobPatch", "HttpTarget"} <= set(schemas)
    assert "required" not in schemas["JobPatch"]
    assert {"slug", "kind"} <= set(schemas["JobIn"]["required"])
    assert "url" in schemas["HttpTarget"]["required"]
    create = paths["/api/v1/projects/{project}/jobs"]["post"]
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/JobIn"}
    assert {"201", "401", "403", "409", "422"} <= set(create["responses"])


async def test_docs_page_is_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == 404
    assert response.json()["type"] == "/problems/not-found"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/projects/default/jobs", {"GET", "POST"}),
        ("/api/v1/projects/default/jobs/nightly", {"GET", "PATCH", "DELETE"}),
        ("/api/v1/projects/default/jobs/nightly/pause", {"POST"}),
    ],
)
async def test_a_wrong_method_is_a_405_problem_whose_allow_header_lists_every_method(
    client: httpx.AsyncClient, path: str, allowed: set[str]
) -> None:
    response = await client.put(path)

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert set(response.headers["allow"].split(", ")) == allowed

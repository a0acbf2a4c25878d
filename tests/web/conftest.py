"""Dashboard fixtures: the server's app (API + dashboard) over an ASGI transport, keys of
every role, and a logged-in browser-like client (cookies kept, redirects not followed).

Page tests run on SQLite: the dashboard reaches the ledger only through the services,
whose SQL is tested on both databases elsewhere."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cronkeeper.api.app import create_app
from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context
from cronkeeper.web.app import dashboard_routes

BASE_URL = "http://testserver"
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    return sqlite_url


@dataclass(frozen=True)
class Keys:
    read: str
    write: str
    admin: str
    other: str


@pytest.fixture
async def keys(ctx: Context, admin: Actor) -> Keys:
    async def make(project: str, role: KeyRole, name: str) -> str:
        created = await key_service.create_key(
            ctx, admin, project_slug=project, role=role, name=name
        )
        return created.plaintext

    return Keys(
        read=await make("default", KeyRole.READ, "reader"),
        write=await make("default", KeyRole.WRITE, "writer"),
        admin=await make("default", KeyRole.ADMIN, "boss"),
        other=await make("other", KeyRole.WRITE, "other-writer"),
    )


def server_app(ctx: Context) -> Any:
    """What `cronkeeper serve` serves: the API app with the dashboard routes added."""
    app = create_app(ctx)
    app.router.routes.extend(dashboard_routes(ctx))
    return app


Browser = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def browser(ctx: Context) -> AsyncIterator[Browser]:
    """Make cookie-keeping clients over one app (each is a separate visitor)."""
    app = server_app(ctx)
    clients: list[httpx.AsyncClient] = []

    def make(**options: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        options.setdefault("base_url", BASE_URL)
        client = httpx.AsyncClient(transport=transport, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def csrf_of(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """Fill in and submit the login form (api_key=… or username=…, password=…)."""
    form = await client.get("/login")
    assert form.status_code == 200
    data = {"csrf": csrf_of(form.text), "next": "/", **fields}
    return await client.post("/login", data=data)


LogIn = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture
def logged_in(browser: Browser) -> LogIn:
    """`await logged_in(key)`: a client with a session for that key."""

    async def make(key: str) -> httpx.AsyncClient:
        client = browser()
        response = await log_in(client, api_key=key)
        assert response.status_code == 303, response.text
        return client

    return make


async def page_csrf(client: httpx.AsyncClient, path: str = "/") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def http_job(slug: str, url: str = "https://reports.example.com/run", **extra: Any) -> Any:
    return {
        "slug": slug,
        "kind": "http",
        "schedule": "*/5 * * * *",
        "target": {"method": "POST", "url": url, "headers": {"Authorization": "Bearer s3cret"}},
        **extra,
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

"""Fixtures for the API tests: an HTTP client over the ASGI app, keys of every role, and a
real `cronkeeper serve` process for the tests that need a socket.

`client` carries no key; `api` is the same client acting with the write key of project
`default`. Any other role is added per request with `bearer(key)`, so it shows at the
call site.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronkeeper.api.app import create_app
from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context

BIN = Path(sys.executable).parent
BASE_URL = "http://testserver"
JOBS = "/api/v1/projects/default/jobs"
AUDIT = "/api/v1/projects/default/audit"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Keys:
    """Plaintext keys of project `default` (read, write, admin) and one of project `other`."""

    read: str
    write: str
    admin: str
    other: str


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def http_job(slug: str, **fields: Any) -> dict[str, Any]:
    """A valid HTTP job body; `fields` override or extend it."""
    body: dict[str, Any] = {
        "slug": slug,
        "kind": "http",
        "schedule": "0 2 * * *",
        "target": {"method": "POST", "url": "https://reports.example.com/run"},
    }
    body.update(fields)
    return body


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


@pytest.fixture
async def make_client(ctx: Context) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Build clients over `create_app(ctx, **options)`; all are closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def make(**options: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_app(ctx, **options))
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over the API app; requests carry no key unless the test adds one."""
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
async def api(client: httpx.AsyncClient, keys: Keys) -> httpx.AsyncClient:
    """The same client with the write key of project `default` on every request."""
    client.headers.update(bearer(keys.write))
    return client


# ---------------------------------------------------------------------------
# A real server process


@dataclass
class RealServer:
    url: str
    db_url: str
    admin_key: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_ready(server: RealServer, timeout: float = 20.0) -> None:
    """Poll the banner for the first admin key, then /healthz, until both answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"cronkeeper serve exited early:\n{server.output()}")
        match = re.search(r"export CRONKEEPER_API_KEY=(\S+)", server.output())
        if match:
            server.admin_key = match.group(1)
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    return
        time.sleep(0.05)
    pytest.fail(f"cronkeeper serve was not ready within {timeout}s:\n{server.output()}")


@contextlib.contextmanager
def serve(tmp_path: Path, **env: str) -> Iterator[RealServer]:
    """`cronkeeper serve` on a fresh SQLite file and a free port, ready to answer; killed
    on the way out if the test left it running."""
    port = free_port()
    db_url = f"sqlite:///{tmp_path}/served.db"
    log = tmp_path / "serve.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **env}
    command = [str(BIN / "cronkeeper"), "serve", "--db", db_url, "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=full_env)
    server = RealServer(f"http://127.0.0.1:{port}", db_url, "", process, log)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[RealServer]:
    with serve(tmp_path) as server:
        yield server

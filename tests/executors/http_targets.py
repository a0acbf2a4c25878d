"""Real loopback targets for the HTTP executor tests (never any other address).

- `start_web_target`: an aiohttp.web app on 127.0.0.1 (random port), optionally TLS.
- `RawTarget`: a bare TCP server that misbehaves on purpose (reset, garbage, truncation)
  or, on 127.0.0.2, counts connections so a test can prove none was attempted.
- `StaticResolver`: DNS from a dict, so no test touches the system resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import subprocess
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

HUGE_BODY_SIZE = 10 * 1024 * 1024
_CHUNK = b"x" * 65536


async def echo(request: web.Request) -> web.Response:
    """200 with what was received: method, path, headers and body."""
    payload = {
        "method": request.method,
        "path": request.path,
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "body": await request.text(),
    }
    return web.json_response(payload, headers={"X-Request-Id": "req-1", "Server": "target"})


async def status(request: web.Request) -> web.Response:
    """Answers with the status in the path; 503 also asks to retry after 7 s."""
    code = int(request.match_info["code"])
    headers = {"Retry-After": "7"} if code == 503 else {}
    return web.Response(status=code, text=f"status {code}", headers=headers)


async def slow(request: web.Request) -> web.Response:
    """Answers far later than any test timeout (cancelled when the client leaves)."""
    await asyncio.sleep(30)
    return web.Response(text="late")


async def redirect_chain(request: web.Request) -> web.Response:
    """/redirect/n → /redirect/n-1 … /redirect/0 echoes."""
    hops = int(request.match_info["n"])
    if hops == 0:
        return await echo(request)
    raise web.HTTPFound(f"/redirect/{hops - 1}")


async def redirect_with(request: web.Request) -> web.Response:
    """Redirects with the status `code` to the `to` query parameter."""
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={"Location": request.query["to"]})


async def huge(request: web.Request) -> web.StreamResponse:
    """Streams HUGE_BODY_SIZE bytes of "x" without holding them in memory."""
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.content_length = HUGE_BODY_SIZE
    await response.prepare(request)
    for _ in range(HUGE_BODY_SIZE // len(_CHUNK)):
        await response.write(_CHUNK)
    await response.write_eof()
    return response


def target_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_route("*", "/redirect/{n}", redirect_chain)
    app.router.add_route("*", "/redirect-with", redirect_with)
    app.router.add_get("/huge", huge)
    return app


async def start_web_target(context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """The target app on 127.0.0.1 and its port; clean up with `runner.cleanup()`."""
    runner = web.AppRunner(
        target_app(), handler_cancellation=True, shutdown_timeout=0.5, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server context with a certificate made right now by the openssl CLI."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-subj", "/CN=localhost", "-days", "1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class RawTarget:
    """A bare TCP server: counts connections and answers in the chosen `mode`.

    Modes: "ok" (a valid 200), "reset" (RST right after the request), "reset-mid-body"
    (headers and 10 bytes of 100, then RST), "garbage" (not HTTP at all), "truncated"
    (promises 100 bytes, sends 10, hangs up cleanly).
    """

    def __init__(self, host: str, mode: str) -> None:
        self.host = host
        self.mode = mode
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> RawTarget:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(_RAW_ANSWERS[self.mode])
            await writer.drain()
            if self.mode.startswith("reset"):
                await asyncio.sleep(0.05 if self.mode == "reset-mid-body" else 0)
                reset(writer)
                return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (linger 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


_RAW_ANSWERS = {
    "ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    "reset": b"",
    "reset-mid-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
    "garbage": b"THIS IS NOT HTTP\r\n\r\n",
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
}


class StaticResolver(AbstractResolver):
    """DNS from a dict of name → addresses; names mapped to None fail like NXDOMAIN."""

    def __init__(self, table: dict[str, list[str] | None]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        addresses = self.table.get(host)
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


def json_body(text: str | None) -> dict[str, object]:
    assert text is not None
    data: dict[str, object] = json.loads(text)
    return data

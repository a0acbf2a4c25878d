"""Real local peers for the channel tests, all on 127.0.0.1 (never any other address).

- `Receiver`: an aiohttp.web app recording every request; `/ok` answers 200,
  `/status/{code}` that status, `/flaky/{n}` 503 the first n times then 200.
- `SmtpServer`: a real aiosmtpd server (its own thread) keeping every message; with
  `password=` it asks for AUTH LOGIN/PLAIN and refuses other passwords with 535.
"""

from __future__ import annotations

import asyncio
import email
import socket
from collections import Counter
from dataclasses import dataclass, field
from email.message import Message as EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Receiver:
    requests: list[Request] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    runner: web.AppRunner | None = None
    port: int = 0
    delay: float = 0.0

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str | None = None) -> list[str]:
        return [r.body for r in self.requests if path is None or r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(Request(request.method, request.path, dict(request.headers), body))
        self.hits[request.path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        parts = request.path.strip("/").split("/")
        if parts[0] == "status":
            return web.Response(status=int(parts[1]), text=f"answer {parts[1]}")
        if parts[0] == "flaky" and self.hits[request.path] <= int(parts[1]):
            return web.Response(status=503, text="try later")
        return web.Response(text="ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class _Keeper:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpServer:
    def __init__(self, password: str | None = None) -> None:
        self.keeper = _Keeper()
        self.port = free_port()
        options: dict[str, Any] = {}
        if password is not None:

            def authenticate(
                server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(auth_data, LoginPassword) and auth_data.password == password.encode()
                )
                return AuthResult(success=ok, handled=False)  # 535 when refused

            options = {
                "authenticator": authenticate,
                "auth_require_tls": False,
                "auth_exclude_mechanism": ["LOGIN"],  # one try: PLAIN
            }
        self.controller = Controller(self.keeper, hostname="127.0.0.1", port=self.port, **options)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.keeper.messages

    def url(self, credentials: str = "") -> str:
        return f"smtp://{credentials}127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

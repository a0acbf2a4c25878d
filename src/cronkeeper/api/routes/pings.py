"""The Healthchecks-compatible ping endpoints (DESIGN §3 Ping API), as one raw ASGI app:
the hot path skips FastAPI's and Starlette's per-request machinery (middleware stack,
route regexes, Request objects), which cost more than recording the ping itself.

    /ping/{uuid}[/start|/fail|/log|/{exit_status}]
    /ping/{ping_key}/{slug}[/start|/fail|/log|/{exit_status}]   (?create=1 provisions)

GET, HEAD and POST; `?rid=<uuid>` pairs a start with its finish. Answers are short text
as Healthchecks gives them: `200 OK`, `201 Created` (job provisioned), `404 not found`,
`400` (exit status outside 0-255, rid not a UUID, slug unusable for `?create=1`), `409`;
every answer carries `Ping-Body-Limit`. The body's last PING_BODY_LIMIT bytes are kept,
read as a stream so a huge body never sits in memory.

`ping_mount` mounts the app in the FastAPI application (tests, any ASGI server);
`with_pings_first` puts it in front of that application so that `serve` answers pings
before FastAPI sees the request.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import Mount

from cronkeeper.domain.pings import (
    PING_BODY_LIMIT,
    Ping,
    PingAction,
    action_for_exit_status,
    body_text,
    parse_exit_status,
    parse_rid,
)
from cronkeeper.errors import Conflict, InvalidInput, NotFound
from cronkeeper.service import pings as ping_service
from cronkeeper.service.context import Context

log = logging.getLogger("cronkeeper.api.pings")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METHODS = ("GET", "HEAD", "POST")
PREFIX = "/ping/"
ACTIONS = {
    "start": PingAction.START,
    "fail": PingAction.FAIL,
    "log": PingAction.LOG,
}
#: Healthchecks' words for each refused field.
_BAD_REQUEST = {
    "exit_status": "invalid url format",
    "rid": "invalid uuid format",
    "slug": "invalid slug format",
}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DIGITS = re.compile(r"^[0-9]+$")
#: Headers of every answer (api/ping_protocol.py sends them too).
COMMON_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"ping-body-limit", str(PING_BODY_LIMIT).encode()),
    (b"access-control-allow-origin", b"*"),
]
_PREFLIGHT = [
    *COMMON_HEADERS[1:],
    (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
    (b"access-control-max-age", b"600"),
]
_NOT_ALLOWED = [(b"allow", ", ".join(METHODS).encode())]


class _Incomplete(Exception):
    """The client went away before its body was complete."""


class PingApp:
    """Every ping URL shape; paths are read relative to the `/ping` prefix."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As a mounted app: the path below the mount point (`root_path`)."""
        path, root = scope["path"], scope.get("root_path", "")
        rest = path[len(root) :] if root and path.startswith(root) else path
        await self.handle(scope, receive, send, rest)

    async def handle(self, scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        """Answer one ping; `rest` is the path after `/ping` (`/<uuid>/start`)."""
        method = scope["method"]
        if method not in METHODS:
            if method == "OPTIONS":
                await _send(send, 204, b"", _PREFLIGHT, head=False)
            else:
                await _answer(send, 405, "method not allowed", method, _NOT_ALLOWED)
            return
        try:
            request = await self._request(scope, receive, rest)
            if request is None:
                status, text = 404, "not found"
            else:
                status, text = answer(await ping_service.record_ping(self.ctx, request))
        except _Incomplete:
            status, text = 400, "incomplete body"
        except Exception as error:
            status, text = answer(error, f"{method} {scope['path']}")
        await _answer(send, status, text, method)

    async def _request(
        self, scope: Scope, receive: Receive, rest: str
    ) -> ping_service.PingRequest | None:
        """Validate the URL and query, read the body's tail, and stamp the ping's time;
        None for a path that is no ping URL."""
        target = read_url(rest, scope["query_string"])
        if target is None:
            return None
        body = body_text(await _body_tail(receive)) if _has_body(scope) else ""
        return target.request(self.ctx.clock.now(), body, _client(scope))


@dataclass(frozen=True)
class PingTarget:
    """What a ping URL says: the job (UUID, or ping key and slug), the action, the exit
    status, the rid, whether to create the job."""

    first: str  # the ping UUID, or the project's ping key when `slug` is given
    slug: str | None
    action: PingAction
    exit_status: int | None
    rid: str | None
    create: bool

    def request(self, at: datetime, body: str, client: dict[str, str]) -> ping_service.PingRequest:
        ping = Ping(self.action, at, self.exit_status, self.rid, body, client)
        if self.slug is None:
            return ping_service.PingRequest(ping, ping_uuid=uuid.UUID(self.first))
        return ping_service.PingRequest(
            ping, ping_key=self.first, slug=self.slug, create=self.create
        )


def read_url(rest: str, raw_query: bytes) -> PingTarget | None:
    """The ping a path below `/ping` and its query string name; None for a path that is
    no ping URL; InvalidInput for an exit status outside 0-255 or a rid that is no UUID."""
    route = _route(rest)
    if route is None:
        return None
    first, slug, action, exit_text = route
    exit_status = None
    if exit_text is not None:
        exit_status = parse_exit_status(exit_text)
        action = action_for_exit_status(exit_status)
    query = _query(raw_query)
    rid = query.get("rid")
    rid = parse_rid(rid) if rid is not None else None
    return PingTarget(first, slug, action, exit_status, rid, query.get("create") == "1")


def answer(outcome: ping_service.PingResult | BaseException, where: str = "") -> tuple[int, str]:
    """(HTTP status, text) for a ping's result or the error that refused it, in
    Healthchecks' words; an unexpected error is logged and answered 500."""
    if isinstance(outcome, ping_service.PingResult):
        return (201, "Created") if outcome.created_job else (200, "OK")
    if isinstance(outcome, NotFound):
        return 404, "not found"
    if isinstance(outcome, InvalidInput):
        return 400, _BAD_REQUEST.get(outcome.errors[0].field, outcome.detail)
    if isinstance(outcome, Conflict):
        return 409, str(outcome)
    log.error("ping %s failed", where, exc_info=outcome)
    return 500, "internal error"


def _route(rest: str) -> tuple[str, str | None, PingAction, str | None] | None:
    """(uuid or ping key, slug or None, action, exit status text or None) of a ping path:
    the UUID forms win where a path could be read both ways, as Healthchecks does."""
    parts = rest.split("/")
    if len(parts) < 2 or parts[0] != "" or not all(parts[1:]):
        return None
    parts = parts[1:]
    if _UUID.match(parts[0]) and len(parts) <= 2:
        if len(parts) == 1:
            return parts[0], None, PingAction.SUCCESS, None
        found = _suffix(parts[1])
        if found is not None:
            return parts[0], None, *found
    if len(parts) == 2:
        return parts[0], parts[1], PingAction.SUCCESS, None
    if len(parts) == 3:
        found = _suffix(parts[2])
        if found is not None:
            return parts[0], parts[1], *found
    return None


def _suffix(text: str) -> tuple[PingAction, str | None] | None:
    """The action a last path segment names: start/fail/log, or an exit status."""
    action = ACTIONS.get(text)
    if action is not None:
        return action, None
    if _DIGITS.match(text):
        return PingAction.SUCCESS, str(int(text))  # the action follows the exit status
    return None


def _query(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def _client(scope: Scope) -> dict[str, str]:
    return client_info(scope["method"], scope.get("client"), scope["headers"])


def client_info(
    method: str, address: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]
) -> dict[str, str]:
    """Who sent a ping, as its events keep it: method, remote address, user agent."""
    agent = ""
    for name, value in headers:
        if name == b"user-agent":
            agent = value.decode("latin-1")[:200].replace("\x00", "")
            break
    return {
        "method": method,
        "remote_addr": address[0] if address else "unknown",
        "user_agent": agent,
    }


def _has_body(scope: Scope) -> bool:
    """Whether to read a body at all (GET and HEAD pings never carry one in practice,
    but a body sent anyway is kept, as before)."""
    return scope["method"] == "POST" or any(
        name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]
    )


async def _body_tail(receive: Receive) -> bytes:
    """The last PING_BODY_LIMIT bytes of the body; memory stays bounded however long it is."""
    kept = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Incomplete
        kept += message.get("body", b"")
        if len(kept) > 2 * PING_BODY_LIMIT:
            del kept[:-PING_BODY_LIMIT]
        if not message.get("more_body", False):
            return bytes(kept[-PING_BODY_LIMIT:])


async def _answer(
    send: Send, status: int, text: str, method: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    headers = [*COMMON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or ())]
    await _send(send, status, body, headers, head=method == "HEAD")


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, head: bool
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def ping_mount(ctx: Context) -> Mount:
    """The ping app under `/ping`, for the FastAPI application's routes."""
    return Mount("/ping", app=PingApp(ctx))


def with_pings_first(app: ASGIApp, ctx: Context) -> ASGIApp:
    """`app` with `/ping/…` requests answered before they reach it (the server's entry)."""
    pings = PingApp(ctx)

    async def entry(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await pings.handle(scope, receive, send, scope["path"][len(PREFIX) - 1 :])
            return
        await app(scope, receive, send)

    return entry

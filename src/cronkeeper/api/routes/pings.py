"""The Healthchecks-compatible ping endpoints (DESIGN §3 Ping API), as plain Starlette
routes: the hot path skips FastAPI's per-request machinery (about 3× its cost here).

    /ping/{uuid}[/start|/fail|/log|/{exit_status}]
    /ping/{ping_key}/{slug}[/start|/fail|/log|/{exit_status}]   (?create=1 provisions)

GET, HEAD and POST; `?rid=<uuid>` pairs a start with its finish. Answers are short text
as Healthchecks gives them: `200 OK`, `201 Created` (job provisioned), `404 not found`,
`400` (exit status outside 0-255, rid not a UUID, slug unusable for `?create=1`), `409`;
every answer carries `Ping-Body-Limit`. The body's last PING_BODY_LIMIT bytes are kept,
read as a stream so a huge body never sits in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

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

METHODS = ("GET", "HEAD", "POST")
#: Routes take every method, so that others get the ping's own 405 (and OPTIONS a preflight).
_ANY = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HEADERS = {"Ping-Body-Limit": str(PING_BODY_LIMIT), "Access-Control-Allow-Origin": "*"}
PREFLIGHT = {
    **HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, POST, OPTIONS",
    "Access-Control-Max-Age": "600",
}
#: Healthchecks' words for each refused field.
_BAD_REQUEST = {
    "exit_status": "invalid url format",
    "rid": "invalid uuid format",
    "slug": "invalid slug format",
}
Endpoint = Callable[[Request], Awaitable[Response]]


def answer(status: int, text: str, headers: dict[str, str] = HEADERS) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status, headers=headers)


def ping_mount(ctx: Context) -> Mount:
    """Every ping route under `/ping`, bound to `ctx`."""
    routes: list[BaseRoute] = []
    for prefix, by_uuid in (("/{ping_uuid:uuid}", True), ("/{ping_key}/{slug}", False)):
        routes += [
            Route(prefix, _endpoint(ctx, by_uuid, PingAction.SUCCESS), methods=_ANY),
            Route(f"{prefix}/start", _endpoint(ctx, by_uuid, PingAction.START), methods=_ANY),
            Route(f"{prefix}/fail", _endpoint(ctx, by_uuid, PingAction.FAIL), methods=_ANY),
            Route(f"{prefix}/log", _endpoint(ctx, by_uuid, PingAction.LOG), methods=_ANY),
            Route(f"{prefix}/{{exit_status:int}}", _endpoint(ctx, by_uuid, None), methods=_ANY),
        ]
    routes.append(Route("/{rest:path}", _not_found, methods=_ANY))
    return Mount("/ping", routes=routes)


async def _not_found(_request: Request) -> Response:
    return answer(404, "not found")


def _endpoint(ctx: Context, by_uuid: bool, action: PingAction | None) -> Endpoint:
    """The endpoint of one ping URL shape (`action` None: the exit status decides)."""

    async def endpoint(request: Request) -> Response:
        if request.method not in METHODS:
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=PREFLIGHT)
            return answer(405, "method not allowed", {**HEADERS, "Allow": ", ".join(METHODS)})
        try:
            ping_request = await _ping_request(ctx, request, by_uuid, action)
            result = await ping_service.record_ping(ctx, ping_request)
        except NotFound:
            return answer(404, "not found")
        except InvalidInput as error:
            return answer(400, _BAD_REQUEST.get(error.errors[0].field, error.detail))
        except Conflict as error:
            return answer(409, str(error))
        except ClientDisconnect:
            return answer(400, "incomplete body")
        return answer(201, "Created") if result.created_job else answer(200, "OK")

    return endpoint


async def _ping_request(
    ctx: Context, request: Request, by_uuid: bool, action: PingAction | None
) -> ping_service.PingRequest:
    """Validate the URL and query, read the body's tail, and stamp the ping's time."""
    params, query = request.path_params, request.query_params
    exit_status = None
    if action is None:
        exit_status = parse_exit_status(str(params["exit_status"]))
        action = action_for_exit_status(exit_status)
    rid = query.get("rid")
    rid = parse_rid(rid) if rid is not None else None
    body = body_text(await _body_tail(request))
    client = {
        "method": request.method,
        "remote_addr": request.client.host if request.client else "unknown",
        "user_agent": request.headers.get("user-agent", "")[:200].replace("\x00", ""),
    }
    ping = Ping(action, ctx.clock.now(), exit_status, rid, body, client)
    if by_uuid:
        return ping_service.PingRequest(ping, ping_uuid=params["ping_uuid"])
    create = query.get("create") == "1"
    return ping_service.PingRequest(
        ping, ping_key=params["ping_key"], slug=params["slug"], create=create
    )


async def _body_tail(request: Request) -> bytes:
    """The last PING_BODY_LIMIT bytes of the body; memory stays bounded however long it is."""
    kept = bytearray()
    async for chunk in request.stream():
        kept += chunk
        if len(kept) > 2 * PING_BODY_LIMIT:
            del kept[:-PING_BODY_LIMIT]
    return bytes(kept[-PING_BODY_LIMIT:])

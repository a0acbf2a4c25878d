"""Healthchecks' Management API v3 (the subset in DESIGN §3), so a client written for
Healthchecks works with only its base URL changed:

    GET|POST   /api/v3/checks/                  list (?tag= repeatable, ?slug=) | create
    GET        /api/v3/checks/<uuid|unique_key>
    POST|DELETE /api/v3/checks/<uuid>
    POST       /api/v3/checks/<uuid>/pause, /resume
    GET        /api/v3/checks/<uuid>/pings/, /pings/<n>/body
    GET        /api/v3/checks/<uuid|unique_key>/flips/ (?seconds= ?start= ?end=)
    GET        /api/v3/channels/, /api/v3/badges/, /api/v3/status/

Plain Starlette routes outside the OpenAPI document: this surface follows Healthchecks'
conventions (hc/api/views.py), not ours — `X-Api-Key` (or `api_key` in a JSON body), bare
JSON answers, errors as `{"error": "…"}` with 400/401/403/404, a plain-text 409 for
resuming an active check. A read key works only where Healthchecks' read-only key does
(list, get, flips, badges); elsewhere it is a `401 wrong api key`, as there. Trailing
slashes are optional.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from cronkeeper.domain.healthchecks_input import parse_flip_query
from cronkeeper.domain.models import Actor
from cronkeeper.domain.ratelimit import TokenBuckets
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import (
    Conflict,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    MalformedBody,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from cronkeeper.service import health
from cronkeeper.service import healthchecks as hc_service
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context
from cronkeeper.service.validation import load_body

MAX_BODY = 1024 * 1024
CORS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Headers": "X-Api-Key, Content-Type",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Max-Age": "600",
}
#: Routes take every method, so that others get a JSON 405 rather than a problem document.
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[[Context, Actor, Request, dict[str, Any]], Awaitable[Response]]


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={**CORS, **(headers or {})})


def answer(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=CORS)


def not_allowed(methods: list[str]) -> Response:
    """Healthchecks' 405: no body."""
    return Response(status_code=405, headers={**CORS, "Allow": ", ".join(methods)})


def hc_v3_mount(ctx: Context) -> Mount:
    """Every v3 route under `/api/v3`, bound to `ctx`."""
    table: list[tuple[str, dict[str, Handler]]] = [
        ("/checks/", {"GET": _list_checks, "POST": _create_check}),
        ("/checks/{code}", {"GET": _get_check, "POST": _update_check, "DELETE": _delete}),
        ("/checks/{code}/pause", {"POST": _pause}),
        ("/checks/{code}/resume", {"POST": _resume}),
        ("/checks/{code}/pings/", {"GET": _pings}),
        ("/checks/{code}/pings/{n:int}/body", {"GET": _ping_body}),
        ("/checks/{code}/flips/", {"GET": _flips}),
        ("/channels/", {"GET": _channels}),
        ("/badges/", {"GET": _badges}),
    ]
    routes = [Route(p, _status(ctx), methods=["GET", "HEAD"]) for p in ("/status/", "/status")]
    for path, handlers in table:
        endpoint = _endpoint(ctx, handlers)
        for variant in {path, path.rstrip("/")}:
            routes.append(Route(variant, endpoint, methods=_ANY))
    return Mount("/api/v3", routes=routes)


def _status(ctx: Context) -> Callable[[Request], Awaitable[Response]]:
    async def status(_request: Request) -> Response:
        """Healthchecks' instance health: `OK` while the database answers."""
        problem = await health.database_problem(ctx)
        return PlainTextResponse(
            "OK" if problem is None else "database unavailable", 200 if problem is None else 500
        )

    return status


def _endpoint(
    ctx: Context, handlers: dict[str, Handler]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT)
        method = "GET" if request.method == "HEAD" else request.method
        if method not in handlers:
            return not_allowed(list(handlers))
        handler = handlers[method]
        try:
            body = await _json_body(request)
            actor = await _authenticate(ctx, request, body)
            if handler not in READ_KEY_HANDLERS and not actor.role.allows(KeyRole.WRITE):
                raise Unauthenticated("wrong api key")  # as a read-only key is, there
            return await handler(ctx, actor, request, body)
        except MalformedBody:
            return error(400, "could not parse request body")
        except InvalidInput as problem:
            return error(400, problem.detail)
        except Unauthenticated as problem:
            return error(401, str(problem))
        except Forbidden as problem:
            return error(403, str(problem))
        except NotFound:
            return error(404, "not found")
        except (Conflict, IllegalTransition) as problem:
            return error(409, str(problem))
        except RateLimited as problem:
            retry_after = str(max(1, int(problem.retry_after + 0.999)))
            return error(429, problem.detail, {"Retry-After": retry_after})

    return endpoint


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object a POST carries ({} for none); MalformedBody / InvalidInput."""
    if request.method != "POST":
        return {}
    raw = await request.body()
    if not raw.strip():
        return {}
    if len(raw) > MAX_BODY:
        raise InvalidInput([], "request body is larger than 1 MiB")
    body = load_body(raw)
    if not isinstance(body, dict):
        raise InvalidInput([], "json validation error: value is not an object")
    return body


async def _authenticate(ctx: Context, request: Request, body: dict[str, Any]) -> Actor:
    """The key in `X-Api-Key` (or the body's `api_key`); failures are rate limited per
    address, like the v1 API's."""
    failures: TokenBuckets = request.app.state.auth_failures
    ip = request.client.host if request.client else "unknown"
    now = ctx.clock.monotonic()
    if wait := failures.blocked_for(ip, now):
        raise RateLimited("too many failed authentication attempts from this address", wait)
    key = request.headers.get("x-api-key") or str(body.get("api_key") or "")
    try:
        if not key:
            raise Unauthenticated("missing api key")
        try:
            return await key_service.authenticate(ctx, key, ip)
        except Unauthenticated:
            raise Unauthenticated("wrong api key") from None
    except Unauthenticated:
        failures.take(ip, now)
        raise


def _code(request: Request) -> str:
    return str(request.path_params["code"])


def _is_unique_key(code: str) -> bool:
    """A 40-character code: Healthchecks routes these to the read-only views only."""
    return len(code) == 40 and code.isascii() and code.isalnum()


async def _list_checks(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    tags = request.query_params.getlist("tag")
    checks = await hc_service.list_checks(ctx, actor, tags, request.query_params.get("slug"))
    return answer({"checks": checks})


async def _create_check(ctx: Context, actor: Actor, _: Request, body: dict[str, Any]) -> Response:
    check, created = await hc_service.create_check(ctx, actor, body)
    return answer(check, 201 if created else 200)


async def _get_check(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    return answer(await hc_service.get_check(ctx, actor, _code(request)))


async def _update_check(
    ctx: Context, actor: Actor, request: Request, body: dict[str, Any]
) -> Response:
    if _is_unique_key(_code(request)):
        return not_allowed(["GET"])
    return answer(await hc_service.update_check(ctx, actor, _code(request), body))


async def _delete(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    if _is_unique_key(_code(request)):
        return not_allowed(["GET"])
    return answer(await hc_service.delete_check(ctx, actor, _code(request)))


async def _pause(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    return answer(await hc_service.set_paused(ctx, actor, _code(request), paused=True))


async def _resume(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    try:
        return answer(await hc_service.set_paused(ctx, actor, _code(request), paused=False))
    except Conflict as problem:  # Healthchecks answers this one in plain text
        return PlainTextResponse(str(problem), 409, headers=CORS)


async def _pings(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    return answer({"pings": await hc_service.list_pings(ctx, actor, _code(request))})


async def _ping_body(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    n = int(request.path_params["n"])
    body = await hc_service.ping_body(ctx, actor, _code(request), n)
    return Response(body, media_type="text/plain", headers=CORS)


async def _flips(ctx: Context, actor: Actor, request: Request, _: dict[str, Any]) -> Response:
    query = parse_flip_query(request.query_params)
    return answer({"flips": await hc_service.list_flips(ctx, actor, _code(request), query)})


async def _channels(ctx: Context, actor: Actor, _: Request, __: dict[str, Any]) -> Response:
    return answer({"channels": await hc_service.list_channels(ctx, actor)})


async def _badges(ctx: Context, actor: Actor, _: Request, __: dict[str, Any]) -> Response:
    return answer({"badges": await hc_service.list_badges(ctx, actor)})


#: The handlers a read key may call (Healthchecks' `authorize_read` views).
READ_KEY_HANDLERS: frozenset[Handler] = frozenset({_list_checks, _get_check, _flips, _badges})

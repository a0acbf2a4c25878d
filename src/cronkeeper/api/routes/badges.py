"""Public status badges (no key: the URL holds the project's unguessable badge key):

    /badge/{badge_key}/{job-slug}.svg|.json|.shields
    /badge/{badge_key}/tag/{tag}.svg|.json|.shields     (`*` for every job)

`?states=2` reports `late` as `up`. Plain Starlette routes, like the pings: a badge is
one indexed read and a string, rendered in well under 5 ms. Never cached by browsers or
image proxies (`Cache-Control: no-cache`), so a README shows the current state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from cronkeeper.domain.badges import FORMATS, render_svg, shields_json
from cronkeeper.errors import NotFound
from cronkeeper.service import badges as badge_service
from cronkeeper.service.context import Context

HEADERS = {"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"}
Endpoint = Callable[[Request], Awaitable[Response]]


def badge_mount(ctx: Context) -> Mount:
    """The badge routes under `/badge`, bound to `ctx`."""
    return Mount(
        "/badge",
        routes=[
            Route("/{badge_key}/tag/{name}", _endpoint(ctx, is_tag=True), methods=["GET"]),
            Route("/{badge_key}/{name}", _endpoint(ctx, is_tag=False), methods=["GET"]),
        ],
    )


def _endpoint(ctx: Context, *, is_tag: bool) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        name, _, fmt = str(request.path_params["name"]).rpartition(".")
        if fmt not in FORMATS or not name:
            return PlainTextResponse("not found", 404, headers=HEADERS)
        two_states = request.query_params.get("states") == "2"
        try:
            badge = await badge_service.get_badge(
                ctx, request.path_params["badge_key"], name, is_tag=is_tag, two_states=two_states
            )
        except NotFound:
            return PlainTextResponse("not found", 404, headers=HEADERS)
        status = badge.summary.status
        if fmt == "svg":
            return Response(
                render_svg(badge.label, status), media_type="image/svg+xml", headers=HEADERS
            )
        body = badge.summary.to_json() if fmt == "json" else shields_json(badge.label, status)
        return JSONResponse(body, headers=HEADERS)

    return endpoint

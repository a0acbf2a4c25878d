"""The dashboard's routes, mounted on the server's application at `/`.

Every page goes through `Web.page`: no session → the login page; a POST needs the
session's CSRF token and, for changes, a write or admin role; service errors become
pages (404, 403, a message), never a traceback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from cronkeeper.domain.ratelimit import TokenBuckets
from cronkeeper.errors import CronkeeperError, Forbidden, NotFound, Unauthenticated
from cronkeeper.service import sessions as session_service
from cronkeeper.service.context import Context
from cronkeeper.web.auth import Secrets, Viewer, csrf_ok, current_viewer
from cronkeeper.web.views import STATIC, render

Handler = Callable[["Web", Request, Viewer], Awaitable[Response]]


@dataclass
class Web:
    """What every dashboard handler shares."""

    ctx: Context
    secrets: Secrets
    #: Failed logins per client address: a burst of 10, then one every 6 seconds.
    login_failures: TokenBuckets = field(
        default_factory=lambda: TokenBuckets(capacity=10, per_second=1 / 6)
    )

    def page(self, handler: Handler, *, write: bool = False) -> Callable[[Request], Any]:
        """Wrap a handler: session, CSRF on POST, role for writes, errors as pages."""

        async def endpoint(request: Request) -> Response:
            viewer = await current_viewer(request, self.ctx, self.secrets)
            if viewer is None:
                return login_redirect(request)
            if request.method == "POST":
                if not await csrf_ok(request, viewer.csrf):
                    return await self.error(
                        request, viewer, 403, "This form has expired. Reload the page and retry."
                    )
                if write and not viewer.can_write:
                    return await self.error(request, viewer, 403, _READ_ONLY)
            try:
                return await handler(self, request, viewer)
            except NotFound as error:
                return await self.error(request, viewer, 404, f"No {error.what} {error.name!r}.")
            except Forbidden:
                return await self.error(request, viewer, 403, _READ_ONLY)
            except Unauthenticated:
                return login_redirect(request)
            except CronkeeperError as error:
                return await self.error(request, viewer, 400, str(error))

        return endpoint

    async def base(self, request: Request, viewer: Viewer, **values: Any) -> dict[str, Any]:
        """The template values every page needs (viewer, projects, flash message)."""
        projects = [viewer.project]
        if viewer.is_admin:
            projects = await session_service.visible_projects(self.ctx, viewer.actor)
        return {
            "viewer": viewer,
            "projects": projects,
            "path": request.url.path,
            "flash": _FLASH.get(request.query_params.get("msg", "")),
            **values,
        }

    async def error(self, request: Request, viewer: Viewer, status: int, message: str) -> Response:
        values = await self.base(request, viewer, status=status, message=message)
        return render("error.html", values, status=status)


_READ_ONLY = "Your role is read-only: you can look, but not change anything in this project."
_FLASH = {
    "paused": "Job paused: no new runs until you resume it.",
    "resumed": "Job resumed: it fires again from its next slot.",
    "updated": "Job updated.",
    "deleted": "Job deleted, with its whole run history.",
    "triggered": "Run queued.",
    "replayed": "Replay queued.",
    "cancelled": "Run cancelled.",
    "switched": "Switched project.",
}


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


def redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303)


def dashboard_routes(ctx: Context) -> list[BaseRoute]:
    """Every route of the dashboard, for the server's app (`/static` plus the pages)."""
    from cronkeeper.web import actions, login, pages, topology_page

    web = Web(ctx, Secrets(ctx))
    static: ASGIApp = StaticFiles(directory=STATIC)
    routes: list[BaseRoute] = [Mount("/static", app=static, name="static")]
    routes += login.routes(web)
    routes += pages.routes(web)
    routes += actions.routes(web)
    routes += topology_page.routes(web)
    return routes


def get(path: str, endpoint: Callable[[Request], Any]) -> Route:
    return Route(path, endpoint, methods=["GET"])


def post(path: str, endpoint: Callable[[Request], Any]) -> Route:
    return Route(path, endpoint, methods=["POST"])

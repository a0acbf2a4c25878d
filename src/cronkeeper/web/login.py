"""Login (a user's password or an API key), logout, and the admins' project switch."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from cronkeeper.domain import keys as key_format
from cronkeeper.errors import Unauthenticated
from cronkeeper.service import keys as key_service
from cronkeeper.service import sessions as session_service
from cronkeeper.service import users as user_service
from cronkeeper.web.app import Web, get, post, redirect
from cronkeeper.web.auth import (
    COOKIE,
    LOGIN_COOKIE,
    SESSION_SECONDS,
    Viewer,
    client_ip,
    csrf_token,
    current_viewer,
    encode_session,
    new_session,
    set_cookie,
)
from cronkeeper.web.views import render


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def _login_form(
    web: Web, request: Request, status: int = 200, error: str | None = None, username: str = ""
) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
    secret = await web.secrets.get()
    values = {
        "csrf": csrf_token(secret, f"login:{nonce}"),
        "next": safe_next(request.query_params.get("next")),
        "error": error,
        "username": username,
        "viewer": None,
    }
    response = render("login.html", values, status=status)
    set_cookie(request, response, LOGIN_COOKIE, nonce, 3600)
    return response


async def login_page(web: Web, request: Request) -> Response:
    if await current_viewer(request, web.ctx, web.secrets):
        return redirect(safe_next(request.query_params.get("next")))
    return await _login_form(web, request)


async def login_submit(web: Web, request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    api_key = str(form.get("api_key") or "").strip()
    secret = await web.secrets.get()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    expected = csrf_token(secret, f"login:{nonce}")
    if not nonce or not hmac.compare_digest(str(form.get("csrf") or ""), expected):
        return await _login_form(web, request, 403, "The login form expired; please try again.")
    ip = client_ip(request)
    now = web.ctx.clock.monotonic()
    if wait := web.login_failures.blocked_for(ip, now):
        message = f"Too many failed logins from your address; try again in {int(wait) + 1} s."
        return await _login_form(web, request, 429, message, username)
    try:
        if api_key:
            actor = await key_service.authenticate(web.ctx, api_key, ip)
            parts = key_format.split_key(api_key)
            assert parts is not None
            session = new_session("key", parts[0], actor.project_slug or "default")
        elif username and password:
            actor = await user_service.log_in(web.ctx, username, password, ip)
            session = new_session("user", username, actor.project_slug or "default")
        else:
            return await _login_form(
                web, request, 422, "Enter a user name and password, or an API key.", username
            )
    except Unauthenticated as error:
        web.login_failures.take(ip, now)
        return await _login_form(web, request, 401, str(error).capitalize() + ".", username)
    response = redirect(safe_next(str(form.get("next") or "/")))
    set_cookie(request, response, COOKIE, encode_session(secret, session), SESSION_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


async def logout(web: Web, request: Request, viewer: Viewer) -> Response:
    response = redirect("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


async def switch_project(web: Web, request: Request, viewer: Viewer) -> Response:
    form = await request.form()
    wanted = str(form.get("project") or "")
    if wanted not in await session_service.visible_projects(web.ctx, viewer.actor):
        return await web.error(request, viewer, 404, f"No project {wanted[:64]!r}.")
    session = new_session(viewer.session.kind, viewer.session.ref, wanted)
    response = redirect("/?msg=switched")
    secret = await web.secrets.get()
    set_cookie(request, response, COOKIE, encode_session(secret, session), SESSION_SECONDS)
    return response


def routes(web: Web) -> list[BaseRoute]:
    async def show(request: Request) -> Response:
        return await login_page(web, request)

    async def submit(request: Request) -> Response:
        return await login_submit(web, request)

    return [
        get("/login", show),
        post("/login", submit),
        post("/logout", web.page(logout)),
        post("/project", web.page(switch_project)),
    ]

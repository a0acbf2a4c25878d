"""Dashboard sessions: a signed cookie naming who logged in (a user or an API key), the
project they are looking at, and a nonce from which the CSRF token of every form derives.

The cookie holds no secret: a key session stores the key's prefix, and every request
re-checks that the user or key still exists and is not disabled or revoked, so revoking
a key or disabling a user ends its sessions at once. The signing secret lives in the
ledger (`system_values.session_secret`), shared by every process on the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cronkeeper.domain.models import Actor
from cronkeeper.domain.states import KeyRole
from cronkeeper.service import sessions as session_service
from cronkeeper.service import users as user_service
from cronkeeper.service.context import Context

COOKIE = "ck_session"
LOGIN_COOKIE = "ck_login"  # the nonce behind the login form's CSRF token
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    kind: str  # "user" | "key"
    ref: str  # username, or key prefix
    project: str  # the project being viewed
    nonce: str
    expires: int


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their actor (for service calls), the project they
    are looking at, and the CSRF token their forms carry."""

    actor: Actor
    session: Session
    csrf: str

    @property
    def project(self) -> str:
        return self.session.project

    @property
    def can_write(self) -> bool:
        return self.actor.role.allows(KeyRole.WRITE)

    @property
    def is_admin(self) -> bool:
        return self.actor.role is KeyRole.ADMIN


#: A session's user or key is looked up again after this many seconds, so a revoked key or
#: a disabled user is locked out within that time without a lookup on every request.
RECHECK_SECONDS = 5.0


class Secrets:
    """The signing secret, read from the ledger once per process, and the recently
    checked actors of sessions."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._value: bytes | None = None
        self.checked: dict[tuple[str, str], tuple[float, Actor | None]] = {}

    async def get(self) -> bytes:
        if self._value is None:
            self._value = await session_service.session_secret(self._ctx)
        return self._value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, purpose: str, value: str) -> str:
    return _b64(hmac.new(secret, f"{purpose}|{value}".encode(), hashlib.sha256).digest())


def encode_session(secret: bytes, session: Session) -> str:
    payload = _b64(json.dumps(session.__dict__, separators=(",", ":")).encode())
    return f"{payload}.{_sign(secret, 'session', payload)}"


def decode_session(secret: bytes, cookie: str, now: float) -> Session | None:
    """The session in a cookie this server signed and that has not expired, else None."""
    payload, _, signature = cookie.partition(".")
    if not hmac.compare_digest(_sign(secret, "session", payload), signature):
        return None
    try:
        values: Any = json.loads(_unb64(payload))
        session = Session(**values)
    except (ValueError, TypeError, binascii.Error):
        return None
    return session if session.expires > now else None


def csrf_token(secret: bytes, nonce: str) -> str:
    return _sign(secret, "csrf", nonce)[:32]


def new_session(kind: str, ref: str, project: str) -> Session:
    expires = int(time.time()) + SESSION_SECONDS
    return Session(kind, ref, project, secrets.token_urlsafe(16), expires)


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_viewer(request: Request, ctx: Context, secrets_: Secrets) -> Viewer | None:
    """The viewer of a request with a valid session whose user or key is still good."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    secret = await secrets_.get()
    session = decode_session(secret, cookie, time.time())
    if session is None:
        return None
    actor = await _session_actor(ctx, secrets_, session, client_ip(request))
    if actor is None or not actor.may_act_in(session.project):
        return None
    return Viewer(actor, session, csrf_token(secret, session.nonce))


async def _session_actor(
    ctx: Context, secrets_: Secrets, session: Session, ip: str
) -> Actor | None:
    """The session's user or key as an actor, None once disabled/revoked (re-checked
    every RECHECK_SECONDS)."""
    now = time.monotonic()
    cached = secrets_.checked.get((session.kind, session.ref))
    if cached is not None and now - cached[0] < RECHECK_SECONDS:
        actor = cached[1]
    elif session.kind == "user":
        actor = await user_service.active_user(ctx, session.ref, ip)
    else:
        actor = await session_service.key_actor(ctx, session.ref, ip)
    if cached is None or now - cached[0] >= RECHECK_SECONDS:
        if len(secrets_.checked) > 10_000:
            secrets_.checked.clear()
        secrets_.checked[(session.kind, session.ref)] = (now, actor)
    return None if actor is None else replace(actor, ip=ip)


async def csrf_ok(request: Request, expected: str) -> bool:
    """True when a POST carries the expected token, in the form or the htmx header."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    return presented is not None and hmac.compare_digest(presented, expected)

"""Request dependencies: the service context, the acting key, the raw JSON body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from cronkeeper.domain.models import Actor
from cronkeeper.domain.ratelimit import TokenBuckets
from cronkeeper.errors import RateLimited, Unauthenticated
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context

MAX_BODY = 1024 * 1024
bearer = HTTPBearer(auto_error=False, description="An API key: `ck_<prefix>_<secret>`")


async def get_context(request: Request) -> Context:
    """The service context. Dependencies here are `async def`: FastAPI runs a plain `def`
    dependency on a worker thread, a thread hop per dependency and request."""
    return _context(request)


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The key behind `Authorization: Bearer …`; failed attempts are rate limited per IP."""
    ctx = _context(request)
    failures: TokenBuckets = request.app.state.auth_failures
    ip = client_ip(request)
    now = ctx.clock.monotonic()
    if wait := failures.blocked_for(ip, now):
        raise RateLimited("too many failed authentication attempts from this address", wait)
    try:
        if credentials is None:
            raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
        return await key_service.authenticate(ctx, credentials.credentials, ip)
    except Unauthenticated:
        failures.take(ip, now)
        raise


async def raw_body(request: Request) -> bytes:
    """The request body, at most 1 MiB."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "request body is larger than 1 MiB")
    return body


ContextDep = Annotated[Context, Depends(get_context)]
ActorDep = Annotated[Actor, Depends(get_actor)]
BodyDep = Annotated[bytes, Depends(raw_body)]

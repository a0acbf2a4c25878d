"""Every error leaves the API as `application/problem+json` with a stable `type`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from cronkeeper.errors import (
    Conflict,
    CronkeeperError,
    FieldError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    MalformedBody,
    NotFound,
    RateLimited,
    Unauthenticated,
)

MEDIA_TYPE = "application/problem+json"

#: exception class → (HTTP status, problem type, title)
PROBLEMS: list[tuple[type[CronkeeperError], int, str, str]] = [
    (MalformedBody, 400, "/problems/malformed-body", "Malformed request body"),
    (InvalidInput, 422, "/problems/validation", "Invalid input"),
    (NotFound, 404, "/problems/not-found", "Not found"),
    (Conflict, 409, "/problems/conflict", "Conflict"),
    (IllegalTransition, 409, "/problems/illegal-transition", "Not allowed in this state"),
    (Unauthenticated, 401, "/problems/unauthenticated", "Authentication required"),
    (Forbidden, 403, "/problems/forbidden", "Forbidden"),
    (RateLimited, 429, "/problems/rate-limited", "Too many requests"),
]
_HTTP_TYPES = {
    400: ("/problems/bad-request", "Bad request"),
    404: ("/problems/not-found", "Not found"),
    405: ("/problems/method-not-allowed", "Method not allowed"),
    413: ("/problems/too-large", "Request body too large"),
}


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    body["errors"] = [{"field": e.field, "message": e.message} for e in errors or []]
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _from_cronkeeper(error: CronkeeperError) -> JSONResponse:
    status, type_, title = next(
        ((s, t, title) for cls, s, t, title in PROBLEMS if isinstance(error, cls)),
        (500, "/problems/internal", "Internal error"),
    )
    errors: list[FieldError] = []
    headers = None
    extra: dict[str, Any] = {}
    if isinstance(error, InvalidInput):
        errors = error.errors
    elif isinstance(error, Conflict) and error.field:
        errors = [FieldError(error.field, error.detail)]
    elif isinstance(error, RateLimited):
        seconds = max(1, int(error.retry_after + 0.999))
        headers = {"Retry-After": str(seconds)}
        extra["retry_after"] = seconds
    elif isinstance(error, Unauthenticated):
        headers = {"WWW-Authenticate": 'Bearer realm="cronkeeper"'}
    return problem(status, type_, title, str(error), errors, headers, **extra)


def _from_validation(error: RequestValidationError) -> JSONResponse:
    errors = []
    for item in error.errors():
        loc = [str(part) for part in item.get("loc", ()) if part not in ("query", "path", "body")]
        errors.append(FieldError(".".join(loc) or "request", str(item.get("msg", "invalid"))))
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return problem(422, "/problems/validation", "Invalid input", detail, errors)


def _from_http(request: Request, error: HTTPException) -> JSONResponse:
    type_, title = _HTTP_TYPES.get(error.status_code, ("about:blank", "Error"))
    headers = error.headers
    if error.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return problem(error.status_code, type_, title, str(error.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette names only the methods of
    the first route that matched the path, and FastAPI makes one route per method."""
    scope = {key: value for key, value in request.scope.items() if key != "fastapi"}
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem documents."""

    async def on_cronkeeper(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, CronkeeperError)
        return _from_cronkeeper(error)

    async def on_validation(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _from_validation(error)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        return _from_http(request, error)

    app.add_exception_handler(CronkeeperError, on_cronkeeper)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)

"""Options every API client command shares, and how to open a client from them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from cronkeeper.client import Client
from cronkeeper.errors import InvalidInput
from cronkeeper.settings import Settings

T = TypeVar("T")

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Server URL [CRONKEEPER_URL, http://127.0.0.1:8080]")
]
KeyOption = Annotated[str | None, typer.Option("--api-key", help="API key [CRONKEEPER_API_KEY]")]
ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project slug")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API envelope as JSON")]


async def with_client(
    url: str | None, api_key: str | None, project: str, use: Callable[[Client], Awaitable[T]]
) -> T:
    """Open a client from flags (falling back to the environment) and run `use` with it."""
    try:
        overrides: dict[str, Any] = {"url": url, "api_key": api_key}
        settings = Settings(**{key: value for key, value in overrides.items() if value})
    except ValueError as error:
        raise InvalidInput([], f"invalid setting: {error}") from None
    if not settings.api_key:
        raise InvalidInput([], "no API key: pass --api-key or set CRONKEEPER_API_KEY")
    async with Client(settings.url, settings.api_key, project=project) as client:
        return await use(client)


def envelope(data: Any) -> dict[str, Any]:
    """The API envelope, as `--json` prints it."""
    return {"data": data}

"""Small helpers the command modules share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cronkeeper.domain.durations import DurationError, parse_duration
from cronkeeper.errors import FieldError, InvalidInput

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one async call from a synchronous command."""
    return asyncio.run(coroutine)


def since_to_iso(since: str | None) -> str | None:
    """`24h` → the ISO instant 24 hours ago (UTC); None stays None."""
    if since is None:
        return None
    try:
        seconds = parse_duration(since)
    except DurationError as error:
        raise InvalidInput(FieldError("since", str(error))) from None
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()

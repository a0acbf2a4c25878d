"""Job functions the Python executor tests call by name (`<this module>:<function>`)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

NOT_CALLABLE = 42


class TaskFailed(Exception):
    """A job's own exception type, to check `error_class`."""


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


async def greet(name: str) -> str:
    await asyncio.sleep(0)
    return f"hello {name}"


def nothing() -> None:
    return None


def describe_context(ctx: Any) -> dict[str, Any]:
    return {
        "run_id": str(ctx.run_id),
        "job": ctx.job_slug,
        "attempt": ctx.attempt,
        "payload": ctx.payload,
        "traceparent": ctx.traceparent,
    }


def takes_anything(**kwargs: Any) -> list[str]:
    return sorted(kwargs)


def no_context(value: int = 1) -> int:
    return value


def logs_then_returns(ctx: Any) -> str:
    ctx.log.info("starting")
    ctx.log.warning("disk almost full")
    ctx.log.error("one file skipped")
    return "done"


async def logs_asynchronously(ctx: Any) -> str:
    ctx.log.info("async starting")
    await asyncio.sleep(0)
    ctx.log.info("async done")
    return "ok"


def logs_then_fails(ctx: Any) -> None:
    ctx.log.info("about to fail")
    raise TaskFailed("the report could not be rendered")


async def fails_asynchronously() -> None:
    await asyncio.sleep(0)
    raise ValueError("bad value\nsecond line")


def fails_with_a_long_message() -> None:
    raise RuntimeError("x" * 5000)


def fails_without_a_message() -> None:
    raise RuntimeError


def exits() -> None:
    sys.exit(3)


def raises_its_own_timeout() -> None:
    raise TimeoutError("upstream took too long")


async def sleeps(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke up"


def blocks(seconds: float) -> str:
    time.sleep(seconds)
    return "woke up"


def returns_an_object() -> dict[str, Any]:
    return {"when": object.__new__(Marker)}


def returns_a_lot() -> str:
    return "y" * 100_000


class Marker:
    def __repr__(self) -> str:
        return "<marker>"


class Tasks:
    @staticmethod
    def double(value: int) -> int:
        return value * 2

    @classmethod
    async def name(cls) -> str:
        return cls.__name__

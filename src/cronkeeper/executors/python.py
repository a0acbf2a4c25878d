"""Run a `python` job: call `module:function` (or a registered callable) and report.

Contract: `PythonExecutor.execute` reports everything the callable does as an Outcome
(import failure, exception — SystemExit included —, timeout, return value); only
cancellation propagates. Async callables are awaited on the worker's event loop; sync
callables run in a worker thread (`asyncio.to_thread`).

A thread cannot be killed: when a sync callable times out, the attempt is reported as
`timeout` at once but the function keeps running in the background until it returns on
its own (its result is then discarded). Give long sync work its own deadline, or make it
async. Likewise an async callable that blocks the loop without awaiting cannot be stopped.
Modules are imported on the event loop, once; their import-time code should be quick.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from cronkeeper.clock import Clock
from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import (
    PREVIEW_LIMIT,
    AttemptRequest,
    LogLine,
    Outcome,
    preview_head,
)
from cronkeeper.domain.states import AttemptStatus

#: An attempt keeps at most this many `ctx.log` lines (each becomes a `log` event).
LOG_LINE_LIMIT = 1000
#: `Outcome.error` is one line of at most this many characters.
ERROR_LIMIT = 2000


class RunLog:
    """What a job function logs through `ctx.log`, each line stamped with the clock's time.

    Safe to call from the worker thread of a sync function. Lines past `limit` are counted,
    not kept.
    """

    def __init__(self, clock: Clock, limit: int = LOG_LINE_LIMIT) -> None:
        self._clock = clock
        self._limit = limit
        self._lines: list[LogLine] = []
        self._dropped = 0

    def info(self, message: str) -> None:
        """Record an informational line."""
        self._record("info", message)

    def warning(self, message: str) -> None:
        """Record a warning line."""
        self._record("warning", message)

    def error(self, message: str) -> None:
        """Record an error line."""
        self._record("error", message)

    @property
    def lines(self) -> tuple[LogLine, ...]:
        """The lines in the order logged, plus a warning counting lines dropped past the limit."""
        lines = tuple(self._lines)
        if self._dropped:
            note = f"{self._dropped} more log lines dropped (limit {self._limit} per attempt)"
            lines += (LogLine(at=self._clock.now(), level="warning", message=note),)
        return lines

    def _record(self, level: str, message: str) -> None:
        if len(self._lines) >= self._limit:
            self._dropped += 1
            return
        self._lines.append(LogLine(at=self._clock.now(), level=level, message=str(message)))


@dataclass(frozen=True)
class RunContext:
    """What a job function learns about its run, passed as the keyword argument `ctx`."""

    run_id: uuid.UUID
    job_slug: str
    scheduled_for: datetime | None
    attempt: int
    payload: Any
    log: RunLog
    traceparent: str = ""


class PythonExecutor:
    """Runs the `python` target of an attempt; see the module docstring for the contract."""

    def __init__(
        self, clock: Clock, registry: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self._clock = clock
        self._registry = dict(registry or {})

    def resolve(self, name: str) -> Callable[..., Any]:
        """The callable `name` designates: a registry entry (exact key), else an import."""
        if name in self._registry:
            return self._registry[name]
        return import_callable(name)

    async def execute(self, request: AttemptRequest) -> Outcome:
        """Call the target's callable within the timeout; report its result or failure."""
        started = self._clock.monotonic()
        name = str(request.target["callable"])
        kwargs = dict(request.target.get("kwargs") or {})
        log = RunLog(self._clock)
        try:
            function = self.resolve(name)
        except (Exception, SystemExit) as error:  # import-time code of a job module is data
            outcome = _failure(error, f"cannot import {name!r}: {_describe(error)}")
        else:
            outcome = await self._run(function, kwargs, _context(request, log), request.timeout)
        return replace(
            outcome,
            latency_ms=int((self._clock.monotonic() - started) * 1000),
            resolved={"callable": name, "kwargs": kwargs},
            logs=log.lines + outcome.logs,
        )

    async def _run(
        self, function: Callable[..., Any], kwargs: dict[str, Any], ctx: RunContext, seconds: float
    ) -> Outcome:
        """Call `function` under a timeout and describe how it went (no latency, logs of ctx)."""
        if accepts_context(function):
            kwargs = {**kwargs, "ctx": ctx}
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                result = await call(function, kwargs)
        except (Exception, SystemExit) as error:
            if isinstance(error, TimeoutError) and scope.expired():
                return _timed_out(function, seconds)
            trace = "".join(traceback.format_exception(error))[-PREVIEW_LIMIT:]
            line = LogLine(at=self._clock.now(), level="error", message=trace)
            return replace(_failure(error, _one_line(error)), logs=(line,))
        return Outcome(status=AttemptStatus.SUCCESS, body_preview=result_preview(result))


def import_callable(name: str) -> Callable[..., Any]:
    """Import `package.module:attribute.path` and return it; raises what the import raises."""
    module_name, _, path = name.partition(":")
    if not module_name or not path:
        raise ValueError(f"expected 'package.module:function', got {name!r}")
    found: Any = importlib.import_module(module_name)
    for attribute in path.split("."):
        found = getattr(found, attribute)
    if not callable(found):
        raise TypeError(f"{path!r} is not callable (type {type(found).__name__})")
    return cast(Callable[..., Any], found)


def accepts_context(function: Callable[..., Any]) -> bool:
    """True when `function` takes a keyword argument named `ctx` (or any **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(
        (parameter.name == "ctx" and parameter.kind in by_keyword)
        or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


async def call(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Await an async callable on this loop; run a sync one in a worker thread."""
    if _is_async(function):
        result = function(**kwargs)
    else:
        result = await asyncio.to_thread(function, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def result_preview(result: Any) -> str | None:
    """A str as is, else JSON (repr where JSON cannot say it); at most 64 KiB; None stays None."""
    if result is None:
        return None
    if isinstance(result, str):
        text = result
    else:
        try:
            text = json.dumps(result, default=repr)
        except (TypeError, ValueError, RecursionError):  # non-str keys, cycles, depth
            text = repr(result)
    return preview_head(text.encode("utf-8", "replace"))


def qualified_name(kind: type) -> str:
    """`module.QualName` of a class, e.g. `builtins.ValueError`."""
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_async(function: Callable[..., Any]) -> bool:
    # also objects whose __call__ is async: inspect.iscoroutinefunction does not look there
    call_method = getattr(function, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call_method)


def _context(request: AttemptRequest, log: RunLog) -> RunContext:
    return RunContext(
        run_id=request.run_id,
        job_slug=request.job_slug,
        scheduled_for=request.scheduled_for,
        attempt=request.attempt,
        payload=request.payload,
        log=log,
        traceparent=request.traceparent,
    )


def _failure(error: BaseException, message: str) -> Outcome:
    return Outcome(
        status=AttemptStatus.EXCEPTION,
        failure_reason=FailureReason.EXCEPTION,
        error_class=qualified_name(type(error)),
        error=message[:ERROR_LIMIT],
    )


def _timed_out(function: Callable[..., Any], seconds: float) -> Outcome:
    error = f"timed out after {seconds:g} s"
    if not _is_async(function):
        error += "; the function's thread cannot be stopped and keeps running in the background"
    return Outcome(status=AttemptStatus.TIMEOUT, failure_reason=FailureReason.TIMEOUT, error=error)


def _one_line(error: BaseException) -> str:
    """The exception's message on one line (its class name when the message is empty)."""
    return " ".join(str(error).splitlines()).strip() or type(error).__qualname__


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_one_line(error)}"

"""`cronkeeper.monitor`: time code that runs elsewhere as runs of a heartbeat job.

    with cronkeeper.monitor("db-backup"):        # ping key from CRONKEEPER_PING_KEY
        back_up()

    @cronkeeper.monitor("nightly-report", ping_key=KEY, url="https://cron.example.com")
    async def nightly_report() -> None: ...

Entering pings `/start?rid=…` (waiting at most a second for the answer); leaving pings
success (`/0`), or, when an exception escapes, failure (`/fail`) with the exception's type
and message as the run's output. The exception is never swallowed. Pings follow
cronkeeper.pinger's contract: retried, and never an error of their own — a ping that
cannot be delivered is one warning on the `cronkeeper.monitor` logger. Each call of a
decorated function (sync or async) is its own run with its own rid.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
import types
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from cronkeeper.pinger import PingConfigError, PingTarget, RunPings

log = logging.getLogger("cronkeeper.monitor")
F = TypeVar("F", bound=Callable[..., Any])


class monitor:  # lower case: used like a function, `with cronkeeper.monitor(…)`
    """A context manager (sync and async) and a decorator that pings a heartbeat job."""

    def __init__(
        self,
        slug: str | None = None,
        *,
        ping_key: str | None = None,
        url: str | None = None,
        ping_url: str | None = None,
        create: bool = False,
    ) -> None:
        self.slug, self.ping_key, self.url = slug, ping_key, url
        self.ping_url, self.create = ping_url, create
        self._run: RunPings | None = None

    def __enter__(self) -> monitor:
        self._run = self._open()
        if self._run is not None:
            self._run.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        run, self._run = self._run, None
        if run is not None:
            run.finish(*_outcome(error))

    async def __aenter__(self) -> monitor:
        self._run = self._open()
        if self._run is not None:
            await asyncio.to_thread(self._run.start)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        run, self._run = self._run, None
        if run is not None:
            await asyncio.to_thread(run.finish, *_outcome(error))

    def __call__(self, function: F) -> F:
        """Decorate a function: every call is one monitored run."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._copy():
                    return await function(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._copy():
                return function(*args, **kwargs)

        return cast(F, run)

    def _copy(self) -> monitor:
        """A fresh monitor with the same settings (one per call: calls may overlap)."""
        return monitor(
            self.slug,
            ping_key=self.ping_key,
            url=self.url,
            ping_url=self.ping_url,
            create=self.create,
        )

    def _open(self) -> RunPings | None:
        try:
            target = PingTarget.resolve(
                self.slug,
                ping_key=self.ping_key,
                url=self.url,
                ping_url=self.ping_url,
                create=self.create,
            )
        except PingConfigError as error:
            log.warning("cronkeeper.monitor(%r): not pinging: %s", self.slug, error)
            return None
        return RunPings(target, _warn, agent="cronkeeper-monitor")


def _warn(message: str) -> None:
    log.warning("cronkeeper.monitor: %s", message)


def _outcome(error: BaseException | None) -> tuple[int | None, bytes]:
    """(exit status, output) a run ends with: success (0), or failure (None: `/fail`) with
    the exception's type and message. `sys.exit(0)` is a success."""
    if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):
        return 0, b""
    said = f"{type(error).__module__}.{type(error).__qualname__}: {error}"
    return None, said.removeprefix("builtins.").encode("utf-8", "replace")


class _CallableModule(types.ModuleType):
    """`cronkeeper.monitor` is both this module and the class above: importing the module
    binds the package attribute to the module, so the module answers calls as the class
    would (`cronkeeper.monitor("slug")` works whichever was imported first)."""

    def __call__(self, *args: Any, **kwargs: Any) -> monitor:
        return monitor(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

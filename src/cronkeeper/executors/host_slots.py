"""Requests in flight per destination, capped before aiohttp builds any of them.

aiohttp queues a request for one of a host's pooled connections only after building it
(headers, URL, cookies, two timers: ~100 µs of event-loop CPU). When 10,000 runs due in
the same second call one host, all 10,000 would be built in a row, each holding up the
start of every run behind it, and then most would wait seconds for one of 256
connections anyway. `HostSlots` is that same wait, taken first: a request past the
host's cap waits here at the cost of a future, and is built when a connection is about
to be free.

Waiting for a slot counts as waiting for a connection: it is bounded by the attempt's
connect budget and ends in `TimeoutError`, as aiohttp's own pool wait does. The waits
share one timer (thousands of per-waiter timers would slow every timer of the loop);
a wait ends at most `EXPIRY_STEP` seconds after its time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque

from yarl import URL

#: A destination as aiohttp pools its connections: scheme, host, port.
HostKey = tuple[str, str | None, int | None]
#: Waits past their time are ended together, at most this often (seconds).
EXPIRY_STEP = 0.05


class _Host:
    """Slots taken on one destination and the requests waiting for one, oldest first."""

    __slots__ = ("taken", "waiters")

    def __init__(self) -> None:
        self.taken = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class HostSlots:
    """At most `per_host` requests at a time to one destination; the rest wait in order."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._hosts: dict[HostKey, _Host] = {}
        # (give up at, tie-breaker, waiter) of every wait, soonest first
        self._expiries: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._alarm: asyncio.TimerHandle | None = None

    @staticmethod
    def key_of(url: URL) -> HostKey:
        """The destination `url` is sent to."""
        return url.scheme, url.raw_host, url.port

    async def take(self, key: HostKey, within: float) -> None:
        """Take a slot on `key`, waiting at most `within` seconds (then TimeoutError).
        Every successful `take` must be matched by one `give_back`."""
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host()
        if host.taken < self._per_host and not host.waiters:
            host.taken += 1
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        host.waiters.append(waiter)
        self._expire_at(loop, loop.time() + within, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give_back(key)  # handed a slot, but leaving: pass it on
            else:
                with contextlib.suppress(ValueError):
                    host.waiters.remove(waiter)
            raise

    def give_back(self, key: HostKey) -> None:
        """Return a slot: it goes to the oldest request still waiting on `key`, if any."""
        host = self._hosts[key]
        while host.waiters:
            waiter = host.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands: `taken` is unchanged
                return
        host.taken -= 1
        if host.taken == 0:
            del self._hosts[key]

    def taken(self, key: HostKey) -> int:
        """Slots taken on `key` now."""
        host = self._hosts.get(key)
        return 0 if host is None else host.taken

    def _expire_at(
        self, loop: asyncio.AbstractEventLoop, when: float, waiter: asyncio.Future[None]
    ) -> None:
        heapq.heappush(self._expiries, (when, next(self._order), waiter))
        if self._alarm is None or when < self._alarm.when():
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm = loop.call_at(when, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """End every wait past its time with TimeoutError; wake again for the next one."""
        self._alarm = None
        expiries, now = self._expiries, loop.time()
        while expiries and expiries[0][0] <= now:
            _, _, waiter = heapq.heappop(expiries)
            if not waiter.done():
                waiter.set_exception(TimeoutError())
        if expiries:
            self._alarm = loop.call_at(max(expiries[0][0], now + EXPIRY_STEP), self._expire, loop)

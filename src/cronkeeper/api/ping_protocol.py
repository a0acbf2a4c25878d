"""The ping fast path: uvicorn's httptools protocol, with plain GET/HEAD pings answered
straight from the parser's callbacks (DESIGN §6: hot paths skip per-request machinery).

Why: for a ping, uvicorn's ASGI cycle costs more than recording the ping — a scope dict,
an `asyncio.Event`, a task per request, header validation and two socket writes per
answer. Measured on a 2-core machine with no database at all (a future resolved by a
batch task): the ASGI route answered 6,300 pings/s; the same work here, ~2× that.

A request takes the fast path when it is `GET` or `HEAD`, its raw URL starts with
`/ping/`, it announces no body, it is no upgrade, and no other request of the connection
is still being answered (a request pipelined behind one takes uvicorn's ordinary path,
which queues it; so do POST pings, whose body the ASGI app reads). Its URL is read by
the same function as the ASGI app's (`routes/pings.read_url`), it goes to the same group
writer (`service/pings.submit_ping`), and it gets the same answer, bytes for bytes but for
header order — in one write, once its transaction has committed. Everything else about
the connection (keep-alive, its timeout, pipelining, shutdown, flow control) stays
uvicorn's: the answered request ends as an ASGI cycle does, through `on_response_complete`.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, ClassVar
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from cronkeeper.api.routes.pings import COMMON_HEADERS, answer, client_info, read_url
from cronkeeper.service import pings as ping_service
from cronkeeper.service.context import Context

_FAST_METHODS = (b"GET", b"HEAD")
_PREFIX = b"/ping/"
_BODY_HEADERS = (b"content-length", b"transfer-encoding")
_COMMON = b"".join(name + b": " + value + b"\r\n" for name, value in COMMON_HEADERS)


class _Event:
    """What uvicorn's parser callbacks poke on the current cycle; nothing waits on it."""

    def set(self) -> None:
        return


class _Cycle:
    """The fields of uvicorn's `RequestResponseCycle` that the protocol reads and writes
    while a fast-path ping is being answered."""

    __slots__ = ("body", "disconnected", "keep_alive", "more_body", "response_complete")
    message_event: ClassVar[_Event] = _Event()

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.more_body = False
        self.body = bytearray()


class PingProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` for `cronkeeper serve`; `for_context` binds the service context."""

    ctx: ClassVar[Context]

    @classmethod
    def for_context(cls, ctx: Context) -> type[PingProtocol]:
        return type("PingProtocol", (cls,), {"ctx": ctx})

    def on_headers_complete(self) -> None:
        if not self._answer_ping():
            super().on_headers_complete()

    def _answer_ping(self) -> bool:
        """Take the request if it is a fast-path ping (module docstring); False leaves it to
        uvicorn."""
        if not self.url.startswith(_PREFIX):
            return False
        method = self.parser.get_method()
        if method not in _FAST_METHODS or self.parser.should_upgrade():
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # pipelined behind a request still being answered
        if any(name in _BODY_HEADERS for name, _ in self.headers):
            return False
        try:
            parsed = httptools.parse_url(self.url)
            path = parsed.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return False  # uvicorn answers it as it answers any bad URL
        if "%" in path:
            path = unquote(path)
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        cycle = self.cycle = _Cycle(keep_alive)  # type: ignore[assignment]
        head = method == b"HEAD"
        try:
            target = read_url(path[len(_PREFIX) - 1 :], parsed.query or b"")
            if target is None:
                self._respond(cycle, 404, "not found", head)
                return True
            text_method = method.decode()
            client = client_info(text_method, self.client, self.headers)
            request = target.request(self.ctx.clock.now(), "", client)
            written = ping_service.submit_ping(self.ctx, request)
        except Exception as error:
            self._respond(cycle, *answer(error, path), head)
            return True
        written.add_done_callback(partial(self._committed, cycle, head, path))
        return True

    def _committed(
        self, cycle: _Cycle, head: bool, path: str, written: asyncio.Future[Any]
    ) -> None:
        if written.cancelled():
            return
        error = written.exception()
        if error is None:
            status, text = answer(ping_service.settle_ping(self.ctx, written.result()))
        else:
            status, text = answer(error, path)
        self._respond(cycle, status, text, head)

    def _respond(self, cycle: _Cycle, status: int, text: str, head: bool) -> None:
        """Write the whole answer at once, then end the request as uvicorn ends a cycle."""
        cycle.response_complete = True
        if cycle.disconnected or self.transport.is_closing():
            return
        body = text.encode()
        parts = [STATUS_LINE[status]]
        parts += [name + b": " + value + b"\r\n" for name, value in self.default_headers]
        parts += [_COMMON, b"content-length: ", str(len(body)).encode(), b"\r\n"]
        if not cycle.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if not head:
            parts.append(body)
        self.transport.write(b"".join(parts))
        if cycle.keep_alive:
            self.on_response_complete()
        else:
            self.transport.close()

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """uvicorn's own headers of every answer (`date`, `server` unless turned off)."""
        headers: list[tuple[bytes, bytes]] = self.server_state.default_headers
        return headers

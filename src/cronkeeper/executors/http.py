"""The HTTP executor: call a job's URL once, behind the SSRF guard, and report an Outcome.

One `aiohttp.ClientSession` serves every attempt. Its connector resolves through
`GuardedResolver`, which resolves a name once and refuses the whole host when any
address is blocked, so the connection can only go to the vetted addresses (no DNS
rebinding between check and connect). IP-literal URLs never reach a resolver, so
`execute` checks them itself; a socket factory re-checks every address actually
dialled as a last line. Redirects are followed by hand so each hop passes the guard.

Requests past a host's connection cap wait in `HostSlots` before they are built, so a
burst of due runs starts at the cost of a queue entry each (see host_slots.py); what a
target sends every run is shaped once per target (`TargetShapes`).

The executor never writes rows and never retries: the worker does both.
`asyncio.CancelledError` propagates; every response is released.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import HttpProcessingError

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import PREVIEW_LIMIT, AttemptRequest, Outcome, preview_head
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.executors.host_slots import HostSlots
from cronkeeper.executors.http_request import Hop, RedirectRefused, TargetShapes, next_hop
from cronkeeper.executors.ssrf_guard import (
    AddressRefused,
    DestinationBlocked,
    DestinationUnusable,
    GuardedSession,
    VettedUrls,
)

#: Response headers kept on the attempt.
SELECTED_RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "retry-after",
    "location",
    "date",
    "server",
    "x-request-id",
    "traceparent",
)
#: After the preview, at most this much more body is read (and dropped) before hanging up.
DRAIN_LIMIT = 16 * 1024 * 1024


def parse_retry_after(value: str, date: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After (seconds or HTTP-date, relative to Date or now)."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    moment = _http_date(text)
    if moment is None:
        return None
    base = (_http_date(date) if date else None) or now
    return max(0.0, (moment - base).total_seconds())


def _http_date(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def classify_status(code: int) -> tuple[AttemptStatus, FailureReason | None]:
    """2xx and final 3xx succeed; 401/403 are credentials; the rest by class."""
    if code < 400:
        return AttemptStatus.SUCCESS, None
    if code in (401, 403):
        return AttemptStatus.HTTP_ERROR, FailureReason.CREDENTIAL
    if code < 500:
        return AttemptStatus.HTTP_ERROR, FailureReason.HTTP_4XX
    return AttemptStatus.HTTP_ERROR, FailureReason.HTTP_5XX


_CONNECTION_ERROR = AttemptStatus.CONNECTION_ERROR
#: Checked in order: the first matching row classifies an exception.
ERROR_TABLE: tuple[tuple[tuple[type[BaseException], ...], AttemptStatus, FailureReason], ...] = (
    ((DestinationUnusable,), _CONNECTION_ERROR, FailureReason.DESTINATION_UNRESOLVABLE),
    ((TimeoutError,), AttemptStatus.TIMEOUT, FailureReason.TIMEOUT),
    ((aiohttp.ClientConnectorDNSError, socket.gaierror), _CONNECTION_ERROR, FailureReason.DNS),
    (
        (
            aiohttp.ClientConnectorCertificateError,
            aiohttp.ClientSSLError,
            aiohttp.ServerFingerprintMismatch,
            ssl.SSLError,
            ssl.CertificateError,
        ),
        _CONNECTION_ERROR,
        FailureReason.TLS,
    ),
    (
        (
            aiohttp.ClientResponseError,
            aiohttp.ClientPayloadError,
            HttpProcessingError,
            RedirectRefused,
            aiohttp.InvalidURL,
        ),
        _CONNECTION_ERROR,
        FailureReason.PROTOCOL,
    ),
    ((aiohttp.ClientConnectionError, OSError), _CONNECTION_ERROR, FailureReason.CONNECTION),
    ((aiohttp.ClientError,), _CONNECTION_ERROR, FailureReason.UNKNOWN),
)


def classify_error(error: Exception) -> tuple[AttemptStatus, FailureReason]:
    """The attempt status and failure reason of an exception raised by one attempt."""
    if isinstance(error, DestinationBlocked):
        return AttemptStatus.BLOCKED, error.reason
    if isinstance(error, aiohttp.ClientConnectorError) and isinstance(
        error.os_error, AddressRefused
    ):
        return AttemptStatus.BLOCKED, error.os_error.reason
    for types, status, reason in ERROR_TABLE:
        if isinstance(error, types):
            return status, reason
    return AttemptStatus.EXCEPTION, FailureReason.UNKNOWN


def error_class_name(error: BaseException) -> str:
    """The exception's qualified name (module-qualified unless it is a builtin)."""
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def error_message(error: Exception, timeout: float) -> str:
    """One line describing `error` (never empty, at most 1000 characters)."""
    if isinstance(error, TimeoutError):
        text = f"no complete response within {timeout:g}s"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())[:1000]


def elapsed_ms(started: float) -> int:
    """Whole milliseconds since `started` (a time.monotonic() reading)."""
    return int((time.monotonic() - started) * 1000)


def failure_outcome(error: Exception, hop: Hop, started: float, timeout: float) -> Outcome:
    """The Outcome of an attempt that raised `error` while sending `hop`."""
    status, reason = classify_error(error)
    return Outcome(
        status=status,
        failure_reason=reason,
        latency_ms=elapsed_ms(started),
        error_class=error_class_name(error),
        error=error_message(error, timeout),
        resolved=hop.resolved(),
    )


def selected_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers worth keeping, with lower-case names."""
    return {name: headers[name] for name in SELECTED_RESPONSE_HEADERS if name in headers}


def response_outcome(
    response: aiohttp.ClientResponse, body: bytes, hop: Hop, started: float
) -> Outcome:
    """The Outcome of a final response (any status) whose body preview was read."""
    status, reason = classify_status(response.status)
    error = f"HTTP {response.status} {response.reason or ''}".strip()
    return Outcome(
        status=status,
        failure_reason=reason,
        status_code=response.status,
        latency_ms=elapsed_ms(started),
        body_preview=preview_head(body),
        response_headers=selected_headers(response.headers),
        error=None if reason is None else error,
        retry_after=retry_after_of(response.headers, datetime.now(UTC)),
        resolved=hop.resolved(),
    )


def retry_after_of(headers: Mapping[str, str], now: datetime) -> float | None:
    """The Retry-After of a response in seconds, or None when absent or unreadable."""
    value = headers.get("Retry-After")
    return None if value is None else parse_retry_after(value, headers.get("Date"), now)


async def read_preview(response: aiohttp.ClientResponse) -> bytes:
    """The first PREVIEW_LIMIT bytes; the rest is read and dropped (or the line hung up)."""
    preview = bytearray()
    while len(preview) < PREVIEW_LIMIT:
        chunk = await response.content.read(PREVIEW_LIMIT - len(preview))
        if not chunk:
            return bytes(preview)
        preview += chunk
    drained = 0
    while drained <= DRAIN_LIMIT:
        chunk = await response.content.readany()
        if not chunk:
            return bytes(preview)
        drained += len(chunk)
    response.close()
    return bytes(preview)


#: Connections open at once across all targets (aiohttp defaults to 100, which would
#: queue a burst of due jobs behind each other).
MAX_CONNECTIONS = 2000
#: Connections open at once to one host: a burst of 10,000 calls to one service reuses a
#: few hundred keep-alive connections instead of opening thousands (each open costs more
#: than a request on an open one).
MAX_PER_HOST = 256
#: Seconds to get a connection (waiting for a free one included), within the attempt's.
CONNECT_TIMEOUT = 10.0


class HttpExecutor:
    """Runs `http` attempts through one shared, SSRF-guarded aiohttp session."""

    def __init__(
        self,
        policy: SsrfPolicy,
        *,
        user_agent: str,
        resolver: AbstractResolver | None = None,
        max_redirects: int = 5,
        per_host: int = MAX_PER_HOST,
    ) -> None:
        self._vetted = VettedUrls(policy)
        self._shapes = TargetShapes(user_agent)
        self._max_redirects = max_redirects
        self._guarded = GuardedSession(
            policy, resolver, limit=MAX_CONNECTIONS, limit_per_host=per_host
        )
        self._slots = HostSlots(per_host)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the shared session; idempotent."""
        self._session = self._guarded.open()

    async def close(self) -> None:
        """Close the session, its connections and the resolver it created."""
        self._session = None
        await self._guarded.close()

    async def __aenter__(self) -> HttpExecutor:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def prepare(self, target: dict[str, Any]) -> None:
        """Shape `target`'s request ahead of its run (the worker calls this when it claims
        a run ahead of its slot), so the start of the run does not have to."""
        self._shapes.shape_of(target)

    async def execute(self, request: AttemptRequest) -> Outcome:
        """Send the attempt's request, following redirects; never raises but CancelledError."""
        if self._session is None:
            raise RuntimeError("HttpExecutor.start() was not awaited")
        started = time.monotonic()
        hop = self._shapes.first_hop(request)
        for _ in range(self._max_redirects + 1):
            try:
                result = await self._send(self._session, hop, started + request.timeout, started)
            except Exception as error:
                return failure_outcome(error, hop, started, request.timeout)
            if isinstance(result, Outcome):
                return result
            hop = result
        too_many = RedirectRefused(f"more than {self._max_redirects} redirects")
        return failure_outcome(too_many, hop, started, request.timeout)

    async def _send(
        self, session: aiohttp.ClientSession, hop: Hop, deadline: float, started: float
    ) -> Outcome | Hop:
        """One hop: vet, wait for a slot on its host, send, and return the final Outcome or
        the redirect's next Hop. The slot wait counts toward the connect timeout."""
        self._vetted.vet(hop.url)
        now = time.monotonic()
        if deadline <= now:
            raise TimeoutError
        connect_by = now + min(CONNECT_TIMEOUT, deadline - now)
        host = HostSlots.key_of(hop.url)
        await self._slots.take(host, connect_by - now)
        try:
            return await self._exchange(session, hop, deadline, connect_by, started)
        finally:
            self._slots.give_back(host)

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        hop: Hop,
        deadline: float,
        connect_by: float,
        started: float,
    ) -> Outcome | Hop:
        """Send `hop` and read its response (connected by `connect_by`, done by `deadline`)."""
        now = time.monotonic()
        if connect_by <= now:  # aiohttp reads a timeout of 0 or less as none at all
            raise TimeoutError
        async with session.request(
            hop.method,
            hop.url,
            headers=hop.headers,
            data=None if hop.body is None else hop.body.encode(),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=deadline - now, connect=connect_by - now),
        ) as response:
            following = next_hop(hop, response.status, response.headers.get("Location"))
            if following is not None:
                return following
            body = await read_preview(response)
            return response_outcome(response, body, hop, started)

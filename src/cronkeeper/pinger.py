"""Sending heartbeat pings from the client side: `cronkeeper exec` and `cronkeeper.monitor`.

    target = PingTarget.resolve("db-backup", ping_key=…, url=…)   # or ping_url=…
    run = RunPings(target, warn=print_to_stderr)
    run.start()                      # /start?rid=…, sent in the background
    ...                              # the work
    run.finish(exit_status, output)  # /{0-255} (or /fail for None) ?rid=… with the output tail

Contract: pinging never fails and never holds up the work for long. Each ping runs on its
own daemon thread with stdlib `urllib` (no event loop, no session), is tried up to
`TRIES` times with short timeouts and growing pauses (connection errors, timeouts, 429
and 5xx are retried; other answers are final), and a ping that cannot be delivered
produces ONE warning through `warn` for the whole run — never an exception. The start
is awaited for at most `START_WAIT` seconds before the work begins; the finish is sent
only once the start is settled (answered, or its retries stopped), so the two can never
arrive in the wrong order.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cronkeeper import __version__
from cronkeeper.domain.pings import PING_BODY_LIMIT

#: Attempts per ping, the pauses between them (seconds), and each attempt's timeout:
#: four tries over about 10 s at worst for a server that accepts and never answers.
TRIES = 4
PAUSES = (0.5, 1.5, 3.0)
TIMEOUT = 2.0
#: How long the work waits for its start ping to be answered before it begins anyway.
START_WAIT = 1.0
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
Warn = Callable[[str], None]


class PingConfigError(ValueError):
    """Not enough to build a ping URL (no ping key or ping URL), or a slug it cannot use."""


@dataclass(frozen=True)
class PingTarget:
    """Where a job's pings go: `<base>/ping/<uuid>` or `<base>/ping/<ping-key>/<slug>`."""

    base: str  # everything before the ping's suffix (`/start`, `/fail`, `/<code>`)
    create: bool = False  # `?create=1`: provision the heartbeat job on its first ping

    @classmethod
    def resolve(
        cls,
        slug: str | None,
        *,
        ping_key: str | None = None,
        url: str | None = None,
        ping_url: str | None = None,
        create: bool = False,
    ) -> PingTarget:
        """The target from explicit values, falling back to CRONKEEPER_PING_URL,
        CRONKEEPER_PING_KEY and CRONKEEPER_URL. A ping URL ending in a UUID is used as
        it is; one ending in a ping key (a project's `ping_url_prefix`) gets `/<slug>`."""
        from cronkeeper.settings import Settings

        try:
            settings = Settings()
        except ValueError as error:
            raise PingConfigError(f"invalid setting: {error}") from None
        ping_url = ping_url or (None if ping_key else settings.ping_url)
        if ping_url:
            return cls._from_ping_url(ping_url, slug, create)
        ping_key = ping_key or settings.ping_key
        if not ping_key:
            raise PingConfigError(
                "no ping key: pass --ping-key or set CRONKEEPER_PING_KEY "
                "(or give a ping URL with --ping-url / CRONKEEPER_PING_URL)"
            )
        base = (url or settings.url).rstrip("/")
        if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
            raise PingConfigError(f"not an http(s) URL: {base}")
        return cls(f"{base}/ping/{_quote(ping_key)}/{_slug(slug)}", create)

    @classmethod
    def _from_ping_url(cls, ping_url: str, slug: str | None, create: bool) -> PingTarget:
        parsed = urllib.parse.urlsplit(ping_url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or "/ping/" not in f"{parsed.path}/":
            raise PingConfigError(f"not a ping URL (…/ping/<uuid>): {ping_url}")
        last = parsed.path.rsplit("/", 1)[-1]
        base = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
        if _is_uuid(last):
            return cls(base, False)
        return cls(f"{base}/{_slug(slug)}", create)

    def url(self, suffix: str, rid: str) -> str:
        query = {"rid": rid, **({"create": "1"} if self.create else {})}
        return f"{self.base}{suffix}?{urllib.parse.urlencode(query)}"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _slug(slug: str | None) -> str:
    if not slug:
        raise PingConfigError("a slug is needed with a ping key")
    from cronkeeper.domain.jobs import SLUG_RULE, is_valid_slug

    if not is_valid_slug(slug):
        raise PingConfigError(f"invalid slug {slug!r}: must be {SLUG_RULE}")
    return slug


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class RunPings:
    """The pings of one run: a start when entered, one finish, one `rid` for both."""

    def __init__(self, target: PingTarget, warn: Warn, *, agent: str = "cronkeeper") -> None:
        self.target, self.rid = target, str(uuid.uuid4())
        self._warn, self._warned = warn, threading.Event()
        self._agent = f"{agent}/{__version__}"
        self._stop_start = threading.Event()
        self._start: threading.Thread | None = None
        self._tried = threading.Event()  # the start's first attempt ended, either way

    def start(self) -> None:
        """Send the start ping in the background; wait for it at most START_WAIT seconds."""

        def send() -> None:
            self._deliver("/start", b"", self._stop_start, self._tried)

        self._start = threading.Thread(target=send, name="cronkeeper-ping-start", daemon=True)
        self._start.start()
        self._tried.wait(START_WAIT)

    def finish(self, exit_status: int | None, output: bytes = b"") -> bool:
        """Send the finish (`/<exit_status>`, or `/fail` for None, with the output's tail)
        and wait until it is answered or given up; True when the server recorded it."""
        if self._start is not None:
            self._stop_start.set()  # a start still retrying now would arrive after the finish
            self._start.join(TIMEOUT + 0.5)
        suffix = "/fail" if exit_status is None else f"/{exit_status}"
        return self._deliver(suffix, output[-PING_BODY_LIMIT:], None)

    def _deliver(
        self,
        suffix: str,
        body: bytes,
        stop: threading.Event | None,
        tried: threading.Event | None = None,
    ) -> bool:
        """POST one ping with retries; warn once per run if it cannot be delivered.
        `stop` ends the retries early (silently); `tried` is set after the first attempt."""
        url = self.target.url(suffix, self.rid)
        problem = "not sent"
        for attempt in range(TRIES):
            if attempt:
                pause = PAUSES[min(attempt - 1, len(PAUSES) - 1)]
                if stop is not None and stop.wait(pause):
                    return False  # superseded by the finish: no warning, it tries on its own
                if stop is None:
                    time.sleep(pause)
            status, problem = self._post(url, body)
            if tried is not None:
                tried.set()
            if status is not None and 200 <= status < 300:
                return True
            if status is not None and status not in RETRIED_STATUSES:
                break
        self._warn_once(f"ping {suffix} to {self._shown(url)} failed ({problem}); going on")
        return False

    def _post(self, url: str, body: bytes) -> tuple[int | None, str]:
        """(HTTP status or None, a few words on what happened) of one attempt."""
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked: http(s) only
            url, data=body, method="POST", headers={"User-Agent": self._agent}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                return int(response.status), f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            said = error.read(200).decode("utf-8", "replace").strip()
            return error.code, f"HTTP {error.code} {said}".strip()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            return None, f"cannot reach Cronkeeper: {reason}"

    def _shown(self, url: str) -> str:
        """The server of a URL, for a warning (the path holds the ping key or UUID: secret)."""
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def _warn_once(self, message: str) -> None:
        if not self._warned.is_set():
            self._warned.set()
            self._warn(message)


class OutputTail:
    """The last `limit` bytes of everything written to it (stdout and stderr interleaved),
    safe to feed from several threads."""

    def __init__(self, limit: int = PING_BODY_LIMIT) -> None:
        self.limit = limit
        self._kept = bytearray()
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._kept += chunk
            if len(self._kept) > 2 * self.limit:
                del self._kept[: -self.limit]

    def value(self) -> bytes:
        with self._lock:
            return bytes(self._kept[-self.limit :])

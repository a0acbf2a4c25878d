"""The SSRF guard of the HTTP executor: every destination is vetted before it is dialled.

Three checkpoints, all applying `cronkeeper.domain.ssrf`:

- `vet_url` before each request (and each redirect hop): scheme, host name deny list,
  and IP-literal hosts, which aiohttp dials without asking any resolver (`VettedUrls`
  remembers the destinations that passed).
- `GuardedResolver`, the connector's resolver: resolves a name once and refuses the whole
  host when any address is blocked; aiohttp then connects only to those vetted
  addresses, so a second, different DNS answer cannot slip in (no DNS rebinding).
- `guarded_socket_factory`: re-checks the address of every socket actually opened.

A refusal raises before any connection is attempted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.ssrf import SsrfPolicy, check_address, check_hostname

_BLOCK_WHY = {
    FailureReason.SSRF_BLOCKED: "a private, loopback, link-local or metadata address",
    FailureReason.BLOCKED_IP: "an address on the deny list",
}


class DestinationBlocked(Exception):
    """The SSRF guard refused a destination before any connection was made."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AddressRefused(OSError):
    """The socket factory refused to dial a blocked address (last-line check)."""

    def __init__(self, reason: FailureReason, address: str) -> None:
        super().__init__(f"refused to connect to {address}: {_BLOCK_WHY.get(reason, reason)}")
        self.reason = reason


class DestinationUnusable(Exception):
    """The URL names no usable destination (not http(s), or no host)."""


@lru_cache(maxsize=4096)
def address_verdict(policy: SsrfPolicy, address: str) -> FailureReason | None:
    """check_address, with anything that is not a plain IP address refused as SSRF."""
    try:
        return check_address(policy, address)
    except ValueError:
        return FailureReason.SSRF_BLOCKED


def blocked_address_message(host: str, address: str, reason: FailureReason) -> str:
    """One line saying which address of which host the guard refused, and why."""
    where = address if host == address else f"{host} resolves to {address}"
    return f"refused: {where}, {_BLOCK_WHY.get(reason, reason.value)}"


class GuardedResolver(AbstractResolver):
    """Resolve through `base` once and refuse the host if any address is blocked."""

    def __init__(self, base: AbstractResolver, policy: SsrfPolicy, *, owns_base: bool) -> None:
        self._base = base
        self._policy = policy
        self._owns_base = owns_base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Every address of `host`, all vetted; DestinationBlocked names the first refused."""
        if (reason := check_hostname(self._policy, host)) is not None:
            raise DestinationBlocked(reason, f"refused: host name {host} is on the deny list")
        results = await self._base.resolve(host, port, family)
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        for result in results:
            if (reason := address_verdict(self._policy, result["host"])) is not None:
                raise DestinationBlocked(
                    reason, blocked_address_message(host, result["host"], reason)
                )
        return results

    async def close(self) -> None:
        """Close the base resolver when this guard created it."""
        if self._owns_base:
            await self._base.close()


def guarded_socket_factory(policy: SsrfPolicy) -> Callable[[tuple[Any, ...]], socket.socket]:
    """A connector socket factory that refuses to dial a blocked address."""

    def create(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if (reason := address_verdict(policy, str(address[0]))) is not None:
            raise AddressRefused(reason, address[0])
        return socket.socket(family, type_, proto)

    return create


def looks_like_ip(host: str) -> bool:
    """aiohttp's own test for "do not resolve this host": it is dialled as given."""
    return ":" in host or host.replace(".", "").isdigit()


def vet_url(policy: SsrfPolicy, url: URL) -> None:
    """Raise unless `url` is http(s) with a host that passes the name and IP-literal checks."""
    host = url.raw_host
    if url.scheme not in ("http", "https") or not host:
        raise DestinationUnusable(f"{url} is not an http(s) URL with a host")
    if (reason := check_hostname(policy, host)) is not None:
        raise DestinationBlocked(reason, f"refused: host name {host} is on the deny list")
    if looks_like_ip(host) and (reason := address_verdict(policy, host)) is not None:
        raise DestinationBlocked(reason, blocked_address_message(host, host, reason))


class VettedUrls:
    """`vet_url` for one policy, remembering the destinations that passed: the verdict
    on a (scheme, host) never changes, and hashing the policy for the cached checks
    costs more than the rest of a repeated check. Refusals are not remembered."""

    def __init__(self, policy: SsrfPolicy, size: int = 4096) -> None:
        self._policy = policy
        self._size = size
        self._passed: set[tuple[str, str | None]] = set()

    def vet(self, url: URL) -> None:
        """Raise as `vet_url` does unless `url`'s destination passed before."""
        destination = (url.scheme, url.raw_host)
        if destination in self._passed:
            return
        vet_url(self._policy, url)
        if len(self._passed) >= self._size:
            self._passed.clear()
        self._passed.add(destination)


class GuardedSession:
    """One aiohttp session whose every connection passes the SSRF guard: host names are
    resolved once through `GuardedResolver`, sockets only dial vetted addresses."""

    def __init__(
        self, policy: SsrfPolicy, base: AbstractResolver | None = None, **connector: Any
    ) -> None:
        self._policy, self._base, self._connector = policy, base, connector
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None

    def open(self) -> aiohttp.ClientSession:
        """The session, created on first use."""
        if self._session is None:
            base = self._base or aiohttp.DefaultResolver()
            self._resolver = GuardedResolver(base, self._policy, owns_base=self._base is None)
            connector = aiohttp.TCPConnector(
                resolver=self._resolver,
                socket_factory=guarded_socket_factory(self._policy),
                **self._connector,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._session

    @property
    def is_open(self) -> bool:
        return self._session is not None

    async def close(self) -> None:
        """Close the session, its connections and the resolver it created."""
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()

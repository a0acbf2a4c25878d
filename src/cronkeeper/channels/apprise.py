"""Apprise channel: any Apprise URL (Slack, Discord, Teams, Telegram, ntfy, PagerDuty, …).

Config: `{"urls": ["slack://…", "ntfys://topic"]}`. Apprise is synchronous, so each
delivery runs in a worker thread. A URL Apprise cannot read is a permanent error; a
failed notification is retried (Apprise does not say why a service refused). URLs of
the generic `json://`, `xml://` and `form://` services name a host of the user's
choosing, so their host passes the SSRF policy first (resolved and checked here;
Apprise then resolves again, so this is weaker than the webhook's pinned connection).
"""

from __future__ import annotations

import asyncio
import socket
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import apprise

with warnings.catch_warnings():  # Apprise's PGP helper imports the deprecated `imghdr`:
    warnings.simplefilter("ignore", DeprecationWarning)  # load it once, quietly, here
    import apprise.utils.pgp

from cronkeeper.channels.render import text_body
from cronkeeper.domain.notifications import Delivery, Message, subject
from cronkeeper.domain.ssrf import SsrfPolicy, check_hostname
from cronkeeper.executors.ssrf_guard import address_verdict, blocked_address_message

TIMEOUT = 20.0
#: Apprise services that post to any host the URL names.
HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
_PROBLEM_LEVELS = ("WARNING", "ERROR", "CRITICAL")
_SUCCESS = apprise.AppriseResultStatus.SUCCESS
_NOTIFY_TYPES = {
    "down": apprise.NotifyType.FAILURE,
    "up": apprise.NotifyType.SUCCESS,
    "flapping": apprise.NotifyType.WARNING,
    "test": apprise.NotifyType.INFO,
}


def is_valid_url(url: str) -> bool:
    """True when Apprise knows the service and can read the URL."""
    return apprise.Apprise.instantiate(url) is not None


def mask_apprise_url(url: str) -> str:
    """Apprise's own privacy form of the URL: tokens and passwords obfuscated."""
    service = apprise.Apprise.instantiate(url)
    if service is None:
        return "********"
    masked: str = service.url(privacy=True)  # type: ignore[no-untyped-call]
    return masked


def refused_host(policy: SsrfPolicy, url: str) -> str | None:
    """Why the SSRF policy refuses the host of a generic json/xml/form URL, or None."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in HOST_SCHEMES or not parts.hostname:
        return None
    host = parts.hostname
    if check_hostname(policy, host) is not None:
        return f"refused: host name {host} is on the deny list"
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None  # unresolvable: Apprise reports the failure itself
    for info in infos:
        address = str(info[4][0])
        if (reason := address_verdict(policy, address)) is not None:
            return blocked_address_message(host, address, reason)
    return None


def _notify(urls: Sequence[str], message: Message, policy: SsrfPolicy, timeout: float) -> Delivery:
    started = time.monotonic()
    notifier = apprise.Apprise()
    for index, url in enumerate(urls):
        if (refusal := refused_host(policy, url)) is not None:
            return Delivery(False, _ms(started), f"urls[{index}]: {refusal}", permanent=True)
        if not notifier.add(url):
            return Delivery(False, _ms(started), f"urls[{index}]: not a URL Apprise can use", True)
    result = notifier.notify(
        body=text_body(message),
        title=subject(message),
        notify_type=_NOTIFY_TYPES.get(message.event, apprise.NotifyType.INFO),
        timeout=timeout,
    )
    if result:
        return Delivery(ok=True, latency_ms=_ms(started))
    lines = [entry.message for entry in result.logs() if entry.level in _PROBLEM_LEVELS]
    failed = ", ".join(r.name for r in result.results if r.status != _SUCCESS) or "Apprise"
    detail = "; ".join(dict.fromkeys(lines)) or "the service refused or did not answer"
    return Delivery(False, _ms(started), f"{failed} failed: {detail}"[:1000])


class AppriseSender:
    """Delivers messages to every Apprise URL of a channel, in a worker thread."""

    def __init__(self, policy: SsrfPolicy, timeout: float = TIMEOUT) -> None:
        self._policy, self._timeout = policy, timeout

    async def send(self, config: Mapping[str, Any], message: Message) -> Delivery:
        """Deliver one message; never raises but CancelledError."""
        urls = [str(url) for url in config.get("urls") or []]
        try:
            return await asyncio.to_thread(_notify, urls, message, self._policy, self._timeout)
        except Exception as error:
            return Delivery(False, 0, f"{type(error).__name__}: {error}"[:1000])

    async def close(self) -> None:
        """Nothing to close."""


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

"""Webhook channel: one HTTP request per message, behind the HTTP executor's SSRF guard.

Config: `{"url", "method": "POST", "headers": {}, "body_down": null, "body_up": null}`.
`up` messages use `body_up`; every other event uses `body_down`; with no template the
body is the default JSON of DESIGN §3. Redirects are not followed (a webhook URL that
redirects must be fixed). 2xx is delivered; 408/429/5xx, timeouts and connection
errors are retried; other 4xx, redirects and blocked destinations are permanent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from cronkeeper.channels.render import render_body
from cronkeeper.domain.notifications import (
    Delivery,
    Message,
    default_payload,
    is_permanent_http_status,
)
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.executors.http import classify_error, error_message, retry_after_of
from cronkeeper.executors.ssrf_guard import GuardedSession, vet_url

TIMEOUT = 10.0
#: At most this much of an error response is quoted in the notification's error.
ERROR_BODY_LIMIT = 300


def webhook_request(config: Mapping[str, Any], message: Message) -> tuple[str, dict[str, str]]:
    """The body and headers to send (Content-Type JSON unless the config sets one)."""
    template = config.get("body_up") if message.event == "up" else config.get("body_down")
    if template:
        body = render_body(template, message)
    else:
        body = json.dumps(default_payload(message), ensure_ascii=False)
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return body, headers


class WebhookSender:
    """Sends webhooks through one shared, SSRF-guarded aiohttp session (lazily created)."""

    def __init__(
        self,
        policy: SsrfPolicy,
        *,
        user_agent: str = "Cronkeeper",
        resolver: AbstractResolver | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self._policy, self._user_agent, self._timeout = policy, user_agent, timeout
        self._guarded = GuardedSession(policy, resolver)

    def _open(self) -> aiohttp.ClientSession:
        return self._guarded.open()

    async def close(self) -> None:
        """Close the session and the resolver it created."""
        await self._guarded.close()

    async def send(self, config: Mapping[str, Any], message: Message) -> Delivery:
        """Deliver one message; never raises but CancelledError."""
        started = time.monotonic()
        body, headers = webhook_request(config, message)
        headers.setdefault("User-Agent", self._user_agent)
        try:
            url = URL(str(config["url"]))
            vet_url(self._policy, url)
            async with self._open().request(
                str(config.get("method") or "POST"),
                url,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                text = await response.content.read(ERROR_BODY_LIMIT)
                return _answer(response, text.decode("utf-8", "replace"), _ms(started))
        except Exception as error:
            status, reason = classify_error(error)
            return Delivery(
                ok=False,
                latency_ms=_ms(started),
                error=f"{reason.value}: {error_message(error, self._timeout)}",
                permanent=status is AttemptStatus.BLOCKED or isinstance(error, KeyError),
            )


def _answer(response: aiohttp.ClientResponse, text: str, latency_ms: int) -> Delivery:
    code = response.status
    if 200 <= code < 300:
        return Delivery(ok=True, latency_ms=latency_ms)
    snippet = " ".join(text.split())[:ERROR_BODY_LIMIT]
    error = f"HTTP {code} {response.reason or ''}".strip() + (f": {snippet}" if snippet else "")
    if 300 <= code < 400:
        where = response.headers.get("Location", "?")
        return Delivery(False, latency_ms, f"{error} (redirects to {where}; not followed)", True)
    return Delivery(
        ok=False,
        latency_ms=latency_ms,
        error=error,
        permanent=is_permanent_http_status(code) or code < 200,
        retry_after=retry_after_of(response.headers, datetime.now(UTC)),
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

"""The request an HTTP attempt sends: target + run headers + rendered body, and its redirects.

Pure shaping, no I/O: `first_hop` builds the request of DESIGN §3 from an
`AttemptRequest`, `next_hop` the request a redirect asks for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from yarl import URL

from cronkeeper.domain.outcomes import AttemptRequest
from cronkeeper.domain.templates import attempt_variables, iso_utc, render_template

_RESERVED_HEADERS = frozenset({"idempotency-key", "traceparent"})
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
_CROSS_ORIGIN_SECRETS = frozenset({"authorization", "proxy-authorization", "cookie"})
_REDIRECT_TO_GET = frozenset({301, 302, 303})
_REDIRECT_SAME = frozenset({307, 308})


class RedirectRefused(Exception):
    """A redirect we will not follow: bad Location, foreign scheme, or too many hops."""


@dataclass(frozen=True)
class Hop:
    """One request as sent: what `Outcome.resolved` records."""

    method: str
    url: URL
    headers: dict[str, str]
    body: str | None

    def resolved(self) -> dict[str, Any]:
        """The JSON-able record of this request."""
        return {
            "method": self.method,
            "url": str(self.url),
            "headers": dict(self.headers),
            "body": self.body,
        }


def cronkeeper_headers(request: AttemptRequest) -> dict[str, str]:
    """The outbound headers of DESIGN §3 that identify the run (target cannot override)."""
    headers = {"X-Cronkeeper-Job": request.job_slug, "X-Cronkeeper-Run-Id": str(request.run_id)}
    if request.scheduled_for is not None:
        headers["X-Cronkeeper-Scheduled-For"] = iso_utc(request.scheduled_for)
    headers["X-Cronkeeper-Attempt"] = str(request.attempt)
    headers["Idempotency-Key"] = str(request.run_id)
    headers["traceparent"] = request.traceparent
    return headers


def outbound_headers(
    request: AttemptRequest, target_headers: Mapping[str, Any], user_agent: str
) -> dict[str, str]:
    """Target headers over our User-Agent, under the run headers; framing headers dropped."""
    headers = {"User-Agent": user_agent}
    for name, value in target_headers.items():
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered in _FRAMING_HEADERS:
            continue
        if lowered.startswith("x-cronkeeper-"):
            continue
        if lowered == "user-agent":
            headers.pop("User-Agent")
        headers[name] = str(value)
    headers.update(cronkeeper_headers(request))
    return headers


def default_content_type(body: str) -> str:
    """application/json when the body parses as JSON, else UTF-8 text."""
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def first_hop(request: AttemptRequest, user_agent: str) -> Hop:
    """The request of DESIGN §3 for this attempt: target + run headers + rendered body."""
    target = request.target
    headers = outbound_headers(request, target.get("headers") or {}, user_agent)
    raw_body = target.get("body")
    variables = attempt_variables(request)
    body = None if raw_body is None else render_template(str(raw_body), variables)
    if body is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = default_content_type(body)
    method = str(target.get("method") or "GET").upper()
    return Hop(method=method, url=parse_url(target.get("url")), headers=headers, body=body)


def parse_url(text: object) -> URL:
    """The target URL; an empty URL (refused later as unusable) when it does not parse."""
    try:
        return URL(str(text or ""))
    except ValueError:
        return URL()


def next_hop(hop: Hop, status: int, location: str | None) -> Hop | None:
    """The request a redirect asks for, or None when the response is final."""
    if status not in _REDIRECT_TO_GET | _REDIRECT_SAME or not location:
        return None
    try:
        url = hop.url.join(URL(location)).with_fragment(None)
    except ValueError as error:
        raise RedirectRefused(f"redirect to an invalid URL {location!r}: {error}") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise RedirectRefused(f"redirect to a non-http(s) URL {location!r}")
    headers = dict(hop.headers)
    if url.origin() != hop.url.origin():
        headers = {k: v for k, v in headers.items() if k.lower() not in _CROSS_ORIGIN_SECRETS}
    if status in _REDIRECT_SAME or hop.method == "HEAD":
        return replace(hop, url=url, headers=headers)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Hop(method="GET", url=url, headers=headers, body=None)

"""The request an HTTP attempt sends: target + run headers + rendered body, and its redirects.

Pure shaping, no I/O: `first_hop` builds the request of DESIGN §3 from an
`AttemptRequest`, `next_hop` the request a redirect asks for. What a target puts in every
request (method, parsed URL, its headers, the body template) is a `TargetShape`, worked
out once per target by `TargetShapes`; each attempt adds only its run headers and body.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from yarl import URL

from cronkeeper.domain.outcomes import AttemptRequest
from cronkeeper.domain.templates import attempt_variables, iso_utc, render_template

_RESERVED_HEADERS = frozenset({"idempotency-key", "traceparent"})
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
_CROSS_ORIGIN_SECRETS = frozenset({"authorization", "proxy-authorization", "cookie"})
_REDIRECT_TO_GET = frozenset({301, 302, 303})
_REDIRECT_SAME = frozenset({307, 308})
#: Target shapes kept (as many as parsed specs: store/specs.py CACHE_SIZE).
SHAPES_KEPT = 20_000


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
    run_id = str(request.run_id)
    headers = {"X-Cronkeeper-Job": request.job_slug, "X-Cronkeeper-Run-Id": run_id}
    if request.scheduled_for is not None:
        headers["X-Cronkeeper-Scheduled-For"] = slot_text(request.scheduled_for)
    headers["X-Cronkeeper-Attempt"] = str(request.attempt)
    headers["Idempotency-Key"] = run_id
    headers["traceparent"] = request.traceparent
    return headers


#: A slot as a header: the runs of a burst share a handful of slots.
slot_text = lru_cache(maxsize=256)(iso_utc)


def target_base_headers(target_headers: Mapping[str, Any], user_agent: str) -> dict[str, str]:
    """Our User-Agent, overridden or joined by the target's headers (reserved, framing
    and X-Cronkeeper-* names dropped): the part of the headers that is the same every run."""
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
    return headers


def default_content_type(body: str) -> str:
    """application/json when the body parses as JSON, else UTF-8 text."""
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


@dataclass(frozen=True)
class TargetShape:
    """What a target puts in every request it sends, worked out once per target."""

    method: str
    url: URL
    headers: dict[str, str]  # target_base_headers: copied, never changed
    body: str | None  # the body template, or None
    templated: bool  # the body may have placeholders: rendered per run
    adds_content_type: bool  # a body and no Content-Type from the target: we add one
    content_type: str | None  # the one we add, when the body is the same every run

    @classmethod
    def of(cls, target: Mapping[str, Any], user_agent: str) -> TargetShape:
        """The shape of `target` (a validated target body)."""
        headers = target_base_headers(target.get("headers") or {}, user_agent)
        raw_body = target.get("body")
        body = None if raw_body is None else str(raw_body)
        templated = body is not None and "{{" in body
        adds_content_type = body is not None and not any(
            name.lower() == "content-type" for name in headers
        )
        static = adds_content_type and body is not None and not templated
        return cls(
            method=str(target.get("method") or "GET").upper(),
            url=parse_url(target.get("url")),
            headers=headers,
            body=body,
            templated=templated,
            adds_content_type=adds_content_type,
            content_type=default_content_type(body) if static and body is not None else None,
        )

    def hop(self, request: AttemptRequest) -> Hop:
        """The request of DESIGN §3 for this attempt: target + run headers + rendered body."""
        headers = self.headers.copy()
        headers.update(cronkeeper_headers(request))
        body = self.body
        if self.templated and body is not None:
            body = render_template(body, attempt_variables(request))
        if self.adds_content_type and body is not None:
            headers["Content-Type"] = self.content_type or default_content_type(body)
        return Hop(method=self.method, url=self.url, headers=headers, body=body)


class TargetShapes:
    """Target shapes kept by target: a job's spec, and its target, is one object for as
    long as its stored text is unchanged (`store/specs.py`); a target is never changed in
    place, so an edited job brings a new target and a new shape."""

    def __init__(self, user_agent: str, size: int = SHAPES_KEPT) -> None:
        self._user_agent = user_agent
        self._size = size
        self._shapes: OrderedDict[int, tuple[Mapping[str, Any], TargetShape]] = OrderedDict()

    def shape_of(self, target: Mapping[str, Any]) -> TargetShape:
        """The shape of `target`, worked out on first sight."""
        kept = self._shapes.get(id(target))
        if kept is None or kept[0] is not target:
            kept = (target, TargetShape.of(target, self._user_agent))
            self._shapes[id(target)] = kept
            if len(self._shapes) > self._size:
                self._shapes.popitem(last=False)  # the oldest
        return kept[1]

    def first_hop(self, request: AttemptRequest) -> Hop:
        """The attempt's first request (see `first_hop`)."""
        return self.shape_of(request.target).hop(request)


def first_hop(request: AttemptRequest, user_agent: str) -> Hop:
    """The request of DESIGN §3 for this attempt: target + run headers + rendered body."""
    return TargetShape.of(request.target, user_agent).hop(request)


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

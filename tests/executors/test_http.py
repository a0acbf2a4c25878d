"""The HTTP executor against real loopback targets, behind the SSRF guard.

Only 127.0.0.1 (and the 127.0.0.2 sentinel that must never see a connection) is ever
dialled; names resolve through `StaticResolver`, never the system resolver. Private and
metadata ranges beyond loopback are covered by the pure checks in tests/unit/test_ssrf.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.http_exceptions import BadHttpMessage

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import PREVIEW_LIMIT, AttemptRequest, Outcome
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.executors.http import HttpExecutor, classify_error, parse_retry_after
from cronkeeper.executors.ssrf_guard import AddressRefused, guarded_socket_factory

from .http_targets import (
    RawTarget,
    StaticResolver,
    json_body,
    self_signed_context,
    start_web_target,
)

ALLOW_LOOPBACK = SsrfPolicy.from_settings_values("127.0.0.1/32", "", "")
USER_AGENT = "Cronkeeper/0.1.0 (+https://example.invalid/cronkeeper)"
RUN_ID = uuid.UUID("0190a6b2-7c3e-7000-8000-0000000000ab")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SLOT = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def make_request(url: str, *, timeout: float = 5.0, **target: Any) -> AttemptRequest:
    return AttemptRequest(
        run_id=RUN_ID,
        project="default",
        job_slug="nightly-report",
        job_name="Nightly report",
        kind="http",
        target={"url": url, **target},
        timeout=timeout,
        attempt=2,
        max_attempts=3,
        scheduled_for=SLOT,
        traceparent=TRACEPARENT,
        payload={"file": "a.csv"},
    )


@pytest.fixture
async def target() -> AsyncIterator[str]:
    runner, port = await start_web_target()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def sentinel() -> AsyncIterator[RawTarget]:
    """A server on 127.0.0.2 that must never see a connection."""
    server = await RawTarget("127.0.0.2", "ok").start()
    yield server
    await server.close()


@pytest.fixture
def resolver() -> StaticResolver:
    return StaticResolver(
        {
            "target.test": ["127.0.0.1"],
            "evil.test": ["127.0.0.2"],
            "mixed.test": ["127.0.0.1", "127.0.0.2"],
            "nxdomain.test": None,
        }
    )


@pytest.fixture
async def executor(resolver: StaticResolver) -> AsyncIterator[HttpExecutor]:
    async with HttpExecutor(ALLOW_LOOPBACK, user_agent=USER_AGENT, resolver=resolver) as executor:
        yield executor


def assert_failed(outcome: Outcome, status: AttemptStatus, reason: FailureReason) -> None:
    assert (outcome.status, outcome.failure_reason) == (status, reason), outcome
    assert outcome.error and "\n" not in outcome.error
    assert outcome.error_class


# --- a successful call and what it sends ------------------------------------------------


async def test_a_200_succeeds_and_carries_the_outbound_headers_of_design_section_3(
    executor: HttpExecutor, target: str
) -> None:
    outcome = await executor.execute(make_request(f"{target}/echo"))
    assert outcome.status is AttemptStatus.SUCCESS and outcome.failure_reason is None
    assert outcome.status_code == 200 and outcome.error is None
    received = json_body(outcome.body_preview)["headers"]
    assert isinstance(received, dict)
    assert received["x-cronkeeper-job"] == "nightly-report"
    assert received["x-cronkeeper-run-id"] == str(RUN_ID)
    assert received["x-cronkeeper-scheduled-for"] == "2024-05-01T02:00:00Z"
    assert received["x-cronkeeper-attempt"] == "2"
    assert received["idempotency-key"] == str(RUN_ID)
    assert received["traceparent"] == TRACEPARENT
    assert received["user-agent"] == USER_AGENT
    assert 0 <= outcome.latency_ms < 5000


async def test_target_headers_cannot_override_the_run_headers(
    executor: HttpExecutor, target: str
) -> None:
    headers = {
        "Idempotency-Key": "mine",
        "TRACEPARENT": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        "x-cronkeeper-job": "spoofed",
        "X-Custom": "kept",
        "user-agent": "curl/8",
        "Authorization": "Bearer s3cret",
    }
    outcome = await executor.execute(make_request(f"{target}/echo", headers=headers))
    received = json_body(outcome.body_preview)["headers"]
    assert isinstance(received, dict)
    assert received["idempotency-key"] == str(RUN_ID)
    assert received["traceparent"] == TRACEPARENT
    assert received["x-cronkeeper-job"] == "nightly-report"
    assert received["x-custom"] == "kept"
    assert received["user-agent"] == "curl/8"
    assert received["authorization"] == "Bearer s3cret"


async def test_the_body_is_rendered_and_the_resolved_request_is_what_was_sent(
    executor: HttpExecutor, target: str
) -> None:
    body = '{"job": "{{ job.slug }}", "slot": "{{ scheduled_for }}", "file": "{{payload.file}}"}'
    request = make_request(f"{target}/echo", method="POST", body=body, headers={"X-A": "1"})
    outcome = await executor.execute(request)
    received = json_body(outcome.body_preview)
    sent = '{"job": "nightly-report", "slot": "2024-05-01T02:00:00Z", "file": "a.csv"}'
    assert received["method"] == "POST" and received["body"] == sent
    assert isinstance(received["headers"], dict)
    assert received["headers"]["content-type"] == "application/json"
    assert outcome.resolved is not None
    assert outcome.resolved["method"] == "POST"
    assert outcome.resolved["url"] == f"{target}/echo"
    assert outcome.resolved["body"] == sent
    for name, value in outcome.resolved["headers"].items():
        assert received["headers"][name.lower()] == value


async def test_a_run_without_a_slot_sends_no_scheduled_for_header(
    executor: HttpExecutor, target: str
) -> None:
    request = dataclasses.replace(make_request(f"{target}/echo"), scheduled_for=None)
    received = json_body((await executor.execute(request)).body_preview)["headers"]
    assert isinstance(received, dict)
    assert "x-cronkeeper-scheduled-for" not in received


async def test_a_selected_subset_of_response_headers_is_kept(
    executor: HttpExecutor, target: str
) -> None:
    outcome = await executor.execute(make_request(f"{target}/echo"))
    headers = outcome.response_headers
    assert headers["content-type"].startswith("application/json")
    assert headers["x-request-id"] == "req-1" and headers["server"] == "target"
    assert "date" in headers and "content-length" in headers
    assert set(headers) <= {
        "content-type", "content-length", "retry-after", "location", "date", "server",
        "x-request-id", "traceparent",
    }  # fmt: skip


# --- HTTP errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (404, FailureReason.HTTP_4XX),
        (400, FailureReason.HTTP_4XX),
        (429, FailureReason.HTTP_4XX),
        (401, FailureReason.CREDENTIAL),
        (403, FailureReason.CREDENTIAL),
        (500, FailureReason.HTTP_5XX),
        (503, FailureReason.HTTP_5XX),
    ],
)
async def test_error_statuses_map_to_their_failure_reason(
    executor: HttpExecutor, target: str, code: int, reason: FailureReason
) -> None:
    outcome = await executor.execute(make_request(f"{target}/status/{code}"))
    assert (outcome.status, outcome.failure_reason) == (AttemptStatus.HTTP_ERROR, reason)
    assert outcome.status_code == code
    assert outcome.body_preview == f"status {code}"
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {code}")


async def test_a_503_with_retry_after_reports_the_wait(executor: HttpExecutor, target: str) -> None:
    outcome = await executor.execute(make_request(f"{target}/status/503"))
    assert outcome.retry_after == 7.0
    assert outcome.response_headers["retry-after"] == "7"


@pytest.mark.parametrize("code", [200, 204, 304])
async def test_2xx_and_final_3xx_succeed(executor: HttpExecutor, target: str, code: int) -> None:
    outcome = await executor.execute(make_request(f"{target}/status/{code}"))
    assert outcome.status is AttemptStatus.SUCCESS and outcome.status_code == code
    assert outcome.retry_after is None


# --- transport failures ------------------------------------------------------------------


async def test_a_target_slower_than_the_timeout_times_out(
    executor: HttpExecutor, target: str
) -> None:
    outcome = await executor.execute(make_request(f"{target}/slow", timeout=0.3))
    assert_failed(outcome, AttemptStatus.TIMEOUT, FailureReason.TIMEOUT)
    assert 250 <= outcome.latency_ms < 3000
    assert outcome.error == "no complete response within 0.3s"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("reset", FailureReason.CONNECTION),
        # aiohttp reports a reset after the headers as an incomplete payload
        ("reset-mid-body", FailureReason.PROTOCOL),
        ("garbage", FailureReason.PROTOCOL),
        ("truncated", FailureReason.PROTOCOL),
    ],
)
async def test_a_misbehaving_server_is_a_connection_error(
    executor: HttpExecutor, mode: str, reason: FailureReason
) -> None:
    server = await RawTarget("127.0.0.1", mode).start()
    url = f"http://127.0.0.1:{server.port}/"
    try:  # POST: aiohttp retries an idempotent request once when the connection drops
        outcome = await executor.execute(make_request(url, method="POST", body="{}"))
    finally:
        await server.close()
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, reason)
    assert server.connections == 1


async def test_a_closed_port_is_a_connection_error(executor: HttpExecutor) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await executor.execute(make_request(f"http://127.0.0.1:{port}/"))
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, FailureReason.CONNECTION)
    assert outcome.error_class == "aiohttp.client_exceptions.ClientConnectorError"


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return self_signed_context(Path(tmp_path_factory.mktemp("tls")))


async def test_a_self_signed_certificate_is_a_tls_failure(
    executor: HttpExecutor, tls_context: ssl.SSLContext
) -> None:
    runner, port = await start_web_target(tls_context)
    try:
        outcome = await executor.execute(make_request(f"https://127.0.0.1:{port}/echo"))
    finally:
        await runner.cleanup()
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, FailureReason.TLS)
    assert "certificate" in (outcome.error or "").lower()


async def test_an_unresolvable_name_is_a_dns_failure(
    executor: HttpExecutor, resolver: StaticResolver
) -> None:
    outcome = await executor.execute(make_request("http://nxdomain.test/"))
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, FailureReason.DNS)
    assert outcome.error_class == "aiohttp.client_exceptions.ClientConnectorDNSError"
    assert resolver.lookups == ["nxdomain.test"]


@pytest.mark.parametrize("url", ["ftp://target.test/file", "http:///no-host", "not a url"])
async def test_a_url_without_a_usable_destination_is_refused(
    executor: HttpExecutor, resolver: StaticResolver, url: str
) -> None:
    outcome = await executor.execute(make_request(url))
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, FailureReason.DESTINATION_UNRESOLVABLE)
    assert resolver.lookups == []


# --- the SSRF guard ----------------------------------------------------------------------


async def test_a_name_resolves_once_through_the_guard(
    executor: HttpExecutor, resolver: StaticResolver, target: str
) -> None:
    port = target.rsplit(":", 1)[1]
    outcome = await executor.execute(make_request(f"http://target.test:{port}/echo"))
    assert outcome.status is AttemptStatus.SUCCESS
    assert resolver.lookups == ["target.test"]


async def test_a_name_resolving_to_a_private_address_is_blocked_before_connecting(
    executor: HttpExecutor, sentinel: RawTarget
) -> None:
    outcome = await executor.execute(make_request(f"http://evil.test:{sentinel.port}/"))
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.SSRF_BLOCKED)
    assert "evil.test resolves to 127.0.0.2" in (outcome.error or "")
    assert outcome.status_code is None
    assert sentinel.connections == 0


async def test_the_sentinel_does_see_a_connection_when_its_address_is_allowed(
    resolver: StaticResolver, sentinel: RawTarget
) -> None:
    """Control for the test above: the sentinel counts what reaches it."""
    policy = SsrfPolicy.from_settings_values("127.0.0.1/32, 127.0.0.2/32", "", "")
    async with HttpExecutor(policy, user_agent=USER_AGENT, resolver=resolver) as executor:
        outcome = await executor.execute(make_request(f"http://evil.test:{sentinel.port}/"))
    assert outcome.status is AttemptStatus.SUCCESS and outcome.body_preview == "ok"
    assert sentinel.connections == 1


async def test_one_blocked_address_refuses_the_whole_host(
    executor: HttpExecutor, sentinel: RawTarget
) -> None:
    allowed = await RawTarget("127.0.0.1", "ok").start()
    try:
        outcome = await executor.execute(make_request(f"http://mixed.test:{allowed.port}/"))
    finally:
        await allowed.close()
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.SSRF_BLOCKED)
    assert "127.0.0.2" in (outcome.error or "")
    assert allowed.connections == 0 and sentinel.connections == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.2", "[::1]", "[::ffff:127.0.0.2]", "2130706433", "127.1", "[fe80::1%25lo]"]
)
async def test_ip_literal_urls_are_checked_although_no_resolver_runs(
    executor: HttpExecutor, resolver: StaticResolver, sentinel: RawTarget, host: str
) -> None:
    outcome = await executor.execute(make_request(f"http://{host}:{sentinel.port}/"))
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.SSRF_BLOCKED)
    assert sentinel.connections == 0 and resolver.lookups == []


async def test_a_deny_listed_host_name_is_blocked_before_resolving(
    resolver: StaticResolver, target: str
) -> None:
    policy = SsrfPolicy.from_settings_values("127.0.0.1/32", "*.test", "")
    port = target.rsplit(":", 1)[1]
    async with HttpExecutor(policy, user_agent=USER_AGENT, resolver=resolver) as executor:
        outcome = await executor.execute(make_request(f"http://Target.Test.:{port}/echo"))
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.BLOCKED_HOSTNAME)
    assert resolver.lookups == []


@pytest.mark.parametrize("host", ["127.0.0.1", "target.test"])
async def test_a_deny_listed_address_wins_over_the_allow_list(
    resolver: StaticResolver, target: str, host: str
) -> None:
    policy = SsrfPolicy.from_settings_values("1", "", "127.0.0.0/8")
    port = target.rsplit(":", 1)[1]
    async with HttpExecutor(policy, user_agent=USER_AGENT, resolver=resolver) as executor:
        outcome = await executor.execute(make_request(f"http://{host}:{port}/echo"))
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.BLOCKED_IP)


def test_the_socket_factory_refuses_to_dial_a_blocked_address() -> None:
    create = guarded_socket_factory(ALLOW_LOOPBACK)
    with pytest.raises(AddressRefused):
        create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", 80)))
    with create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))) as sock:
        assert sock.family == socket.AF_INET


# --- redirects ---------------------------------------------------------------------------


async def test_a_redirect_chain_is_followed(executor: HttpExecutor, target: str) -> None:
    outcome = await executor.execute(make_request(f"{target}/redirect/5"))
    assert outcome.status is AttemptStatus.SUCCESS
    assert json_body(outcome.body_preview)["path"] == "/redirect/0"
    assert outcome.resolved is not None
    assert outcome.resolved["url"] == f"{target}/redirect/0"


async def test_too_many_redirects_is_a_protocol_failure(
    executor: HttpExecutor, target: str
) -> None:
    outcome = await executor.execute(make_request(f"{target}/redirect/6"))
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, FailureReason.PROTOCOL)
    assert outcome.error == "more than 5 redirects"


@pytest.mark.parametrize(
    ("code", "method", "body"),
    [
        (301, "GET", ""),
        (302, "GET", ""),
        (303, "GET", ""),
        (307, "PUT", "x=1"),
        (308, "PUT", "x=1"),
    ],
)
async def test_redirects_keep_or_drop_method_and_body_by_status(
    executor: HttpExecutor, target: str, code: int, method: str, body: str
) -> None:
    url = f"{target}/redirect-with?code={code}&to=/echo"
    outcome = await executor.execute(make_request(url, method="PUT", body="x=1"))
    received = json_body(outcome.body_preview)
    assert (received["method"], received["body"]) == (method, body)


async def test_a_redirect_to_a_private_address_is_blocked(
    executor: HttpExecutor, target: str, sentinel: RawTarget
) -> None:
    url = f"{target}/redirect-with?to=http://127.0.0.2:{sentinel.port}/"
    outcome = await executor.execute(make_request(url))
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.SSRF_BLOCKED)
    assert sentinel.connections == 0
    assert outcome.resolved is not None
    assert outcome.resolved["url"] == f"http://127.0.0.2:{sentinel.port}/"


async def test_a_redirect_to_a_name_of_a_private_address_is_blocked(
    executor: HttpExecutor, target: str, sentinel: RawTarget
) -> None:
    url = f"{target}/redirect-with?to=http://evil.test:{sentinel.port}/"
    outcome = await executor.execute(make_request(url))
    assert_failed(outcome, AttemptStatus.BLOCKED, FailureReason.SSRF_BLOCKED)
    assert sentinel.connections == 0


async def test_a_redirect_to_another_origin_drops_credentials(
    executor: HttpExecutor, target: str
) -> None:
    port = target.rsplit(":", 1)[1]
    url = f"{target}/redirect-with?to=http://target.test:{port}/echo"
    headers = {"Authorization": "Bearer s3cret", "Cookie": "a=b", "X-Other": "kept"}
    outcome = await executor.execute(make_request(url, headers=headers))
    received = json_body(outcome.body_preview)["headers"]
    assert isinstance(received, dict)
    assert "authorization" not in received and "cookie" not in received
    assert received["x-other"] == "kept"


async def test_a_redirect_to_a_foreign_scheme_is_a_protocol_failure(
    executor: HttpExecutor, target: str
) -> None:
    outcome = await executor.execute(make_request(f"{target}/redirect-with?to=ftp://x/"))
    assert_failed(outcome, AttemptStatus.CONNECTION_ERROR, FailureReason.PROTOCOL)


# --- bodies, cancellation, life cycle ----------------------------------------------------


async def test_a_huge_body_keeps_a_64_kib_preview_in_bounded_memory(
    executor: HttpExecutor, target: str
) -> None:
    await executor.execute(make_request(f"{target}/echo"))  # warm up imports and pools
    tracemalloc.start()
    try:
        outcome = await executor.execute(make_request(f"{target}/huge"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status is AttemptStatus.SUCCESS
    assert outcome.body_preview == "x" * PREVIEW_LIMIT
    assert outcome.response_headers["content-length"] == str(10 * 1024 * 1024)
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes for a 10 MB body"


async def test_cancelling_an_attempt_propagates_and_leaves_the_executor_usable(
    executor: HttpExecutor, target: str
) -> None:
    attempt = asyncio.create_task(executor.execute(make_request(f"{target}/slow")))
    await asyncio.sleep(0.2)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    outcome = await executor.execute(make_request(f"{target}/echo"))
    assert outcome.status is AttemptStatus.SUCCESS


async def test_executing_before_start_is_an_error() -> None:
    executor = HttpExecutor(ALLOW_LOOPBACK, user_agent=USER_AGENT)
    with pytest.raises(RuntimeError, match="start"):
        await executor.execute(make_request("http://target.test/"))
    await executor.close()


async def test_start_and_close_are_idempotent(resolver: StaticResolver) -> None:
    executor = HttpExecutor(ALLOW_LOOPBACK, user_agent=USER_AGENT, resolver=resolver)
    await executor.start()
    await executor.start()
    await executor.close()
    await executor.close()


# --- pure helpers ------------------------------------------------------------------------


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("7", None, 7.0),
        (" 120 ", None, 120.0),
        ("Wed, 01 May 2024 12:00:30 GMT", None, 30.0),
        ("Wed, 01 May 2024 12:00:30 GMT", "Wed, 01 May 2024 12:00:10 GMT", 20.0),
        ("Wed, 01 May 2024 11:00:00 GMT", None, 0.0),
        ("Wed, 01 May 2024 12:00:30 GMT", "garbage", 30.0),
        ("soon", None, None),
        ("-5", None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(
    value: str, date: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value, date, NOW) == expected


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (TimeoutError(), AttemptStatus.TIMEOUT, FailureReason.TIMEOUT),
        (aiohttp.ServerTimeoutError(), AttemptStatus.TIMEOUT, FailureReason.TIMEOUT),
        (socket.gaierror(-2, "unknown"), AttemptStatus.CONNECTION_ERROR, FailureReason.DNS),
        (ssl.SSLError(1, "bad"), AttemptStatus.CONNECTION_ERROR, FailureReason.TLS),
        (
            aiohttp.ServerDisconnectedError(),
            AttemptStatus.CONNECTION_ERROR,
            FailureReason.CONNECTION,
        ),
        (
            aiohttp.ClientOSError(104, "reset"),
            AttemptStatus.CONNECTION_ERROR,
            FailureReason.CONNECTION,
        ),
        (ConnectionRefusedError(), AttemptStatus.CONNECTION_ERROR, FailureReason.CONNECTION),
        (aiohttp.ClientPayloadError("cut"), AttemptStatus.CONNECTION_ERROR, FailureReason.PROTOCOL),
        (BadHttpMessage("bad"), AttemptStatus.CONNECTION_ERROR, FailureReason.PROTOCOL),
        (ValueError("bug"), AttemptStatus.EXCEPTION, FailureReason.UNKNOWN),
    ],
)
def test_exceptions_map_to_a_status_and_a_failure_reason(
    error: Exception, status: AttemptStatus, reason: FailureReason
) -> None:
    assert classify_error(error) == (status, reason)

"""Requests in flight per destination (`HostSlots`), the executor's wait for a busy host,
and target shapes reused across runs (`TargetShapes`)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.executors.host_slots import HostSlots
from cronkeeper.executors.http import HttpExecutor
from cronkeeper.executors.http_request import TargetShapes, first_hop

from .http_targets import StaticResolver, start_web_target
from .test_http import ALLOW_LOOPBACK, USER_AGENT, make_request

HOST = HostSlots.key_of(URL("http://127.0.0.1:8080/hook"))


async def test_requests_past_the_cap_wait_in_order_and_take_the_returned_slots() -> None:
    slots = HostSlots(per_host=2)
    await slots.take(HOST, 5)
    await slots.take(HOST, 5)
    order: list[int] = []

    async def wait(number: int) -> None:
        await slots.take(HOST, 5)
        order.append(number)

    waiting = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == [] and slots.taken(HOST) == 2
    slots.give_back(HOST)
    slots.give_back(HOST)
    await asyncio.sleep(0)
    assert order == [0, 1] and slots.taken(HOST) == 2
    slots.give_back(HOST)
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2]


async def test_a_wait_longer_than_its_budget_ends_in_timeout_error() -> None:
    slots = HostSlots(per_host=1)
    await slots.take(HOST, 5)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await slots.take(HOST, 0.2)
    assert 0.19 <= time.monotonic() - started < 1.0
    slots.give_back(HOST)
    assert slots.taken(HOST) == 0
    await slots.take(HOST, 0.2)  # the timed-out wait left nothing behind


async def test_a_slot_handed_to_a_cancelled_wait_goes_to_the_next_one() -> None:
    slots = HostSlots(per_host=1)
    await slots.take(HOST, 5)
    first = asyncio.create_task(slots.take(HOST, 5))
    second = asyncio.create_task(slots.take(HOST, 5))
    await asyncio.sleep(0)
    slots.give_back(HOST)  # handed to `first`, which is cancelled before it resumes
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert slots.taken(HOST) == 1


async def test_a_cancelled_wait_takes_no_slot_and_a_host_is_forgotten_when_free() -> None:
    slots = HostSlots(per_host=1)
    await slots.take(HOST, 5)
    waiting = asyncio.create_task(slots.take(HOST, 5))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.give_back(HOST)
    assert slots.taken(HOST) == 0
    assert not slots._hosts


@pytest.fixture
async def target() -> AsyncIterator[str]:
    runner, port = await start_web_target()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_an_attempt_waiting_for_a_busy_host_times_out_within_its_timeout(
    target: str,
) -> None:
    async with HttpExecutor(
        ALLOW_LOOPBACK, user_agent=USER_AGENT, resolver=StaticResolver({}), per_host=1
    ) as executor:
        busy = asyncio.create_task(executor.execute(make_request(f"{target}/slow")))
        await asyncio.sleep(0.1)
        outcome = await executor.execute(make_request(f"{target}/echo", timeout=0.3))
        assert (outcome.status, outcome.failure_reason) == (
            AttemptStatus.TIMEOUT,
            FailureReason.TIMEOUT,
        )
        assert 250 <= outcome.latency_ms < 2000
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        outcome = await executor.execute(make_request(f"{target}/echo"))
        assert outcome.status is AttemptStatus.SUCCESS


def test_a_target_is_shaped_once_and_each_run_adds_its_own_headers() -> None:
    shapes = TargetShapes(USER_AGENT)
    first = make_request("http://127.0.0.1:8080/hook", headers={"X-A": "1"})
    second = dataclasses.replace(first, run_id=uuid.uuid4(), attempt=1)
    one, two = shapes.first_hop(first), shapes.first_hop(second)
    assert one.url is two.url  # parsed once
    assert one == first_hop(first, USER_AGENT) and two == first_hop(second, USER_AGENT)
    assert two.headers["X-Cronkeeper-Run-Id"] == str(second.run_id) != str(first.run_id)
    assert one.headers["X-Cronkeeper-Run-Id"] == str(first.run_id)
    assert two.headers["X-A"] == "1" and two.headers["X-Cronkeeper-Attempt"] == "1"


def test_an_edited_target_is_shaped_anew() -> None:
    shapes = TargetShapes(USER_AGENT)
    request = make_request("http://127.0.0.1:8080/old", method="POST", body="{}")
    edited = dataclasses.replace(
        request, target={**request.target, "url": "http://127.0.0.1:8080/new"}
    )
    assert str(shapes.first_hop(request).url).endswith("/old")
    hop = shapes.first_hop(edited)
    assert str(hop.url).endswith("/new") and hop.method == "POST"
    assert hop.headers["Content-Type"] == "application/json" and hop.body == "{}"


def test_a_templated_body_is_rendered_for_every_run() -> None:
    shapes = TargetShapes(USER_AGENT)
    request = make_request("http://127.0.0.1:8080/", method="POST", body="{{ attempt }}")
    assert shapes.first_hop(request).body == "2"
    again = shapes.first_hop(dataclasses.replace(request, attempt=3))
    assert again.body == "3" and again.headers["Content-Type"] == "application/json"
    text = dataclasses.replace(request, attempt=1, payload="x")
    text = dataclasses.replace(text, target={**request.target, "body": "{{ payload }}"})
    hop = shapes.first_hop(text)
    assert hop.body == "x" and hop.headers["Content-Type"] == "text/plain; charset=utf-8"

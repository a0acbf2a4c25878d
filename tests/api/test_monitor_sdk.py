"""`cronkeeper.monitor` against a real `cronkeeper serve`: the context manager and the
decorator (sync and async) leave one timed run per use, a failure carries the exception,
the exception is never swallowed, and an unreachable server costs one logged warning."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import cronkeeper

from .conftest import JOBS, RealServer, bearer, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with serve(tmp_path_factory.mktemp("monitor-sdk")) as running:
        yield running


@pytest.fixture(scope="module")
def key(server: RealServer) -> str:
    """The `default` project's ping key."""
    answer = httpx.get(f"{server.url}/api/v1/projects/default", headers=bearer(server.admin_key))
    prefix: str = answer.json()["data"]["ping_url_prefix"]
    return prefix.rsplit("/", 1)[1]


def new_slug() -> str:
    return f"sdk-{uuid.uuid4().hex[:8]}"


def runs_of(server: RealServer, slug: str) -> list[dict[str, Any]]:
    """The job's runs, oldest first, with attempts."""
    with httpx.Client(base_url=server.url, headers=bearer(server.admin_key)) as api:
        listed = api.get(f"{JOBS}/{slug}/runs", params={"order": "asc"}).json()["data"]["items"]
        return [api.get(f"/api/v1/projects/default/runs/{r['id']}").json()["data"] for r in listed]


def test_a_with_block_is_one_timed_run(server: RealServer, key: str) -> None:
    slug = new_slug()
    with cronkeeper.monitor(slug, ping_key=key, url=server.url, create=True):
        time.sleep(0.2)

    (run,) = runs_of(server, slug)
    assert (run["status"], run["source"]) == ("succeeded", "heartbeat")
    assert run["duration_ms"] >= 200


def test_an_exception_fails_the_run_with_its_type_and_message_and_is_raised(
    server: RealServer, key: str
) -> None:
    slug = new_slug()
    with (
        pytest.raises(ValueError, match="no rows"),
        cronkeeper.monitor(slug, ping_key=key, url=server.url, create=True),
    ):
        raise ValueError("no rows")

    (run,) = runs_of(server, slug)
    assert (run["status"], run["failure_reason"]) == ("failed", "unknown")
    assert run["attempt_details"][0]["body_preview"] == "ValueError: no rows"


def test_each_call_of_a_decorated_function_is_its_own_run(
    server: RealServer, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = new_slug()
    monkeypatch.setenv("CRONKEEPER_URL", server.url)
    monkeypatch.setenv("CRONKEEPER_PING_KEY", key)

    @cronkeeper.monitor(slug, create=True)
    def add(a: int, b: int) -> int:
        if a < 0:
            raise RuntimeError("negative")
        return a + b

    assert add(1, 2) == 3
    with pytest.raises(RuntimeError):
        add(-1, 2)

    assert [run["status"] for run in runs_of(server, slug)] == ["succeeded", "failed"]


def test_an_async_function_is_monitored_without_blocking_the_loop(
    server: RealServer, key: str
) -> None:
    slug = new_slug()

    @cronkeeper.monitor(slug, ping_key=key, url=server.url, create=True)
    async def report() -> str:
        await asyncio.sleep(0.1)
        return "done"

    async def both() -> list[str]:
        return list(await asyncio.gather(report(), report()))  # overlapping runs

    assert asyncio.run(both()) == ["done", "done"]
    runs = runs_of(server, slug)
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"]
    assert all(run["duration_ms"] >= 100 for run in runs)  # each timed by its own rid


def test_a_ping_url_works_as_the_whole_target(server: RealServer) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(server.admin_key)) as api:
        job = api.post(JOBS, json={"slug": new_slug(), "kind": "heartbeat"}).json()["data"]
    with cronkeeper.monitor(ping_url=job["ping_url"]):
        pass

    assert [run["status"] for run in runs_of(server, job["slug"])] == ["succeeded"]


def test_an_unreachable_server_is_one_warning_and_the_code_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran = []
    with caplog.at_level(logging.WARNING, logger="cronkeeper.monitor"):
        started = time.monotonic()
        with cronkeeper.monitor("backup", ping_key="k" * 22, url="http://127.0.0.1:9"):
            ran.append(True)

    assert ran == [True]
    assert time.monotonic() - started < 20
    (record,) = caplog.records
    assert "cannot reach Cronkeeper" in record.getMessage()


def test_without_a_ping_key_the_code_runs_and_a_warning_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="cronkeeper.monitor"),
        cronkeeper.monitor("backup"),
    ):
        pass

    (record,) = caplog.records
    assert "no ping key" in record.getMessage()

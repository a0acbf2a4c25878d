"""The Python executor against real callables: imported by name and from a registry."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.outcomes import PREVIEW_LIMIT, AttemptRequest
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.executors.python import PythonExecutor, RunLog
from cronkeeper.testing import FakeClock

from . import sample_tasks

# The name pytest imported the sample module under (`tests.executors.sample_tasks` when the
# repository root is on sys.path, `executors.sample_tasks` when only tests/ is).
TASKS = sample_tasks.__name__
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def request(callable_: str, timeout: float = 5.0, **kwargs: Any) -> AttemptRequest:
    return AttemptRequest(
        run_id=uuid.UUID("01940000-0000-7000-8000-000000000001"),
        project="default",
        job_slug="nightly-report",
        job_name="Nightly report",
        kind="python",
        target={"callable": callable_, "kwargs": kwargs},
        timeout=timeout,
        attempt=2,
        max_attempts=3,
        scheduled_for=datetime(2026, 1, 1, 2, tzinfo=UTC),
        traceparent=TRACEPARENT,
        payload={"files": ["a.csv"]},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def executor(clock: FakeClock) -> PythonExecutor:
    return PythonExecutor(clock)


async def test_sync_function_result_becomes_a_json_preview(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:add", a=2, b=3))
    assert outcome.status is AttemptStatus.SUCCESS
    assert outcome.failure_reason is None
    assert json.loads(outcome.body_preview or "") == {"sum": 5}
    assert outcome.resolved == {"callable": f"{TASKS}:add", "kwargs": {"a": 2, "b": 3}}


async def test_async_function_is_awaited_and_a_str_result_kept_as_is(
    executor: PythonExecutor,
) -> None:
    outcome = await executor.execute(request(f"{TASKS}:greet", name="ops"))
    assert outcome.succeeded
    assert outcome.body_preview == "hello ops"


async def test_none_result_has_no_preview(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:nothing"))
    assert outcome.succeeded
    assert outcome.body_preview is None


async def test_unserialisable_values_are_previewed_with_repr(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:returns_an_object"))
    assert outcome.body_preview == '{"when": "<marker>"}'


async def test_large_result_preview_is_truncated_to_64_kib(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:returns_a_lot"))
    assert outcome.body_preview == "y" * PREVIEW_LIMIT


async def test_context_is_passed_to_a_function_that_names_ctx(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:describe_context"))
    assert json.loads(outcome.body_preview or "") == {
        "run_id": "01940000-0000-7000-8000-000000000001",
        "job": "nightly-report",
        "attempt": 2,
        "payload": {"files": ["a.csv"]},
        "traceparent": TRACEPARENT,
    }


async def test_context_is_passed_to_a_function_taking_any_keyword(
    executor: PythonExecutor,
) -> None:
    outcome = await executor.execute(request(f"{TASKS}:takes_anything", limit=3))
    assert json.loads(outcome.body_preview or "") == ["ctx", "limit"]


async def test_context_is_not_passed_to_a_function_without_ctx(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:no_context", value=7))
    assert outcome.succeeded
    assert outcome.body_preview == "7"


async def test_lines_logged_through_ctx_are_reported_in_order(
    executor: PythonExecutor, clock: FakeClock
) -> None:
    outcome = await executor.execute(request(f"{TASKS}:logs_then_returns"))
    assert [(line.level, line.message) for line in outcome.logs] == [
        ("info", "starting"),
        ("warning", "disk almost full"),
        ("error", "one file skipped"),
    ]
    assert all(line.at == clock.now() for line in outcome.logs)
    assert outcome.body_preview == "done"


async def test_async_functions_log_too(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:logs_asynchronously"))
    assert [line.message for line in outcome.logs] == ["async starting", "async done"]


async def test_exception_is_reported_with_class_message_and_traceback(
    executor: PythonExecutor,
) -> None:
    outcome = await executor.execute(request(f"{TASKS}:logs_then_fails"))
    assert outcome.status is AttemptStatus.EXCEPTION
    assert outcome.failure_reason is FailureReason.EXCEPTION
    assert outcome.error_class == f"{TASKS}.TaskFailed"
    assert outcome.error == "the report could not be rendered"
    assert [line.level for line in outcome.logs] == ["info", "error"]
    assert outcome.logs[0].message == "about to fail"
    trace = outcome.logs[1].message
    assert trace.startswith("Traceback (most recent call last):")
    assert "in logs_then_fails" in trace
    assert trace.rstrip().endswith("TaskFailed: the report could not be rendered")


async def test_async_exception_message_is_one_line(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:fails_asynchronously"))
    assert outcome.error_class == "builtins.ValueError"
    assert outcome.error == "bad value second line"


async def test_long_exception_message_is_truncated(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:fails_with_a_long_message"))
    assert outcome.error == "x" * 2000


async def test_exception_without_message_names_its_class(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:fails_without_a_message"))
    assert outcome.error_class == "builtins.RuntimeError"
    assert outcome.error == "RuntimeError"


async def test_sys_exit_in_a_job_is_reported_not_raised(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:exits"))
    assert outcome.status is AttemptStatus.EXCEPTION
    assert outcome.error_class == "builtins.SystemExit"
    assert outcome.error == "3"


async def test_a_timeout_error_raised_by_the_job_is_an_exception_not_a_timeout(
    executor: PythonExecutor,
) -> None:
    outcome = await executor.execute(request(f"{TASKS}:raises_its_own_timeout", timeout=5))
    assert outcome.status is AttemptStatus.EXCEPTION
    assert outcome.error_class == "builtins.TimeoutError"
    assert outcome.error == "upstream took too long"


async def test_slow_async_function_times_out(executor: PythonExecutor) -> None:
    started = time.monotonic()
    outcome = await executor.execute(request(f"{TASKS}:sleeps", timeout=0.2, seconds=30))
    assert time.monotonic() - started < 2
    assert outcome.status is AttemptStatus.TIMEOUT
    assert outcome.failure_reason is FailureReason.TIMEOUT
    assert outcome.error == "timed out after 0.2 s"


async def test_slow_sync_function_times_out_but_its_thread_runs_on(clock: FakeClock) -> None:
    finished = threading.Event()

    def slow_job() -> None:
        time.sleep(0.5)
        finished.set()

    executor = PythonExecutor(clock, {"jobs:slow": slow_job})
    outcome = await executor.execute(request("jobs:slow", timeout=0.1))
    assert outcome.status is AttemptStatus.TIMEOUT
    assert "keeps running in the background" in (outcome.error or "")
    assert not finished.is_set()
    assert await asyncio.to_thread(finished.wait, 5)


async def test_cancellation_propagates(executor: PythonExecutor) -> None:
    task = asyncio.create_task(executor.execute(request(f"{TASKS}:sleeps", seconds=30)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_missing_module_is_an_import_failure(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request("no_such_package.tasks:run"))
    assert outcome.status is AttemptStatus.EXCEPTION
    assert outcome.failure_reason is FailureReason.EXCEPTION
    assert outcome.error_class == "builtins.ModuleNotFoundError"
    assert outcome.error == (
        "cannot import 'no_such_package.tasks:run': "
        "ModuleNotFoundError: No module named 'no_such_package'"
    )


async def test_missing_attribute_is_an_import_failure(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:vanished"))
    assert outcome.error_class == "builtins.AttributeError"
    assert (outcome.error or "").startswith(f"cannot import '{TASKS}:vanished': AttributeError:")


async def test_an_attribute_that_is_not_callable_is_refused(executor: PythonExecutor) -> None:
    outcome = await executor.execute(request(f"{TASKS}:NOT_CALLABLE"))
    assert outcome.status is AttemptStatus.EXCEPTION
    assert outcome.error == (
        f"cannot import '{TASKS}:NOT_CALLABLE': "
        "TypeError: 'NOT_CALLABLE' is not callable (type int)"
    )


async def test_dotted_attribute_paths_reach_methods(executor: PythonExecutor) -> None:
    doubled = await executor.execute(request(f"{TASKS}:Tasks.double", value=21))
    named = await executor.execute(request(f"{TASKS}:Tasks.name"))
    assert doubled.body_preview == "42"
    assert named.body_preview == "Tasks"


async def test_registry_entry_wins_over_an_import(clock: FakeClock) -> None:
    def registered(a: int, b: int) -> str:
        return f"registered {a + b}"

    executor = PythonExecutor(clock, {f"{TASKS}:add": registered})
    outcome = await executor.execute(request(f"{TASKS}:add", a=1, b=1))
    assert outcome.body_preview == "registered 2"


async def test_registry_holds_callables_no_module_provides(clock: FakeClock) -> None:
    async def cleanup(ctx: Any) -> str:
        ctx.log.info(f"cleaning for {ctx.job_slug}")
        return "clean"

    executor = PythonExecutor(clock, {"myapp.tasks:cleanup": cleanup})
    outcome = await executor.execute(request("myapp.tasks:cleanup"))
    assert outcome.body_preview == "clean"
    assert [line.message for line in outcome.logs] == ["cleaning for nightly-report"]


async def test_latency_is_measured_on_the_clock(clock: FakeClock) -> None:
    async def takes_time() -> None:
        clock.advance(1.5)

    outcome = await PythonExecutor(clock, {"t:t": takes_time}).execute(request("t:t"))
    assert outcome.latency_ms == 1500


def test_run_log_keeps_a_bounded_number_of_lines(clock: FakeClock) -> None:
    log = RunLog(clock, limit=3)
    for number in range(5):
        log.info(f"line {number}")
    assert [line.message for line in log.lines] == [
        "line 0",
        "line 1",
        "line 2",
        "2 more log lines dropped (limit 3 per attempt)",
    ]

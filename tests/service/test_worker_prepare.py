"""The worker lets an executor that can (`Preparing`) shape a run's request when it claims
the run, before the run's start."""

from __future__ import annotations

from typing import Any

from cronkeeper.domain.models import Actor
from cronkeeper.domain.outcomes import AttemptRequest, Outcome
from cronkeeper.domain.states import AttemptStatus
from cronkeeper.service import runs as run_service
from cronkeeper.service.context import Context

from .test_worker import FINAL, live, make_job, until_status, worker

__all__ = ["live"]  # the fixture, shared with test_worker


class PreparingExecutor:
    """Records what it was asked, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def prepare(self, target: dict[str, Any]) -> None:
        self.calls.append(("prepare", target))

    async def execute(self, request: AttemptRequest) -> Outcome:
        self.calls.append(("execute", request.target))
        return Outcome(status=AttemptStatus.SUCCESS)


async def test_a_preparing_executor_is_handed_the_target_before_the_run_starts(
    live: Context, admin: Actor
) -> None:
    executor = PreparingExecutor()
    target = {"method": "GET", "url": "http://127.0.0.1:9/hook"}
    await make_job(live, admin, "report", "http", target)
    async with worker(live, extra={"http": executor}):  # type: ignore[dict-item]
        queued = await run_service.trigger_job(live, admin, "default", "report")
        run = await until_status(live, admin, queued.id, FINAL)
    assert run.status == "succeeded"
    assert [name for name, _ in executor.calls] == ["prepare", "execute"]
    prepared, executed = (seen for _, seen in executor.calls)
    assert prepared is executed and prepared["url"] == target["url"]

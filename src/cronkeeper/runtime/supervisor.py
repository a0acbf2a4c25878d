"""The supervisor: starts the loops a process's role asks for and stops them together.

Roles: `scheduler` fires slots; `worker` executes runs and reaps runs of lost nodes;
`all` does both (the HTTP API is started by the server next to these loops).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Mapping

from cronkeeper.domain.outcomes import Executor
from cronkeeper.runtime.monitor import Monitor
from cronkeeper.runtime.notifier import Notifier
from cronkeeper.runtime.scheduler import Scheduler
from cronkeeper.runtime.tracing import Tracing
from cronkeeper.runtime.waiting import wait_for_any
from cronkeeper.runtime.worker import Worker
from cronkeeper.service import execution, nodes, retention
from cronkeeper.service.context import Context

log = logging.getLogger("cronkeeper.runtime")


def new_node_id() -> str:
    """`host:pid:random`, unique per process start."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Supervisor:
    def __init__(
        self,
        ctx: Context,
        executors: Mapping[str, Executor],
        *,
        role: str = "all",
        node: str | None = None,
        worker_options: Mapping[str, object] | None = None,
        tracing: Tracing | None = None,
        reap_every: float = 5.0,
        prune_every: float = 600.0,
    ) -> None:
        self.ctx, self.executors, self.role = ctx, executors, role
        self.node = node or new_node_id()
        self.stopping = asyncio.Event()
        self.scheduler = Scheduler(ctx) if role in ("all", "scheduler") else None
        self.notifier = Notifier(ctx) if role in ("all", "scheduler") else None
        self.monitor = Monitor(ctx) if role in ("all", "scheduler") else None
        self.worker = (
            Worker(ctx, executors, node=self.node, tracing=tracing, **dict(worker_options or {}))  # type: ignore[arg-type]
            if role in ("all", "worker")
            else None
        )
        self.reap_every, self.prune_every = reap_every, prune_every

    async def run(self) -> None:
        """Run the loops of this role until `stop()`; then drain and mark the node stopped."""
        await nodes.register(self.ctx, self.node, roles=self.role)
        loops = [self._heartbeat()]
        if self.scheduler is not None:
            loops.append(self.scheduler.run(self.stopping))
        if self.notifier is not None:
            loops.append(self.notifier.run(self.stopping))
        if self.monitor is not None:
            loops.append(self.monitor.run(self.stopping))
        if self.worker is not None:
            loops += [self.worker.run(self.stopping), self._reap(), self._prune()]
        try:
            await asyncio.gather(*loops)
        finally:
            await nodes.stop(self.ctx, self.node)

    def stop(self) -> None:
        """Ask every loop to finish (workers drain their in-flight runs)."""
        self.stopping.set()

    async def _heartbeat(self) -> None:
        while not self.stopping.is_set():
            try:
                await nodes.heartbeat(self.ctx, self.node)
            except Exception:
                log.exception("node heartbeat failed")
            await wait_for_any(self.ctx.clock, 10.0, self.stopping)

    async def _reap(self) -> None:
        while not self.stopping.is_set():
            try:
                reaped = await execution.reap_lost_runs(self.ctx, random.random)
                if reaped:
                    log.warning("reaped %d runs whose node stopped renewing its lease", reaped)
                    self.ctx.wakeups.runs_queued.set()
            except Exception:
                log.exception("reaping lost runs failed")
            await wait_for_any(self.ctx.clock, self.reap_every, self.stopping)

    async def _prune(self) -> None:
        while not self.stopping.is_set():
            try:
                pruned = await retention.prune_old_runs(self.ctx)
                if pruned:
                    log.info("retention: deleted %d runs past their project's retention", pruned)
                history = await retention.prune_monitor_history(self.ctx)
                if history:
                    log.info("retention: deleted %d flips and alerts older than 93 days", history)
            except Exception:
                log.exception("retention pass failed")
            await wait_for_any(self.ctx.clock, self.prune_every, self.stopping)

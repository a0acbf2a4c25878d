"""What every use case needs: the database, the clock, where the server is reached, and
the in-process signals and limits shared by the API and the runtime loops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cronkeeper.clock import Clock, SystemClock
from cronkeeper.domain.ratelimit import TokenBuckets
from cronkeeper.domain.ssrf import SsrfPolicy
from cronkeeper.metrics import Metrics
from cronkeeper.store.engine import Database


@dataclass
class Wakeups:
    """Nudges between use cases and loops of one process (other processes poll)."""

    runs_queued: asyncio.Event = field(default_factory=asyncio.Event)
    jobs_changed: asyncio.Event = field(default_factory=asyncio.Event)
    alerts_pending: asyncio.Event = field(default_factory=asyncio.Event)  # monitor → notifier
    runs_finished: asyncio.Event = field(default_factory=asyncio.Event)  # → monitor


def _trigger_limits() -> TokenBuckets:
    # Manual triggers per job: a burst of 5, then one every 2 seconds.
    return TokenBuckets(capacity=5, per_second=0.5)


@dataclass(frozen=True)
class Context:
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    base_url: str = "http://127.0.0.1:8080"
    wakeups: Wakeups = field(default_factory=Wakeups)
    trigger_limits: TokenBuckets = field(default_factory=_trigger_limits)
    metrics: Metrics = field(default_factory=Metrics)
    ssrf: SsrfPolicy = field(default_factory=SsrfPolicy)  # where alert channels may connect
    outage_gap: float = 30.0  # seconds without a monitor tick that are our own outage

"""Prometheus metrics of one process (served at `/metrics`).

Counters and histograms are updated where runs end; the queue gauges are read from
the ledger at scrape time, so every process reports the same queue.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics:
    """Every metric Cronkeeper exports, on a registry of its own (tests get a fresh one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[object, ...], Any] = {}
        labels = ["project", "job"]
        self.runs = Counter(
            "cronkeeper_runs",
            "Runs that reached a final status",
            [*labels, "status"],
            registry=self.registry,
        )
        # Histograms per project, not per job: a child per job costs ~10 KB (a value per
        # bucket) and 100,000 jobs would hold a gigabyte; per-job percentiles: GET …/stats.
        self.duration = Histogram(
            "cronkeeper_run_duration_seconds",
            "Run duration, first start to finish",
            ["project"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.drift = Histogram(
            "cronkeeper_run_drift_seconds",
            "Start drift: started_at - scheduled_for",
            ["project"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.last_success = Gauge(
            "cronkeeper_job_last_success_timestamp_seconds",
            "Unix time of the last success",
            labels,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "cronkeeper_queue_depth",
            "Runs waiting in the queue",
            ["queue"],
            registry=self.registry,
        )
        self.queue_oldest_age = Gauge(
            "cronkeeper_queue_oldest_age_seconds",
            "Age of the oldest waiting run",
            ["queue"],
            registry=self.registry,
        )
        self.scheduler_lag = Gauge(
            "cronkeeper_scheduler_lag_seconds",
            "How late the scheduler's last pass fired its oldest due slot",
            registry=self.registry,
        )
        self.alert_dispatch = Histogram(
            "cronkeeper_alert_dispatch_seconds",
            "Alert dispatch latency: an alert's deliver_at to its notification being sent",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def alert_dispatched(self, kind: str, seconds: float) -> None:
        """Observe one notification sent, `seconds` after its alert fell due."""
        self.alert_dispatch.labels(kind).observe(seconds)

    def run_finished(
        self,
        project: str,
        job: str,
        status: str,
        duration_s: float | None,
        drift_s: float | None,
        finished_at: float,
    ) -> None:
        """Count a run that reached a final status."""
        self._child(self.runs, project, job, status).inc()
        if duration_s is not None:
            self._child(self.duration, project).observe(duration_s)
        if drift_s is not None:
            self._child(self.drift, project).observe(max(0.0, drift_s))
        if status == "succeeded":
            self._child(self.last_success, project, job).set(finished_at)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: the lookup costs more than the update, and
        thousands of runs a second finish."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)

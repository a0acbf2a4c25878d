"""A job's specification: policies with their defaults, and the cross-field rules.

The JSON body of DESIGN §3 maps one-to-one onto `JobSpec`; durations are seconds.
Field-level parsing (types, bounds, durations, schedules) happens at the edge; the
rules that span several fields live here so every entry point shares them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cronkeeper.domain.states import JobKind, JobStatus
from cronkeeper.errors import FieldError

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
SLUG_RULE = "lowercase letters, digits and '-', 1-64 characters, not starting or ending with '-'"
TAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
Overlap = Literal["skip", "queue", "allow"]
CatchUp = Literal["none", "latest", "all"]
DEFAULT_RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Kinds whose runs Cronkeeper executes (everything but heartbeat).
EXECUTED_KINDS = frozenset(set(JobKind) - {JobKind.HEARTBEAT})


def is_valid_slug(slug: str) -> bool:
    """True for `[a-z0-9-]` slugs of 1-64 characters that do not start or end with '-'."""
    return re.match(SLUG_PATTERN, slug) is not None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff: float = 0.25
    max_backoff: float = 60.0
    retry_on_statuses: tuple[int, ...] = DEFAULT_RETRY_STATUSES


@dataclass(frozen=True)
class AlertPolicy:
    channels: tuple[str, ...] = ()
    failure_threshold: int = 1
    recovery_threshold: int = 1
    realert_every: float | None = None
    delay: float = 0.0  # a down alert waits this long; recovery within it cancels it
    depends_on: tuple[str, ...] = ()  # job slugs: while one is down, this job is not alerted
    flap_threshold: int | None = 6  # more flips than this within flap_window → flapping
    flap_window: float = 3600.0


@dataclass(frozen=True)
class JobSpec:
    """What a user declares about a job (the body of POST /jobs, a YAML entry, an SDK call)."""

    slug: str
    kind: JobKind
    name: str = ""
    schedule: str | None = None
    timezone: str = "UTC"
    target: dict[str, Any] | None = None
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 1
    overlap: Overlap = "skip"
    catch_up: CatchUp = "none"
    start_grace: float = 60.0
    max_runtime: float | None = None
    min_runtime: float | None = None
    queue: str = "default"
    alerts: AlertPolicy = field(default_factory=AlertPolicy)
    tags: tuple[str, ...] = ()
    description: str = ""
    status: JobStatus = JobStatus.ACTIVE

    def to_body(self) -> dict[str, Any]:
        """The JSON body form (DESIGN §3): enums as strings, tuples as lists."""
        body = asdict(self)
        body["kind"] = self.kind.value
        body["status"] = self.status.value
        body["tags"] = list(self.tags)
        body["retry"]["retry_on_statuses"] = list(self.retry.retry_on_statuses)
        body["alerts"]["channels"] = list(self.alerts.channels)
        body["alerts"]["depends_on"] = list(self.alerts.depends_on)
        return body

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> JobSpec:
        """Rebuild a spec from its (already validated) body form."""
        values = dict(body)
        retry = dict(values.pop("retry", None) or {})
        if "retry_on_statuses" in retry:
            retry["retry_on_statuses"] = tuple(retry["retry_on_statuses"])
        alerts = dict(values.pop("alerts", None) or {})
        for listed in ("channels", "depends_on"):
            if listed in alerts:
                alerts[listed] = tuple(alerts[listed])
        values["kind"] = JobKind(values["kind"])
        values["status"] = JobStatus(values.get("status", "active"))
        values["tags"] = tuple(values.get("tags", ()))
        return cls(**values, retry=RetryPolicy(**retry), alerts=AlertPolicy(**alerts))


def check_job_spec(spec: JobSpec) -> list[FieldError]:
    """The rules that span fields; an empty list means the spec is consistent."""
    errors: list[FieldError] = []
    if spec.kind is JobKind.HEARTBEAT:
        if spec.target:
            errors.append(FieldError("target", "a heartbeat job has no target; it is pinged"))
    elif spec.target is None:
        errors.append(FieldError("target", f"a {spec.kind.value} job needs a target"))
    if spec.kind is JobKind.TRIGGER and spec.schedule:
        errors.append(FieldError("schedule", "a trigger job is polled; it takes no schedule"))
    both_runtimes = spec.max_runtime is not None and spec.min_runtime is not None
    if both_runtimes and spec.min_runtime >= spec.max_runtime:  # type: ignore[operator]
        errors.append(FieldError("min_runtime", "must be shorter than max_runtime"))
    if spec.retry.max_backoff < spec.retry.backoff:
        errors.append(FieldError("retry.max_backoff", "must be at least retry.backoff"))
    if spec.alerts.realert_every is not None and spec.alerts.realert_every < 60:
        errors.append(FieldError("alerts.realert_every", "must be at least 60 seconds"))
    if spec.slug in spec.alerts.depends_on:
        errors.append(FieldError("alerts.depends_on", "a job cannot depend on itself"))
    return errors


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for every top-level field whose value differs."""
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge recursively, `null` deletes a key."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged

"""The job body of DESIGN §3 as pydantic models: the one validator for every entry point.

`parse_job_body` turns a JSON object into a `JobSpec` or raises `InvalidInput` naming
every field at fault. Field rules live on the models; rules that need the job's kind
(the target) or several fields (domain `check_job_spec`) run after.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from cronkeeper.domain.durations import parse_duration
from cronkeeper.domain.jobs import (
    DEFAULT_RETRY_STATUSES,
    SLUG_PATTERN,
    TAG_PATTERN,
    JobSpec,
    check_job_spec,
)
from cronkeeper.domain.schedules import parse_schedule, parse_timezone
from cronkeeper.domain.states import JobKind
from cronkeeper.domain.workflow import check_step_graph
from cronkeeper.errors import FieldError, InvalidInput
from cronkeeper.service.validation import field_errors, load_body

_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
    ],
    "description": "Seconds, or a string with units such as '250ms', '30s', '1h30m'",
}
Duration = Annotated[
    float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA, mode="validation")
]
_NULLABLE_DURATION = {"anyOf": [*_DURATION_SCHEMA["anyOf"], {"type": "null"}]}
OptionalDuration = Annotated[
    float | None,
    BeforeValidator(lambda v: None if v is None else parse_duration(v)),
    WithJsonSchema(_NULLABLE_DURATION, mode="validation"),
]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, min_length=1, max_length=64)]
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
HeaderValue = Annotated[str, Field(max_length=8192, pattern=r"^[^\r\n\x00]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as error:
        raise ValueError("has an invalid port") from error
    return url


class HttpTarget(Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_http_url)]
    headers: Annotated[dict[HeaderName, HeaderValue], Field(max_length=50)] = {}
    body: Annotated[str | None, Field(max_length=65536)] = None


class CommandTarget(Strict):
    command: (
        Annotated[list[Annotated[str, Field(max_length=4096)]], Field(min_length=1, max_length=256)]
        | Annotated[str, Field(min_length=1, max_length=16384)]
    )
    shell: bool = False
    cwd: Annotated[str | None, Field(max_length=4096)] = None
    env: Annotated[
        dict[
            Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")],
            Annotated[str, Field(max_length=32768)],
        ],
        Field(max_length=200),
    ] = {}

    @field_validator("command")
    @classmethod
    def _splittable(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str):
            try:
                shlex.split(value)
            except ValueError as error:
                raise ValueError(f"cannot be split into arguments: {error}") from error
        return value


_CALLABLE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*$"
Callable_ = Annotated[str, Field(pattern=_CALLABLE, max_length=256)]


class PythonTarget(Strict):
    callable: Callable_
    kwargs: dict[str, Any] = {}


class TriggerTarget(Strict):
    callable: Callable_
    poll_interval: Duration = 5.0
    starts: Slug

    @field_validator("poll_interval")
    @classmethod
    def _at_least_a_second(cls, value: float) -> float:
        if value < 1:
            raise ValueError("must be at least 1 second")
        return value


class WorkflowStep(Strict):
    name: Slug
    kind: Literal["http", "command", "python", "approval"]
    target: dict[str, Any] | None = None
    needs: Annotated[list[Slug], Field(max_length=50)] = []
    timeout: OptionalDuration = None


class WorkflowTarget(Strict):
    steps: Annotated[list[WorkflowStep], Field(min_length=1, max_length=50)]


TARGET_MODELS: dict[str, type[Strict]] = {
    "http": HttpTarget,
    "command": CommandTarget,
    "python": PythonTarget,
    "workflow": WorkflowTarget,
    "trigger": TriggerTarget,
}
_TARGET_SCHEMA = {
    "anyOf": [{"type": "object"}, {"type": "null"}],
    "description": "Depends on kind: http, command, python, workflow, trigger; none for heartbeat",
}


def target_json_schema(ref_template: str) -> dict[str, Any]:
    """The documented shape of `target`: one of the per-kind models, or null."""
    refs = [{"$ref": ref_template.format(model=m.__name__)} for m in TARGET_MODELS.values()]
    return {**_TARGET_SCHEMA, "anyOf": [*refs, {"type": "null"}]}


class RetryIn(Strict):
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    backoff: Duration = 0.25
    max_backoff: Duration = 60.0
    retry_on_statuses: Annotated[
        list[Annotated[int, Field(ge=100, le=599)]], Field(max_length=50)
    ] = list(DEFAULT_RETRY_STATUSES)


class AlertsIn(Strict):
    channels: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=20)
    ] = []
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 1
    recovery_threshold: Annotated[int, Field(ge=1, le=100)] = 1
    realert_every: OptionalDuration = None
    delay: Duration = 0.0
    depends_on: Annotated[list[Slug], Field(max_length=20)] = []
    flap_threshold: Annotated[int | None, Field(ge=2, le=1000)] = 6
    flap_window: Duration = 3600.0


def check_schedule_text(value: str | None) -> str | None:
    return parse_schedule(value).expression if value else None


def check_timezone_name(value: str) -> str:
    parse_timezone(value)
    return value


class JobIn(Strict):
    """A job as users declare it (POST body, YAML entry); unknown fields are rejected."""

    slug: Slug
    name: Annotated[str, Field(max_length=200)] = ""
    kind: JobKind
    schedule: Annotated[str | None, Field(max_length=200), AfterValidator(check_schedule_text)] = (
        None
    )
    timezone: Annotated[
        str, Field(min_length=1, max_length=64), AfterValidator(check_timezone_name)
    ] = "UTC"
    target: Annotated[dict[str, Any] | None, WithJsonSchema(_TARGET_SCHEMA)] = None
    timeout: Duration = 30.0
    retry: RetryIn = RetryIn()
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 1
    overlap: Literal["skip", "queue", "allow"] = "skip"
    catch_up: Literal["none", "latest", "all"] = "none"
    start_grace: Duration = 60.0
    max_runtime: OptionalDuration = None
    min_runtime: OptionalDuration = None
    queue: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = "default"
    alerts: AlertsIn = AlertsIn()
    tags: Annotated[list[Tag], Field(max_length=20)] = []
    description: Annotated[str, Field(max_length=2000)] = ""
    status: Literal["active", "paused"] = "active"

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value


class LastRunOut(BaseModel):
    id: str
    status: str
    source: str
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    failure_reason: str | None


class JobOut(BaseModel):
    """A job as the API returns it: the body (secrets masked) plus what the ledger adds."""

    id: str
    slug: str
    name: str
    kind: str
    schedule: str | None
    timezone: str
    target: dict[str, Any] | None
    timeout: float
    retry: dict[str, Any]
    concurrency: int
    overlap: str
    catch_up: str
    start_grace: float
    max_runtime: float | None
    min_runtime: float | None
    queue: str
    alerts: dict[str, Any]
    tags: list[str]
    description: str
    status: str
    monitor_state: str
    schedule_description: str
    next_fires: list[datetime]
    last_run: LastRunOut | None
    ping_url: str | None = None
    ping_uuid: str | None = None
    created_at: datetime
    updated_at: datetime


def parse_job_body(body: object) -> JobSpec:
    """Validate a job body into a `JobSpec`; raise `InvalidInput` listing every bad field."""
    body = load_body(body)
    if not isinstance(body, dict):
        raise InvalidInput(FieldError("body", "must be a JSON object"))
    if errors := _unstorable_text(body):
        raise InvalidInput(errors)
    try:
        job = JobIn.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None
    values = job.model_dump()
    values["target"] = _validated_target(job.kind, job.target)
    spec = JobSpec.from_body(values)
    if errors := check_job_spec(spec):
        raise InvalidInput(errors)
    return spec


def _unstorable_text(body: object) -> list[FieldError]:
    """Strings the ledger cannot store, anywhere in a JSON value: NUL characters
    (PostgreSQL refuses them in text and JSONB) and lone surrogates (not UTF-8).
    Iterative, so a deeply nested body cannot exhaust the stack here."""
    errors: list[FieldError] = []
    pending: list[tuple[str, object]] = [("", body)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str) and not _storable(value):
            errors.append(FieldError(path or "body", _UNSTORABLE))
        elif isinstance(value, list):
            pending += reversed([(f"{path}[{i}]", item) for i, item in enumerate(value)])
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                shown = key if _storable(str(key)) else ascii(key)
                here = f"{path}.{shown}" if path else shown
                if shown != key:
                    errors.append(FieldError(here, _UNSTORABLE))
                else:
                    pending.append((here, item))
    return errors


_UNSTORABLE = "must not contain NUL characters or lone surrogates"


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _validated_target(kind: JobKind, target: dict[str, Any] | None) -> dict[str, Any] | None:
    model = TARGET_MODELS.get(kind.value)
    if model is None or target is None:
        return target
    try:
        validated = model.model_validate(target).model_dump(exclude_none=False)
    except ValidationError as error:
        raise InvalidInput(field_errors(error, prefix="target")) from None
    if kind is JobKind.WORKFLOW:
        _check_steps(validated["steps"])
    return validated


def _check_steps(steps: list[dict[str, Any]]) -> None:
    errors = check_step_graph(steps)
    for index, step in enumerate(steps):
        kind, target = step["kind"], step.get("target")
        if kind == "approval":
            if target:
                errors.append(
                    FieldError(f"target.steps[{index}].target", "an approval step has no target")
                )
            continue
        try:
            step["target"] = TARGET_MODELS[kind].model_validate(target or {}).model_dump()
        except ValidationError as error:
            errors += field_errors(error, prefix=f"target.steps[{index}].target")
    if errors:
        raise InvalidInput(errors)

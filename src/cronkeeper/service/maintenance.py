"""Maintenance windows: periods in which jobs are not alerted (`mute`) or, for jobs we
run, not fired at all (`skip`: their slots become `skipped` runs; a heartbeat's missed
slots are recorded as skipped). One-off (`starts_at` … `ends_at`) or recurring (a
`schedule` in `timezone` plus a `duration`). `jobs` / `tags` narrow a window; naming
neither means every job of the project.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, ValidationError

from cronkeeper.domain.jobs import TAG_PATTERN
from cronkeeper.domain.models import Actor
from cronkeeper.domain.monitor import MaintenanceWindow
from cronkeeper.errors import Conflict, FieldError, InvalidInput, NotFound
from cronkeeper.service.audit import project_mutation
from cronkeeper.service.context import Context
from cronkeeper.service.projects import require_project
from cronkeeper.service.schemas import (
    Duration,
    Slug,
    Strict,
    check_schedule_text,
    check_timezone_name,
)
from cronkeeper.service.validation import field_errors, load_body
from cronkeeper.store import monitor as monitor_store

#: The longest a window may last (one-off or each occurrence).
MAX_WINDOW_SECONDS = 31 * 24 * 3600


class MaintenanceIn(Strict):
    """A maintenance window as users declare it; unknown fields are rejected."""

    name: Slug
    mode: Literal["mute", "skip"] = "mute"
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    schedule: Annotated[str | None, Field(max_length=200), AfterValidator(check_schedule_text)] = (
        None
    )
    duration: Duration | None = None
    timezone: Annotated[str, Field(max_length=64), AfterValidator(check_timezone_name)] = "UTC"
    jobs: Annotated[list[Slug], Field(max_length=100, default_factory=list)]
    tags: Annotated[
        list[Annotated[str, Field(pattern=TAG_PATTERN, max_length=64)]],
        Field(max_length=50, default_factory=list),
    ]


class MaintenanceOut(BaseModel):
    name: str
    mode: str
    starts_at: datetime | None
    ends_at: datetime | None
    schedule: str | None
    duration: float | None
    timezone: str
    jobs: list[str]
    tags: list[str]
    active_until: datetime | None  # the end of the occurrence in progress, if one is


def _out(window: MaintenanceWindow, now: datetime) -> MaintenanceOut:
    occurrence = window.covering(now)
    return MaintenanceOut(
        name=window.name,
        mode=window.mode,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        schedule=window.schedule,
        duration=window.duration_s,
        timezone=window.timezone,
        jobs=list(window.job_slugs),
        tags=list(window.tags),
        active_until=occurrence[1] if occurrence else None,
    )


def parse_window(body: object) -> MaintenanceIn:
    """Validate a window body; InvalidInput naming every bad field."""
    body = load_body(body)
    if not isinstance(body, dict):
        raise InvalidInput(FieldError("body", "must be a JSON object"))
    try:
        window = MaintenanceIn.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(field_errors(error)) from None
    errors: list[FieldError] = []
    one_off = window.starts_at is not None or window.ends_at is not None
    if window.schedule is None and not one_off:
        errors.append(FieldError("starts_at", "give starts_at and ends_at, or a schedule"))
    if window.schedule is not None and one_off:
        errors.append(FieldError("schedule", "a window is one-off or recurring, not both"))
    if one_off and (window.starts_at is None or window.ends_at is None):
        missing = "ends_at" if window.ends_at is None else "starts_at"
        errors.append(FieldError(missing, "a one-off window needs both starts_at and ends_at"))
    if window.starts_at and window.ends_at:
        length = (window.ends_at - window.starts_at).total_seconds()
        if length <= 0:
            errors.append(FieldError("ends_at", "must be after starts_at"))
        elif length > MAX_WINDOW_SECONDS:
            errors.append(FieldError("ends_at", "a window lasts at most 31 days"))
    if window.schedule is not None:
        if window.duration is None:
            errors.append(FieldError("duration", "a recurring window needs a duration"))
        elif not 0 < window.duration <= MAX_WINDOW_SECONDS:
            errors.append(FieldError("duration", "must be more than 0 and at most 31 days"))
    elif window.duration is not None:
        errors.append(FieldError("duration", "only a recurring window (schedule) has one"))
    if errors:
        raise InvalidInput(errors)
    return window


async def list_windows(ctx: Context, actor: Actor, project_slug: str) -> list[MaintenanceOut]:
    """The project's maintenance windows, by name, with whether each is on now."""
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        windows = (await monitor_store.windows_of(conn, [project.id])).get(project.id, [])
    now = ctx.clock.now()
    return [_out(window, now) for window in windows]


async def get_window(ctx: Context, actor: Actor, project_slug: str, name: str) -> MaintenanceOut:
    async with ctx.db.read() as conn:
        project = await require_project(conn, actor, project_slug)
        window = await monitor_store.get_window(conn, project.id, name)
    if window is None:
        raise NotFound("maintenance window", name)
    return _out(window, ctx.clock.now())


async def create_window(
    ctx: Context, actor: Actor, project_slug: str, body: object
) -> MaintenanceOut:
    """Store a new window (write keys); Conflict if the name is taken in the project."""
    async with project_mutation(
        ctx, actor, project_slug, "maintenance.create", "maintenance:?"
    ) as (conn, mutation, project):
        window = parse_window(body)
        mutation.target = f"maintenance:{window.name}"
        if await monitor_store.get_window(conn, project.id, window.name) is not None:
            raise Conflict(f"a maintenance window named {window.name!r} already exists")
        now = ctx.clock.now()
        stored = await monitor_store.insert_window(
            conn,
            {
                "id": uuid.uuid4(),
                "project_id": project.id,
                "name": window.name,
                "mode": window.mode,
                "starts_at": window.starts_at,
                "ends_at": window.ends_at,
                "schedule": window.schedule,
                "duration_s": None if window.duration is None else int(window.duration),
                "timezone": window.timezone,
                "job_slugs": sorted(set(window.jobs)),
                "tags": sorted(set(window.tags)),
                "created_at": now,
            },
        )
        result = _out(stored, now)
        mutation.diff = {
            key: [None, value]
            for key, value in result.model_dump(mode="json", exclude={"active_until"}).items()
            if value not in (None, [])
        }
    return result


async def delete_window(ctx: Context, actor: Actor, project_slug: str, name: str) -> None:
    """Remove a window (write keys)."""
    async with project_mutation(
        ctx, actor, project_slug, "maintenance.delete", f"maintenance:{name[:100]}"
    ) as (conn, mutation, project):
        window = await monitor_store.get_window(conn, project.id, name)
        if window is None:
            raise NotFound("maintenance window", name)
        await monitor_store.delete_window(conn, window.id)
        mutation.diff = {"name": [window.name, None], "mode": [window.mode, None]}

"""Healthchecks' Management API v3 over heartbeat jobs: the pure mapping both ways.

A Healthchecks *check* is a Cronkeeper heartbeat job: `uuid` is the job's ping UUID,
`timeout` (a period in seconds) is the schedule `every {n}s`, `schedule`/`tz` a cron or
OnCalendar schedule and its zone, `grace` is `start_grace`, `desc` the description, the
space-separated `tags` string the tag list, and `channels` the job's alert channels.
Monitor states read as Healthchecks' statuses (`late` is `grace`); a job with a running
heartbeat run is `started`.

Input is validated as Healthchecks validates it (JSON types, 60 s – 1 year bounds) and
refused with its words: `InvalidInput` whose `detail` reads "json validation error: …".
Fields we cannot honour (e-mail pings, keyword filters, manual resume, POST-only pings)
are accepted only at their neutral value.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cronkeeper.domain.jobs import TAG_PATTERN, JobSpec, is_valid_slug
from cronkeeper.domain.monitor import Anchor, expected_slot
from cronkeeper.domain.schedules import ScheduleError, parse_schedule, parse_timezone
from cronkeeper.domain.states import JobStatus
from cronkeeper.errors import FieldError, InvalidInput

UNIQUE_FIELDS = ("name", "slug", "tags", "timeout", "grace")
MIN_SECONDS, MAX_SECONDS = 60, 31_536_000
DEFAULT_TIMEOUT, DEFAULT_GRACE = 86_400, 3_600
MAX_TAGS = 20
TAG_RULE = f"at most {MAX_TAGS} tags of letters, digits and _ . : -, separated by spaces"
#: Our field names → Healthchecks', for errors our own job validation raises.
HC_FIELDS = {"description": "desc", "start_grace": "grace", "timezone": "tz", "alerts": "channels"}
#: Fields we accept only at their neutral value (the feature does not exist here).
_NEUTRAL: dict[str, Any] = {
    "manual_resume": False,
    "methods": "",
    "subject": "",
    "subject_fail": "",
    "start_kw": "",
    "success_kw": "",
    "failure_kw": "",
    "filter_subject": False,
    "filter_body": False,
}
#: Monitor state → Healthchecks status.
_STATUSES = {"new": "new", "up": "up", "late": "grace", "down": "down", "paused": "paused"}
#: Event type → Healthchecks ping type.
PING_TYPES = {
    "attempt_started": "start",
    "attempt_succeeded": "success",
    "attempt_failed": "fail",
    "log": "log",
}


def invalid(field: str, problem: str) -> InvalidInput:
    """A 400 in Healthchecks' words: `json validation error: <field> <problem>`."""
    return InvalidInput(FieldError(field, problem), f"json validation error: {field} {problem}")


def as_hc_error(error: InvalidInput) -> InvalidInput:
    """Our job validation's error, re-worded with Healthchecks' field names."""
    first = error.errors[0] if error.errors else FieldError("body", error.detail)
    root = re.split(r"[.\[]", first.field, maxsplit=1)[0]
    return invalid(HC_FIELDS.get(root, root), f"is invalid ({first.message})")


@dataclass(frozen=True)
class CheckInput:
    """The fields a create/update body gave (None: not given), validated."""

    name: str | None = None
    slug: str | None = None
    tags: tuple[str, ...] | None = None
    desc: str | None = None
    timeout: int | None = None
    grace: int | None = None
    schedule: str | None = None
    tz: str | None = None
    channels: str | None = None
    unique: tuple[str, ...] = ()


def parse_check_body(body: object) -> CheckInput:
    """Validate a create/update body; unknown fields (such as `api_key`) are ignored."""
    if not isinstance(body, dict):
        raise InvalidInput(
            FieldError("body", "not an object"), "json validation error: not an object"
        )
    for name, neutral in _NEUTRAL.items():
        if name in body:
            _check_type(name, body[name], type(neutral))
            if body[name] != neutral:
                raise invalid(name, f"is not supported by Cronkeeper (only {neutral!r})")
    return CheckInput(
        name=_text(body, "name", 100),
        slug=_slug(body),
        tags=_tags(body),
        desc=_text(body, "desc", 2000),
        timeout=_seconds(body, "timeout"),
        grace=_seconds(body, "grace"),
        schedule=_schedule(body),
        tz=_tz(body),
        channels=_text(body, "channels", 10_000),
        unique=_unique(body),
    )


def _check_type(name: str, value: object, kind: type) -> None:
    if kind is bool and not isinstance(value, bool):
        raise invalid(name, "is not a boolean")
    if kind is str and not isinstance(value, str):
        raise invalid(name, "is not a string")


def _text(body: dict[str, Any], name: str, max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    _check_type(name, value, str)
    if len(value) > max_length:
        raise invalid(name, "is too long")
    if "\x00" in value:
        raise invalid(name, "contains a NUL character")
    return str(value)


def _tags(body: dict[str, Any]) -> tuple[str, ...] | None:
    text = _text(body, "tags", 500)
    if text is None:
        return None
    tags = tuple(dict.fromkeys(text.split()))
    if len(tags) > MAX_TAGS or not all(re.match(TAG_PATTERN, tag) for tag in tags):
        raise invalid("tags", f"has unexpected value ({TAG_RULE})")
    return tags


def _seconds(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(name, "is not a number")
    if value < MIN_SECONDS:
        raise invalid(name, "is too small")
    if value > MAX_SECONDS:
        raise invalid(name, "is too large")
    return int(value)


def _slug(body: dict[str, Any]) -> str | None:
    slug = _text(body, "slug", 64)
    if slug is not None and not is_valid_slug(slug):
        raise invalid("slug", "has unexpected value (use a-z, 0-9 and '-')")
    return slug


def _schedule(body: dict[str, Any]) -> str | None:
    text = _text(body, "schedule", 100)
    if text is None:
        return None
    try:
        schedule = parse_schedule(text)
    except ScheduleError:
        raise invalid("schedule", "is not a valid cron or OnCalendar expression") from None
    if schedule.kind not in ("cron", "oncalendar"):
        raise invalid("schedule", "is not a valid cron or OnCalendar expression")
    return schedule.expression


def _tz(body: dict[str, Any]) -> str | None:
    tz = _text(body, "tz", 64)
    if tz is not None:
        try:
            parse_timezone(tz)
        except ScheduleError:
            raise invalid("tz", "is not a valid timezone") from None
    return tz


def _unique(body: dict[str, Any]) -> tuple[str, ...]:
    value = body.get("unique")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("unique", "is not an array")
    if any(item not in UNIQUE_FIELDS for item in value):
        raise invalid("unique", "has unexpected value")
    return tuple(value)


def slugify(name: str) -> str | None:
    """A slug made from a check's name, as Healthchecks derives it (None if nothing is
    left): ASCII, lowercase, runs of other characters become '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or None


def job_fields(given: CheckInput, channels: list[str] | None) -> dict[str, Any]:
    """The job-body fields a create/update sets (`channels` already resolved to ids)."""
    fields: dict[str, Any] = {}
    if given.name is not None:
        fields["name"] = given.name
    if given.slug is not None:
        fields["slug"] = given.slug
    if given.tags is not None:
        fields["tags"] = list(given.tags)
    if given.desc is not None:
        fields["description"] = given.desc
    if given.schedule is not None:
        fields["schedule"] = given.schedule
    elif given.timeout is not None:
        fields["schedule"] = f"every {given.timeout}s"
    if given.tz is not None:
        fields["timezone"] = given.tz
    if given.grace is not None:
        fields["start_grace"] = given.grace
    if channels is not None:
        fields["alerts"] = {"channels": channels}
    return fields


def new_job_body(slug: str, given: CheckInput, channels: list[str] | None) -> dict[str, Any]:
    """The whole body of a heartbeat job created through the API (Healthchecks' defaults:
    a one-day period, one hour of grace)."""
    body: dict[str, Any] = {
        "slug": slug,
        "kind": "heartbeat",
        "schedule": f"every {DEFAULT_TIMEOUT}s",
        "start_grace": DEFAULT_GRACE,
    }
    return {**body, **job_fields(given, channels)}


def parse_channels(text: str) -> list[str] | None:
    """The channel references of a `channels` value: None for "*" (every channel), else
    the comma-separated ids or names ("" is none)."""
    if text.strip() == "*":
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def period_seconds(expression: str | None) -> int | None:
    """The period of an `every …` schedule in seconds; None for any other kind."""
    return parse_schedule(expression).period()


def unique_key(ping_uuid: uuid.UUID) -> str:
    """The stable id read-only keys see instead of the UUID (sha1 of its hex, as
    Healthchecks computes it)."""
    return hashlib.sha1(ping_uuid.hex.encode(), usedforsecurity=False).hexdigest()


def check_status(paused: bool, monitor_state: str, started: bool) -> str:
    """Healthchecks' status of a job: paused, started (a run is open), or its state."""
    if paused:
        return "paused"
    if started:
        return "started"
    return _STATUSES.get(monitor_state, "new")


def isostring(moment: datetime | None) -> str | None:
    """Healthchecks' timestamps: UTC, whole seconds, `+00:00`."""
    return None if moment is None else moment.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class CheckFacts:
    """Everything a check's JSON says, gathered by the service."""

    ping_uuid: uuid.UUID
    spec: JobSpec
    monitor_state: str
    started: bool  # a heartbeat run is open
    n_pings: int
    last_ping: datetime | None
    last_duration_ms: int | None
    channels: list[str]  # channel ids

    @property
    def paused(self) -> bool:
        return self.spec.status is JobStatus.PAUSED

    @property
    def timeout(self) -> int | None:
        return period_seconds(self.spec.schedule)


def next_ping(facts: CheckFacts) -> datetime | None:
    """When the monitor expects the next ping (a period after the last one, or the
    schedule's next slot); None before the first ping and while paused."""
    if facts.last_ping is None or facts.paused:
        return None
    return expected_slot(facts.spec, Anchor(facts.last_ping))


def check_json(
    facts: CheckFacts, base_url: str, badge_url: str, *, readonly: bool
) -> dict[str, Any]:
    """A check as Healthchecks' v3 API shows it (`unique_key` instead of the UUID and
    the URLs for read-only keys)."""
    spec = facts.spec
    result: dict[str, Any] = {
        "name": spec.name,
        "slug": spec.slug,
        "tags": " ".join(spec.tags),
        "desc": spec.description,
        "grace": int(spec.start_grace),
        "n_pings": facts.n_pings,
        "status": check_status(facts.paused, facts.monitor_state, facts.started),
        "started": facts.started,
        "last_ping": isostring(facts.last_ping),
        "next_ping": isostring(next_ping(facts)),
        **_NEUTRAL,
        "badge_url": badge_url,
    }
    if facts.last_duration_ms is not None:
        result["last_duration"] = facts.last_duration_ms // 1000
    if readonly:
        result["unique_key"] = unique_key(facts.ping_uuid)
    else:
        code = str(facts.ping_uuid)
        update_url = f"{base_url}/api/v3/checks/{code}"
        result.update(
            uuid=code,
            ping_url=f"{base_url}/ping/{code}",
            update_url=update_url,
            pause_url=f"{update_url}/pause",
            resume_url=f"{update_url}/resume",
            channels=",".join(facts.channels),
        )
    if spec.schedule and facts.timeout is None:
        result.update(schedule=spec.schedule, tz=spec.timezone)
    else:
        result["timeout"] = facts.timeout or 0  # 0: no schedule, nothing is expected
    return result


def matches_unique(facts: CheckFacts, given: CheckInput) -> bool:
    """True when an existing check equals the body on every field named in `unique`."""
    wanted: dict[str, object] = {
        "name": given.name,
        "slug": given.slug,
        "tags": given.tags,
        "timeout": given.timeout,
        "grace": given.grace,
    }
    spec = facts.spec
    have: dict[str, object] = {
        "name": spec.name,
        "slug": spec.slug,
        "tags": spec.tags,
        "timeout": facts.timeout,
        "grace": int(spec.start_grace),
    }
    return all(wanted[name] is not None and wanted[name] == have[name] for name in given.unique)


@dataclass(frozen=True)
class PingEvent:
    """An event of a heartbeat run that a ping left (its `data` names the client)."""

    type: str
    at: datetime
    data: dict[str, Any]
    run_duration_ms: int | None


def ping_json(event: PingEvent, n: int, scheme: str) -> dict[str, Any]:
    """A ping as Healthchecks' `GET …/pings/` lists it (`duration` on a finish that
    closed a start, in seconds)."""
    kind = PING_TYPES[event.type]
    result: dict[str, Any] = {
        "type": kind,
        "date": event.at.astimezone(UTC).isoformat(),
        "n": n,
        "scheme": scheme,
        "remote_addr": event.data.get("remote_addr", ""),
        "method": event.data.get("method", ""),
        "ua": event.data.get("user_agent", ""),
        "rid": event.data.get("rid"),
    }
    if kind in ("success", "fail") and event.run_duration_ms is not None:
        result["duration"] = event.run_duration_ms / 1000
    return result


def flip_json(created_at: datetime, new_state: str) -> dict[str, Any]:
    """A flip as Healthchecks lists it: when, and whether the check went up."""
    return {"timestamp": isostring(created_at), "up": 1 if new_state == "up" else 0}

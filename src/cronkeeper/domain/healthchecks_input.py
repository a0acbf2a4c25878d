"""Healthchecks' Management API v3: what a request may say, validated as Healthchecks
validates it (its `Spec` model in hc/api/views.py), and what it changes on a job.

A create/update body is checked field by field in Healthchecks' order and refused in its
words: `InvalidInput` whose `detail` reads "json validation error: <field> <problem>"
(`null` is a type error, `timeout`/`grace` are whole seconds from 60 to one year). Then
come Cronkeeper's own limits: fields of features it lacks accepted only at their neutral
value, its slug and tag rules. Unknown fields (such as `api_key`) are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronkeeper.domain.healthchecks import NEUTRAL, CheckFacts
from cronkeeper.domain.jobs import SLUG_RULE, TAG_PATTERN, is_valid_slug
from cronkeeper.domain.schedules import ScheduleError, parse_schedule, parse_timezone
from cronkeeper.errors import FieldError, InvalidInput

UNIQUE_FIELDS = ("name", "slug", "tags", "timeout", "grace")
MIN_SECONDS, MAX_SECONDS = 60, 31_536_000
DEFAULT_TIMEOUT, DEFAULT_GRACE = 86_400, 3_600
#: Flip query timestamps past this are refused (year 2286, Healthchecks' sanity bound).
MAX_TIMESTAMP = 10_000_000_000
MAX_TAGS = 20
TAG_RULE = f"at most {MAX_TAGS} tags of letters, digits and _ . : -, separated by spaces"
#: Our field names → Healthchecks', for errors our own job validation raises.
HC_FIELDS = {
    "description": "desc",
    "start_grace": "grace",
    "max_runtime": "grace",
    "timezone": "tz",
    "alerts": "channels",
}
_SLUG_PATTERN = re.compile(r"^[a-z0-9-_]*$")
_KEYWORD_FIELDS = ("failure_kw", "start_kw", "subject", "subject_fail", "success_kw")


def invalid(field: str, problem: str) -> InvalidInput:
    """A 400 in Healthchecks' words: `json validation error: <field> <problem>`."""
    return InvalidInput(FieldError(field, problem), f"json validation error: {field} {problem}")


def channel_error(message: str) -> InvalidInput:
    """A bad `channels` value: Healthchecks words these without the validation prefix."""
    return InvalidInput(FieldError("channels", message), message)


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


Validator = Callable[[str, object], object]


def _string(max_length: int) -> Validator:
    def check(name: str, value: object) -> str:
        if not isinstance(value, str):
            raise invalid(name, "is not a string")
        if len(value) > max_length:
            raise invalid(name, "is too long")
        if "\x00" in value:  # PostgreSQL refuses NUL in text
            raise invalid(name, "contains a NUL character")
        return value

    return check


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise invalid(name, "is not a boolean")
    return value


def _seconds(name: str, value: object) -> int:
    """Whole seconds: Healthchecks takes integers only (a float or a string is refused)."""
    if not isinstance(value, int):
        raise invalid(name, "is not a number")
    if value < MIN_SECONDS:
        raise invalid(name, "is too small")
    if value > MAX_SECONDS:
        raise invalid(name, "is too large")
    return int(value)


def _methods(name: str, value: object) -> str:
    if not isinstance(value, str) or value not in ("", "POST"):
        raise invalid(name, "has unexpected value")
    return value


def _schedule(name: str, value: object) -> str:
    """A cron expression (one line of five fields) or else an OnCalendar one, told apart
    as Healthchecks' `guess_kind` does."""
    text = str(_string(100)(name, value))
    wanted = "cron" if "\n" not in text.strip() and len(text.split()) == 5 else "oncalendar"
    try:
        schedule = parse_schedule(text)
    except ScheduleError:
        raise invalid(name, "is not a valid cron or OnCalendar expression") from None
    if schedule.kind != wanted:
        raise invalid(name, "is not a valid cron or OnCalendar expression")
    return schedule.expression


def _slug(name: str, value: object) -> str:
    slug = str(_string(100)(name, value))
    if not _SLUG_PATTERN.match(slug):
        raise invalid(name, "does not match pattern")
    return slug


def _tz(name: str, value: object) -> str:
    tz = str(_string(64)(name, value))
    try:
        parse_timezone(tz)
    except ScheduleError:
        raise invalid(name, "is not a valid timezone") from None
    return tz


def _unique(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise invalid(name, "is not an array")
    if any(not isinstance(item, str) or item not in UNIQUE_FIELDS for item in value):
        raise invalid(f"an item in '{name}'", "has unexpected value")
    return tuple(value)


#: Healthchecks' `Spec` fields in its declaration order: the first error found is the one
#: reported, as pydantic reports it there.
_VALIDATORS: dict[str, Validator] = {
    "channels": _string(10_000),
    "desc": _string(2000),
    "failure_kw": _string(200),
    "filter_subject": _boolean,
    "filter_body": _boolean,
    "filter_http_body": _boolean,
    "filter_default_fail": _boolean,
    "grace": _seconds,
    "manual_resume": _boolean,
    "methods": _methods,
    "name": _string(100),
    "schedule": _schedule,
    "slug": _slug,
    "start_kw": _string(200),
    "subject": _string(200),
    "subject_fail": _string(200),
    "success_kw": _string(200),
    "tags": _string(500),
    "timeout": _seconds,
    "tz": _tz,
    "unique": _unique,
}


def parse_check_body(body: object) -> CheckInput:
    """Validate a create/update body (`null` counts as a value of the wrong type)."""
    if not isinstance(body, dict):
        raise InvalidInput(
            FieldError("body", "not an object"), "json validation error: value is not an object"
        )
    given: dict[str, Any] = {
        name: check(name, body[name]) for name, check in _VALIDATORS.items() if name in body
    }
    for name, neutral in NEUTRAL.items():
        if name in given and given[name] != neutral:
            raise invalid(name, f"is not supported by Cronkeeper (only {neutral!r})")
    slug = given.get("slug")
    if isinstance(slug, str) and not is_valid_slug(slug):
        raise invalid("slug", f"is not a Cronkeeper slug ({SLUG_RULE})")
    return CheckInput(
        name=given.get("name"),
        slug=slug,
        tags=_tags(given.get("tags")),
        desc=given.get("desc"),
        timeout=given.get("timeout"),
        grace=given.get("grace"),
        schedule=given.get("schedule"),
        tz=given.get("tz"),
        channels=given.get("channels"),
        unique=given.get("unique", ()),
    )


def _tags(text: object) -> tuple[str, ...] | None:
    if not isinstance(text, str):
        return None
    tags = tuple(dict.fromkeys(text.split()))
    if len(tags) > MAX_TAGS or not all(re.match(TAG_PATTERN, tag) for tag in tags):
        raise invalid("tags", f"has unexpected value ({TAG_RULE})")
    return tags


def parse_channels(text: str) -> list[str] | None:
    """The channel references of a `channels` value, as Healthchecks reads it: None for
    "*" (every channel), [] for "", else the comma-separated ids or names exactly as
    written (whitespace counts); an empty one is refused."""
    if text == "*":
        return None
    if text == "":
        return []
    refs = text.split(",")
    if "" in refs:
        raise channel_error("empty channel identifier")
    return refs


def slugify(name: str) -> str | None:
    """A slug made from a check's name (None if nothing is left): ASCII, lowercase, runs
    of other characters become '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or None


def job_fields(given: CheckInput, channels: list[str] | None) -> dict[str, Any]:
    """The job-body fields a create/update sets (`channels` already resolved to ids).
    `grace` is also the longest a started run may take, as in Healthchecks."""
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
        fields["start_grace"] = fields["max_runtime"] = given.grace
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
        "max_runtime": DEFAULT_GRACE,
    }
    return {**body, **job_fields(given, channels)}


def matches_unique(facts: CheckFacts, given: CheckInput) -> bool:
    """True when an existing check equals the body on every field named in `unique`
    (a field named there but absent from the body matches nothing)."""
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
class FlipQuery:
    """`GET …/flips/` filters: the last `seconds`, and UNIX times `start` ≤ flip < `end`."""

    seconds: int | None = None
    start: int | None = None
    end: int | None = None

    def window(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(since, until) for these filters; `seconds=0` filters nothing (Healthchecks)."""
        since = until = None
        if self.start is not None:
            since = datetime.fromtimestamp(self.start, UTC)
        if self.seconds:
            recent = now - timedelta(seconds=self.seconds)
            since = recent if since is None else max(since, recent)
        if self.end is not None:
            until = datetime.fromtimestamp(self.end, UTC)
        return since, until


def parse_flip_query(params: Mapping[str, str]) -> FlipQuery:
    """`seconds` (0 – one year), `start` and `end` (0 – 10¹⁰) as integers; InvalidInput
    otherwise."""
    bounds = {"seconds": MAX_SECONDS, "start": MAX_TIMESTAMP, "end": MAX_TIMESTAMP}
    values: dict[str, int] = {}
    for name, bound in bounds.items():
        text = params.get(name)
        if text is None:
            continue
        if not (text.isascii() and text.isdigit()) or len(text) > 11 or int(text) > bound:
            raise InvalidInput(FieldError(name, "invalid"), f"invalid query: {name}")
        values[name] = int(text)
    return FlipQuery(**values)

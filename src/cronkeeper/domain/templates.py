"""`{{ name }}` placeholders in HTTP bodies: plain substitution, never code.

A placeholder is a name or a dotted path (`{{ job.slug }}`, `{{payload.items.0}}`);
strings are inserted as they are, None as "", anything else as JSON. Placeholders that
name nothing known are left untouched, so a body meant for another template engine
survives. There are no expressions, filters or loops (this is not Jinja).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from cronkeeper.domain.outcomes import AttemptRequest

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
_MISSING = object()


def render_template(text: str, variables: Mapping[str, object]) -> str:
    """Replace every known `{{ name }}` in `text`; unknown placeholders stay as written."""

    def substitute(match: re.Match[str]) -> str:
        value = lookup(variables, match.group(1))
        return match.group(0) if value is _MISSING else format_value(value)

    return _PLACEHOLDER.sub(substitute, text)


def lookup(variables: Mapping[str, object], path: str) -> object:
    """The value at a dotted `path` (a flat "a.b" key wins), or the `_MISSING` marker."""
    if path in variables:
        return variables[path]
    current: object = variables
    for part in path.split("."):
        current = _child(current, part)
        if current is _MISSING:
            break
    return current


def _child(container: object, key: str) -> object:
    if isinstance(container, Mapping):
        return container.get(key, _MISSING)
    if isinstance(container, str | bytes) or not isinstance(container, Sequence):
        return _MISSING
    if key.isdigit() and int(key) < len(container):
        return container[int(key)]
    return _MISSING


def format_value(value: object) -> str:
    """str as is, None as "", anything else as JSON (str() for what JSON cannot encode)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def iso_utc(moment: datetime | None) -> str:
    """ISO 8601 in UTC with a "Z" suffix ("2024-05-01T02:00:00Z"), or "" for None."""
    if moment is None:
        return ""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def attempt_variables(request: AttemptRequest) -> dict[str, object]:
    """The variables an HTTP body may use for this attempt."""
    return {
        "run": {"id": str(request.run_id)},
        "job": {"slug": request.job_slug, "name": request.job_name},
        "project": request.project,
        "scheduled_for": iso_utc(request.scheduled_for),
        "attempt": request.attempt,
        "payload": request.payload,
    }

"""The "Edit destination" form: a job's target (by kind), schedule, timezone and timeout
as form fields, turned into the JSON merge patch the job service validates, and the
service's field errors mapped back onto the form's fields."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cronkeeper.errors import FieldError
from cronkeeper.service.schemas import TARGET_MODELS, JobOut
from cronkeeper.service.validation import field_errors

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
COMMON_FIELDS = ("schedule", "timezone", "timeout")
TARGET_FIELDS = {
    "http": ("target.method", "target.url", "target.headers", "target.body"),
    "command": ("target.command", "target.shell", "target.cwd"),
    "python": ("target.callable", "target.kwargs"),
    "workflow": ("target",),
    "trigger": ("target",),
    "heartbeat": (),
}


@dataclass
class DestinationForm:
    """What the form shows: values by field name, and errors by field name ("" = form)."""

    kind: str
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def fields(self) -> tuple[str, ...]:
        return TARGET_FIELDS.get(self.kind, ("target",)) + COMMON_FIELDS


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def form_from_job(job: JobOut) -> DestinationForm:
    """The form filled in with the job as it is (secrets stay masked)."""
    target: dict[str, Any] = job.target or {}
    values = {"schedule": job.schedule or "", "timezone": job.timezone}
    values["timeout"] = _seconds(job.timeout)
    if job.kind == "http":
        values["target.method"] = str(target.get("method", "GET"))
        values["target.url"] = str(target.get("url", ""))
        headers = target.get("headers") or {}
        values["target.headers"] = "\n".join(f"{name}: {value}" for name, value in headers.items())
        values["target.body"] = target.get("body") or ""
    elif job.kind == "command":
        command = target.get("command", "")
        values["target.command"] = shlex.join(command) if isinstance(command, list) else command
        values["target.shell"] = "on" if target.get("shell") else ""
        values["target.cwd"] = target.get("cwd") or ""
    elif job.kind == "python":
        values["target.callable"] = str(target.get("callable", ""))
        values["target.kwargs"] = json.dumps(target.get("kwargs") or {})
    elif job.kind != "heartbeat":
        values["target"] = json.dumps(target, indent=2)
    return DestinationForm(job.kind, values)


def form_from_post(kind: str, posted: dict[str, str]) -> DestinationForm:
    form = DestinationForm(kind, {})
    for name in form.fields:
        form.values[name] = posted.get(name, "")
    return form


def patch_from_form(form: DestinationForm, job: JobOut) -> dict[str, Any] | None:
    """The merge patch for the job service, or None with `form.errors` filled in."""
    values = form.values
    patch: dict[str, Any] = {
        "schedule": values["schedule"].strip() or None,
        "timezone": values["timezone"].strip(),
        "timeout": values["timeout"].strip(),
    }
    target = _target(form, job)
    if form.errors:
        return None
    if target is not None:
        old = job.target or {}
        # A merge patch merges objects: name what the form dropped, so it is removed.
        patch["target"] = {**dict.fromkeys(old), **target}
        if isinstance(old.get("headers"), dict) and isinstance(target.get("headers"), dict):
            patch["target"]["headers"] = {**dict.fromkeys(old["headers"]), **target["headers"]}
    return patch


def _target(form: DestinationForm, job: JobOut) -> dict[str, Any] | None:
    values, kind = form.values, form.kind
    if kind == "http":
        return {
            "method": values["target.method"].strip().upper() or "GET",
            "url": values["target.url"].strip(),
            "headers": _headers(form),
            "body": values["target.body"] or None,
        }
    if kind == "command":
        text = values["target.command"].strip()
        shell = bool(values.get("target.shell"))
        command: str | list[str] = text
        if not shell:
            try:
                command = shlex.split(text)
            except ValueError as error:
                form.errors["target.command"] = f"cannot be split into arguments: {error}"
        return {"command": command, "shell": shell, "cwd": values["target.cwd"].strip() or None}
    if kind == "python":
        kwargs = _json(form, "target.kwargs", values["target.kwargs"] or "{}")
        return {"callable": values["target.callable"].strip(), "kwargs": kwargs}
    if kind == "heartbeat":
        return None
    parsed = _json(form, "target", values["target"])
    if parsed is not None and not isinstance(parsed, dict):
        form.errors["target"] = "must be a JSON object"
    return parsed if isinstance(parsed, dict) else None


def _headers(form: DestinationForm) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(form.values["target.headers"].splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            form.errors["target.headers"] = f"line {number}: write each header as 'Name: value'"
            continue
        headers[name.strip()] = value.strip()
    return headers


def _json(form: DestinationForm, name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        form.errors[name] = f"is not valid JSON ({error})"
        return None


def target_errors(kind: str, patch: dict[str, Any]) -> list[FieldError]:
    """The target's own errors. The job service checks the target only once the rest of
    the body is valid; the form shows every field's problem at once."""
    model, target = TARGET_MODELS.get(kind), patch.get("target")
    if model is None or not isinstance(target, dict):
        return []
    try:
        model.model_validate({k: v for k, v in target.items() if v is not None})
    except ValidationError as error:
        return field_errors(error, prefix="target")
    return []


def attach_errors(form: DestinationForm, errors: list[FieldError]) -> None:
    """Put each service error on the form field it names (the longest matching field);
    errors about no field of the form go to the form as a whole ("")."""
    for error in errors:
        name = max(
            (f for f in form.fields if error.field == f or error.field.startswith(f + ".")),
            key=len,
            default="",
        )
        if name == "" and error.field.startswith("target"):
            name = next((f for f in form.fields if f.startswith("target")), "")
        message = error.message if name == error.field else f"{error.field}: {error.message}"
        if name in form.errors:
            form.errors[name] += f"; {message}"
        else:
            form.errors[name] = message

"""Secrets never leave the server in clear: job bodies and audit diffs are masked here."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "********"
_SECRET_NAME = re.compile(
    r"auth|token|secret|passw|pwd|api[-_]?key|cookie|session|credential|private", re.I
)


def is_secret_name(name: str) -> bool:
    """True for header/field names that carry credentials (Authorization, X-Api-Key, …)."""
    return bool(_SECRET_NAME.search(name))


def mask_url(url: str) -> str:
    """Hide the password of `scheme://user:password@host` URLs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host_and_port = parts.netloc.rpartition("@")[2]  # keeps [IPv6] brackets and the port
    netloc = f"{parts.username or ''}:{MASK}@{host_and_port}"
    return urlunsplit(parts._replace(netloc=netloc))


def mask_target(target: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of a job target with secret header values, all command env values and URL
    passwords replaced by MASK. Workflow steps are masked recursively."""
    if target is None:
        return None
    masked = dict(target)
    if isinstance(masked.get("headers"), dict):
        masked["headers"] = {
            name: MASK if is_secret_name(name) else value
            for name, value in masked["headers"].items()
        }
    if isinstance(masked.get("env"), dict):
        masked["env"] = dict.fromkeys(masked["env"], MASK)
    if isinstance(masked.get("url"), str):
        masked["url"] = mask_url(masked["url"])
    if isinstance(masked.get("steps"), list):
        masked["steps"] = [
            {**step, "target": mask_target(step.get("target"))} if isinstance(step, dict) else step
            for step in masked["steps"]
        ]
    return masked


def unmask_target(new: dict[str, Any] | None, old: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where a client sent MASK back (it echoed a masked GET), keep the stored secret."""
    if new is None or old is None:
        return new
    restored = dict(new)
    for section in ("headers", "env"):
        new_map, old_map = restored.get(section), old.get(section)
        if isinstance(new_map, dict) and isinstance(old_map, dict):
            restored[section] = {
                key: old_map.get(key, value) if value == MASK else value
                for key, value in new_map.items()
            }
    if restored.get("url") == mask_url(str(old.get("url", ""))) and "url" in old:
        restored["url"] = old["url"]
    if isinstance(restored.get("steps"), list) and isinstance(old.get("steps"), list):
        restored["steps"] = _unmask_steps(restored["steps"], old["steps"])
    return restored


def _unmask_steps(new: list[Any], old: list[Any]) -> list[Any]:
    """Workflow steps, matched by name, get their stored secrets back the same way."""
    old_targets = {step.get("name"): step.get("target") for step in old if isinstance(step, dict)}
    return [
        {**step, "target": unmask_target(step.get("target"), old_targets.get(step.get("name")))}
        if isinstance(step, dict) and isinstance(step.get("target"), dict)
        else step
        for step in new
    ]

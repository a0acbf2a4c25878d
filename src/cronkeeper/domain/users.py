"""Dashboard users: the stored record and the rules for names and passwords."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import FieldError

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    project_id: uuid.UUID
    project_slug: str
    username: str
    password_hash: str
    role: KeyRole
    created_at: datetime
    disabled_at: datetime | None


def check_new_user(username: str, password: str) -> list[FieldError]:
    """What is wrong with a new user's name and password (empty when both are fine)."""
    errors = []
    if not re.match(USERNAME_PATTERN, username):
        errors.append(
            FieldError("name", "must be 1-100 letters, digits or . _ @ -, starting alphanumeric")
        )
    if len(password) < MIN_PASSWORD:
        errors.append(FieldError("password", f"must be at least {MIN_PASSWORD} characters"))
    elif len(password) > MAX_PASSWORD:
        errors.append(FieldError("password", f"must be at most {MAX_PASSWORD} characters"))
    return errors

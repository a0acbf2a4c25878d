"""Translate database constraint violations into Cronkeeper errors."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def is_unique_violation(error: IntegrityError) -> bool:
    """True when the database refused a row because a unique constraint already holds it."""
    text = str(error.orig).lower()
    return "unique" in text or "duplicate key" in text

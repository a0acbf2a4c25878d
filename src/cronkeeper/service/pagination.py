"""Opaque keyset cursors: the client passes back what the previous page returned."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cronkeeper.errors import FieldError, InvalidInput


def encode_cursor(values: dict[str, Any]) -> str:
    """An opaque, URL-safe cursor for the given keyset position."""
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> InvalidInput:
    """The error for a cursor this server did not issue (callers that check values raise it)."""
    return InvalidInput(FieldError("cursor", "is not a cursor this server issued"))


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The keyset position in a cursor; InvalidInput (field `cursor`) if it was tampered with.

    Only the keys are checked: callers check each value's type before it reaches SQL."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_cursor() from None
    if not isinstance(values, dict) or set(values) != set(keys):
        raise invalid_cursor()
    return values

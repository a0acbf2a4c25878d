"""Time-ordered identifiers (UUIDv7, RFC 9562) for runs and other ledger rows."""

from __future__ import annotations

import os
import uuid
from datetime import datetime


def uuid7(at: datetime) -> uuid.UUID:
    """A UUIDv7 whose 48-bit prefix is `at` in Unix milliseconds, the rest random.

    Sorting these ids sorts by creation time, which keyset pagination relies on.
    """
    millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | rand
    value &= ~(0xF << 76)
    value |= 0x7 << 76  # version 7
    value &= ~(0x3 << 62)
    value |= 0x2 << 62  # RFC 4122 variant
    return uuid.UUID(int=value)

"""Time-ordered identifiers (UUIDv7, RFC 9562) for runs and other ledger rows."""

from __future__ import annotations

import os
import uuid
from datetime import datetime

_MILLIS = (1 << 48) - 1
#: Keeps all but the version (4 bits at 76) and variant (2 bits at 62) of a 128-bit id.
_KEPT = ((1 << 128) - 1) ^ (0xF << 76) ^ (0x3 << 62)
_VERSION_7_RFC_VARIANT = (0x7 << 76) | (0x2 << 62)


def uuid7(at: datetime) -> uuid.UUID:
    """A UUIDv7 whose 48-bit prefix is `at` in Unix milliseconds, the rest random.

    Sorting these ids sorts by creation time, which keyset pagination relies on.
    """
    return uuid.UUID(int=uuid7_int(at))


def uuid7_int(at: datetime) -> int:
    """`uuid7(at)` as its 128-bit integer, for a caller that only needs its digits."""
    millis = int(at.timestamp() * 1000) & _MILLIS
    rand = int.from_bytes(os.urandom(10), "big")
    return ((millis << 80) | rand) & _KEPT | _VERSION_7_RFC_VARIANT

"""Durations as users write them: a number of seconds, or `250ms`, `30s`, `5m`, `1h30m`, `2d`."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$")
MAX_SECONDS = 366 * 86400.0


class DurationError(ValueError):
    """The text is not a duration we understand; the message says what is accepted."""


def parse_duration(value: object) -> float:
    """Seconds from a number or a string with units; raises `DurationError`.

    Accepts ints/floats (seconds), plain numeric strings, and unit strings such as
    `250ms`, `1h30m`. Rejects negatives, NaN/inf, booleans and anything over a year.
    """
    if isinstance(value, bool):
        raise DurationError("expected a number of seconds or a string such as '30s'")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range, e.g. 10**400 from JSON
            raise DurationError("must be at most 366 days") from None
    elif isinstance(value, str):
        seconds = _parse_text(value.strip().lower())
    else:
        raise DurationError("expected a number of seconds or a string such as '30s'")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise DurationError("must be a non-negative, finite duration")
    if seconds > MAX_SECONDS:
        raise DurationError("must be at most 366 days")
    return seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    if not _WHOLE.match(text):
        raise DurationError(
            f"{text!r} is not a duration; use seconds or units ms/s/m/h/d/w, e.g. '1h30m'"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """Short human form: `250ms`, `45s`, `5m`, `1h30m`, `2d3h`."""
    if (millis := round(seconds * 1000)) < 1000:  # 0.9996 reads "1s", not "1000ms"
        return f"{millis}ms"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            count, whole = divmod(whole, size)
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])

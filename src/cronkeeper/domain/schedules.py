"""Schedules: parse what users type, find the next fire times, describe them in words.

Four kinds:

- `cron`: 5 fields, or 6 with a leading seconds field, as cronsim reads them (names such
  as MON and JAN, `L`, `LW`, `n#k`, `nL`), plus the nicknames `@yearly` … `@hourly`.
- `interval`: `every 90s`, `every 1h30m`, `every 5 minutes`. Fires at whole multiples of
  the interval since the Unix epoch, so every process and every restart agrees on the
  slots, whatever the job's time zone.
- `oncalendar`: one systemd OnCalendar expression (`daily`, `Mon *-*-* 00:00:00`).
- `none`: manual runs only.

Cron and OnCalendar are computed on the wall clock of the job's zone and converted to
UTC. Around DST changes they keep their libraries' semantics:

- cron (cronsim, like Debian cron): for 5-field expressions with a fixed minute and hour,
  a time inside a spring-forward gap fires once, at the end of the gap (`30 2 * * *` in
  Europe/Berlin on 2026-03-29 fires at 03:00 CEST), and a time in the repeated hour of a
  fall-back fires once, on its first pass. Expressions with `*` in the minute or hour
  field, and all 6-field ones, follow real elapsed time: they skip the gap and fire in
  both passes of the repeated hour.
- OnCalendar (like systemd): a time inside a gap does not fire that day; a time in the
  repeated hour fires once, on its first pass.

Every result is aware UTC, in whole seconds, and strictly after the `after` given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from oncalendar import OnCalendar, OnCalendarError

from cronkeeper.domain.durations import DurationError, parse_duration

ScheduleKind = Literal["cron", "interval", "oncalendar", "none"]

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# A library iterator can yield instants at or before the previous fire: both libraries
# walk the naive wall clock for some expressions, and in the repeated hour of a
# fall-back a wall time on its first pass is earlier, in UTC, than `after` on its
# second pass. The longest such run is one repeated stretch at one-second resolution
# (at most 2 h in tzdata, Antarctica/Troll: 7,200 values). Past this many skips in a
# row something is wrong, and we return what we have rather than spin forever.
MAX_SKIPPED = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Parsing needs a start instant; a fixed one keeps parsing pure and repeatable.
_PARSE_START = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)
_MAX_SHOWN = 80
_TIMEZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_MAX_TIMEZONE_LENGTH = 100
_UNIT_WORD = re.compile(r"(\d)\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?)\b")
_SINGLE_UNIT = re.compile(r"(\d+)\s*([smhdw]?)")
_UNITS = {  # largest first
    "w": (604_800, "week"),
    "d": (86_400, "day"),
    "h": (3_600, "hour"),
    "m": (60, "minute"),
    "s": (1, "second"),
}
_CRON_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_ALLOWED = {  # field: (numeric range, everything accepted)
    "second": ("0-59", "0-59"),
    "minute": ("0-59", "0-59"),
    "hour": ("0-23", "0-23"),
    "day-of-month": ("1-31", "1-31, L or LW"),
    "month": ("1-12", "1-12 or JAN-DEC"),
    "day-of-week": ("0-7", "0-7 or SUN-SAT, with n#k or nL"),
}


class ScheduleError(ValueError):
    """The schedule or time zone is not valid; the message is one line for the user."""


@dataclass(frozen=True)
class Schedule:
    """A validated schedule; build one with `parse_schedule`."""

    expression: str
    kind: ScheduleKind

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first fire strictly after `after`, in UTC; None when there is none."""
        return _cached_next_fire(self, after, tz)

    def next_fires(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        """Up to `count` fires strictly after `after`, increasing, in UTC.

        Fewer come back only when the schedule runs out (kind `none`, an OnCalendar
        expression with no more dates, a cron date beyond cronsim's 50-year search) or
        when `MAX_SKIPPED` trips. Raises ValueError if `after` is naive.
        """
        if after.utcoffset() is None:
            raise ValueError("after must be a timezone-aware datetime")
        if count <= 0:
            return []
        return _take_increasing(self._candidates(after, tz), after, count)

    def prev_fires(self, before: datetime, tz: ZoneInfo, count: int) -> list[datetime] | None:
        """Up to `count` fires strictly before `before`, decreasing, in UTC; None when the
        kind cannot be walked backwards (OnCalendar) — callers scan forward instead."""
        if before.utcoffset() is None:
            raise ValueError("before must be a timezone-aware datetime")
        if self.kind == "oncalendar":
            return None
        if self.kind == "interval":
            seconds = _interval_seconds(self.expression)
            elapsed = -((_EPOCH - before) // _ONE_SECOND)  # ceil: strictly before
            last = _EPOCH + timedelta(seconds=((elapsed - 1) // seconds) * seconds)
            return [last - timedelta(seconds=seconds * i) for i in range(count)]
        if self.kind != "cron":
            return []
        fires: list[datetime] = []
        last = before
        reverse = CronSim(_cron_text(self.expression), before.astimezone(tz), reverse=True)
        try:
            for local in reverse:
                fire = local.astimezone(UTC)
                if fire < last:
                    fires.append(fire)
                    last = fire
                    if len(fires) == count:
                        break
        except (OverflowError, StopIteration):
            pass
        return fires

    def period(self) -> int | None:
        """Seconds between fires of an `every …` interval; None for every other kind."""
        return _interval_seconds(self.expression) if self.kind == "interval" else None

    def describe(self) -> str:
        """The schedule in words, e.g. "At 13:00 on Monday" or "Every 2 hours"."""
        if self.kind == "cron":
            return _cron_iterator(_cron_text(self.expression), _PARSE_START).explain()
        if self.kind == "interval":
            return _describe_interval(self.expression)
        if self.kind == "oncalendar":
            return f"Systemd calendar: {self.expression}"
        return "Manual only"

    def _candidates(self, after: datetime, tz: ZoneInfo) -> Iterator[datetime]:
        if self.kind == "cron":
            return _cron_fires(_cron_text(self.expression), after.astimezone(tz))
        if self.kind == "interval":
            return _interval_fires(_interval_seconds(self.expression), after)
        if self.kind == "oncalendar":
            return _oncalendar_fires(self.expression, after.astimezone(tz))
        return iter(())


@lru_cache(maxsize=65_536)
def _cached_next_fire(schedule: Schedule, after: datetime, tz: ZoneInfo) -> datetime | None:
    """Many jobs share an expression and a slot (10,000 jobs due at the same second ask
    the same question): compute each answer once."""
    fires = schedule.next_fires(after, tz, 1)
    return fires[0] if fires else None


@lru_cache(maxsize=8192)
def parse_schedule(expression: str | None) -> Schedule:
    """Parse what a user typed into a `Schedule`; raises `ScheduleError`.

    None, "" and blank text mean kind `none`. Order: `@nickname`, `every …`, 5/6-field
    cron, then OnCalendar.
    """
    text = (expression or "").strip()
    if not text:
        return Schedule("", "none")
    if len(text.splitlines()) > 1:
        raise ScheduleError(f"{_shown(text)}: a schedule is a single line")
    text = " ".join(text.split())
    if text.startswith("@"):
        return _parse_nickname(text.lower())
    if text.split()[0].lower() == "every":
        return _parse_interval(text.lower())
    return _parse_cron_or_oncalendar(text)


@lru_cache(maxsize=1024)
def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`; raises `ScheduleError` for anything else."""
    if len(name) <= _MAX_TIMEZONE_LENGTH and _TIMEZONE_NAME.fullmatch(name):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ScheduleError(f"unknown time zone {_shown(name)}")


def _parse_nickname(text: str) -> Schedule:
    if text in NICKNAMES:
        return Schedule(text, "cron")
    if text == "@reboot":
        raise ScheduleError("'@reboot': not supported; Cronkeeper schedules by the clock only")
    raise ScheduleError(f"{_shown(text)}: unknown nickname; use one of {', '.join(NICKNAMES)}")


def _parse_interval(text: str) -> Schedule:
    _interval_seconds(text)
    return Schedule(text, "interval")


def _parse_cron_or_oncalendar(text: str) -> Schedule:
    cron_error: ScheduleError | None = None
    if len(text.split()) in (5, 6):
        try:
            _cron_iterator(text, _PARSE_START)
            return Schedule(text, "cron")
        except ScheduleError as error:
            cron_error = error
    try:
        OnCalendar(text, _PARSE_START)
    except (OnCalendarError, ValueError, IndexError, OSError) as error:
        if cron_error is not None:
            raise cron_error from None
        raise ScheduleError(
            f"{_shown(text)}: not a cron expression (5 or 6 fields) nor a systemd"
            f" OnCalendar expression ({str(error).lower()})"
        ) from None
    return Schedule(text, "oncalendar")


def _cron_text(expression: str) -> str:
    return NICKNAMES.get(expression, expression)


def _cron_iterator(cron: str, start: datetime) -> CronSim:
    try:
        return CronSim(cron, start)
    except (CronSimError, ValueError, IndexError) as error:
        raise ScheduleError(_cron_message(cron, error)) from None


def _cron_message(cron: str, error: Exception) -> str:
    fields = cron.split()
    if len(fields) not in (5, 6):
        return f"{_shown(cron)}: expected 5 cron fields (or 6 with seconds first)"
    names = _CRON_FIELDS[-len(fields) :]
    name = str(error).removeprefix("Bad ")
    if not isinstance(error, CronSimError) or name not in names:
        return f"{_shown(cron)}: not a valid cron expression"
    return f"{_shown(cron)}: {name} field: {_field_problem(name, fields[names.index(name)])}"


def _field_problem(name: str, value: str) -> str:
    numeric, allowed = _CRON_ALLOWED[name]
    if value.isascii() and value.isdigit():
        if name == "day-of-month" and 1 <= int(value) <= 31:
            return f"day {value} never occurs in the months given"
        return f"{value} is out of range {numeric}"
    if name == "day-of-month" and value.upper().endswith("W"):
        return f"{value!r} is not supported; W works only as LW (last weekday of the month)"
    return f"{value!r} is not valid (allowed: {allowed})"


def _interval_seconds(expression: str) -> int:
    """Whole seconds of a normalised `every …` expression; raises `ScheduleError`."""
    text = _duration_text(expression)
    if not text:
        raise ScheduleError(f"{_shown(expression)}: say how often, e.g. 'every 90s'")
    try:
        seconds = parse_duration(text)
    except DurationError as error:
        raise ScheduleError(f"{_shown(expression)}: {error}") from None
    whole = round(seconds)
    if whole < 1:
        raise ScheduleError(f"{_shown(expression)}: the interval must be at least 1 second")
    if abs(seconds - whole) > 1e-6:
        raise ScheduleError(f"{_shown(expression)}: the interval must be whole seconds")
    return whole


def _duration_text(expression: str) -> str:
    """The part after `every`, with unit words shortened: `5 minutes` → `5m`."""
    text = expression[len("every") :]
    return _UNIT_WORD.sub(lambda match: match[1] + match[2][0], text).strip()


def _describe_interval(expression: str) -> str:
    seconds = _interval_seconds(expression)
    typed = _SINGLE_UNIT.fullmatch(_duration_text(expression))
    if typed:
        size, word = _UNITS[typed[2] or "s"]
        if seconds % size == 0:
            return _every(seconds // size, word)
    parts = _split_units(seconds)
    if len(parts) == 1:
        count, letter = parts[0]
        return _every(count, _UNITS[letter][1])
    return "Every " + "".join(f"{count}{letter}" for count, letter in parts)


def _split_units(seconds: int) -> list[tuple[int, str]]:
    parts = []
    for letter, (size, _) in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append((count, letter))
    return parts


def _every(count: int, word: str) -> str:
    return f"Every {word}" if count == 1 else f"Every {count} {word}s"


def _take_increasing(candidates: Iterator[datetime], after: datetime, count: int) -> list[datetime]:
    """Keep candidates later than the last one kept; `MAX_SKIPPED` bounds the skipping."""
    fires: list[datetime] = []
    last, skipped = after, 0
    try:
        for candidate in candidates:
            if candidate > last:
                fires.append(candidate)
                last, skipped = candidate, 0
                if len(fires) == count:
                    break
            else:
                skipped += 1
                if skipped > MAX_SKIPPED:
                    break
    except OverflowError:  # the iteration ran past year 9999
        pass
    return fires


def _cron_fires(cron: str, start: datetime) -> Iterator[datetime]:
    for local in _cron_iterator(cron, start):
        yield local.astimezone(UTC)


def _oncalendar_fires(expression: str, start: datetime) -> Iterator[datetime]:
    try:
        iterator = OnCalendar(expression, start)
    except (OnCalendarError, ValueError, IndexError, OSError) as error:
        raise ScheduleError(f"{_shown(expression)}: {error}") from None
    for local in iterator:
        yield local.astimezone(UTC)


def _interval_fires(seconds: int, after: datetime) -> Iterator[datetime]:
    elapsed = (after - _EPOCH) // _ONE_SECOND
    fire = _EPOCH + timedelta(seconds=(elapsed // seconds + 1) * seconds)
    step = timedelta(seconds=seconds)
    while True:
        yield fire
        fire += step


def _shown(text: str) -> str:
    """Quote user text for a one-line message, shortened if long."""
    return repr(text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…")

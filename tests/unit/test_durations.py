"""Durations: what users may write (`30s`, `1h30m`, numbers) and how we print them back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.domain.durations import (
    MAX_SECONDS,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("45", 45.0),
        ("0.5", 0.5),
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        ("  30S ", 30.0),
        ("1h 30m", 5400.0),
        ("366d", MAX_SECONDS),
    ],
)
def test_numbers_and_unit_strings_become_seconds(written: object, seconds: float) -> None:
    assert parse_duration(written) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "written",
    [
        -1,
        -0.001,
        "-5s",
        "-5",
        math.nan,
        "nan",
        math.inf,
        "inf",
        True,
        False,
        "",
        "   ",
        "abc",
        "5 parsecs",
        "5x",
        "s",
        "1h30",
        None,
        [30],
        {"seconds": 30},
        "367d",
        MAX_SECONDS + 1,
        "53w",
    ],
)
def test_nonsense_negative_infinite_and_too_long_durations_are_rejected(written: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(written)


def test_a_rejected_duration_says_what_is_accepted() -> None:
    with pytest.raises(DurationError, match=r"1h30m"):
        parse_duration("5 parsecs")


def test_a_boolean_is_not_mistaken_for_one_second() -> None:
    with pytest.raises(DurationError, match="number of seconds"):
        parse_duration(True)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0ms"),
        (0.25, "250ms"),
        (0.001, "1ms"),
        (1, "1s"),
        (45, "45s"),
        (300, "5m"),
        (5400, "1h30m"),
        (3600, "1h"),
        (183600, "2d3h"),
        (86401, "1d1s"),
    ],
)
def test_formatted_durations_read_back_to_the_same_seconds(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
    assert parse_duration(shown) == pytest.approx(seconds)


def test_a_duration_just_under_a_second_is_shown_as_one_second_not_1000ms() -> None:
    assert format_duration(0.9996) == "1s"


def test_the_short_form_keeps_only_the_two_largest_units() -> None:
    assert format_duration(90061) == "1d1h"


durations = st.floats(min_value=0, max_value=MAX_SECONDS, allow_nan=False)


@given(durations)
def test_format_then_parse_stays_within_rounding(seconds: float) -> None:
    back = parse_duration(format_duration(seconds))
    if seconds < 1:
        assert back == pytest.approx(seconds, abs=0.0005 + 1e-12)
    else:
        # Whole seconds are rounded; the short form drops units below its two largest,
        # which is less than 1/24 of the total (a day's hours, an hour's minutes).
        assert seconds - seconds / 24 - 0.5 <= back <= seconds + 0.5


@given(durations)
def test_formatting_what_was_formatted_changes_nothing(seconds: float) -> None:
    shown = format_duration(seconds)
    assert format_duration(parse_duration(shown)) == shown

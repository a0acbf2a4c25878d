"""Schedules: what users may type, when jobs fire (across DST), and how schedules read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from cronkeeper.domain.schedules import (
    Schedule,
    ScheduleError,
    ScheduleKind,
    parse_schedule,
    parse_timezone,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
UTC_ZONE = ZoneInfo("UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(
    expression: str, after: datetime, tz: ZoneInfo = UTC_ZONE, count: int = 1
) -> list[datetime]:
    return parse_schedule(expression).next_fires(after, tz, count)


# --- Parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expression", "kind"),
    [
        ("0 2 * * *", "0 2 * * *", "cron"),
        ("  0   9 *  * mon ", "0 9 * * mon", "cron"),
        ("30 */2 * * * *", "30 */2 * * * *", "cron"),
        ("@HOURLY", "@hourly", "cron"),
        ("@annually", "@annually", "cron"),
        ("Every  90S", "every 90s", "interval"),
        ("every 5 minutes", "every 5 minutes", "interval"),
        ("Mon *-*-* 00:00:00", "Mon *-*-* 00:00:00", "oncalendar"),
        ("daily", "daily", "oncalendar"),
        ("", "", "none"),
        ("   ", "", "none"),
        (None, "", "none"),
    ],
)
def test_parse_schedule_recognises_each_kind_and_normalises_the_text(
    typed: str | None, expression: str, kind: ScheduleKind
) -> None:
    assert parse_schedule(typed) == Schedule(expression, kind)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("61 * * * *", "'61 * * * *': minute field: 61 is out of range 0-59"),
        ("0 24 * * *", "'0 24 * * *': hour field: 24 is out of range 0-23"),
        ("0 0 1 13 *", "'0 0 1 13 *': month field: 13 is out of range 1-12"),
        ("0 0 30 2 *", "'0 0 30 2 *': day-of-month field: day 30 never occurs in the months given"),
        ("0 9 15W * *", "W works only as LW"),
        ("0 0 * * MON#6", "day-of-week field: 'MON#6' is not valid"),
        ("* * * *", "not a cron expression (5 or 6 fields) nor a systemd OnCalendar expression"),
        ("banana", "'banana': not a cron expression"),
        ("@reboot", "'@reboot': not supported"),
        ("@fortnightly", "'@fortnightly': unknown nickname; use one of @yearly"),
        ("every 0s", "'every 0s': the interval must be at least 1 second"),
        ("every 500ms", "'every 500ms': the interval must be at least 1 second"),
        ("every 1.5s", "'every 1.5s': the interval must be whole seconds"),
        ("every banana", "'every banana': 'banana' is not a duration"),
        ("every", "'every': say how often"),
        ("daily\nweekly", "'daily\\nweekly': a schedule is a single line"),
    ],
)
def test_parse_schedule_rejects_bad_text_with_a_one_line_explanation(
    typed: str, message: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(typed)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_error_messages_shorten_very_long_text() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("x" * 10_000)
    assert len(str(caught.value)) < 200


def test_schedule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_schedule("61 * * * *")


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "UTC", "Etc/GMT+5"])
def test_parse_timezone_returns_iana_zones(name: str) -> None:
    assert parse_timezone(name) == ZoneInfo(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus",
        "utc",
        "../etc",
        "/etc/localtime",
        "Europe",
        "zone.tab",
        "a\x00b",
        "a" * 5000,
    ],
)
def test_parse_timezone_rejects_unknown_zones(name: str) -> None:
    with pytest.raises(ScheduleError, match=r"^unknown time zone "):
        parse_timezone(name)


# --- Next fire times: examples ---------------------------------------------------------


def test_cron_fires_at_the_wall_clock_time_of_the_job_zone() -> None:
    assert fires("0 2 * * *", utc(2026, 1, 1), BERLIN) == [utc(2026, 1, 1, 1)]


def test_every_five_minutes_fires_on_the_five_minute_marks() -> None:
    assert fires("*/5 * * * *", utc(2026, 1, 1, 0, 3, 20), count=3) == [
        utc(2026, 1, 1, 0, 5),
        utc(2026, 1, 1, 0, 10),
        utc(2026, 1, 1, 0, 15),
    ]


def test_six_field_cron_reads_the_first_field_as_seconds() -> None:
    assert fires("30 */2 * * * *", utc(2026, 1, 1), count=2) == [
        utc(2026, 1, 1, 0, 0, 30),
        utc(2026, 1, 1, 0, 2, 30),
    ]


def test_l_in_day_of_month_means_the_last_day_of_the_month() -> None:
    assert fires("0 0 L * *", utc(2026, 2, 10), count=2) == [utc(2026, 2, 28), utc(2026, 3, 31)]


def test_lw_means_the_last_weekday_of_the_month() -> None:
    # 2026-01-31 is a Saturday, so the last weekday is Friday the 30th.
    assert fires("0 9 LW * *", utc(2026, 1, 1)) == [utc(2026, 1, 30, 9)]


def test_hash_in_day_of_week_means_the_nth_weekday_of_the_month() -> None:
    assert fires("0 9 * * MON#1", utc(2026, 1, 6)) == [utc(2026, 2, 2, 9)]


def test_l_in_day_of_week_means_the_last_such_weekday_of_the_month() -> None:
    assert fires("0 9 * * 5L", utc(2026, 1, 1)) == [utc(2026, 1, 30, 9)]


def test_day_of_month_and_day_of_week_both_given_fire_on_either() -> None:
    # 2026-01-13 is the first 13th; Friday 2026-01-02 comes first.
    assert fires("0 0 13 * FRI", utc(2026, 1, 1), count=3) == [
        utc(2026, 1, 2),
        utc(2026, 1, 9),
        utc(2026, 1, 13),
    ]


def test_hourly_nickname_fires_at_the_top_of_each_hour() -> None:
    assert fires("@hourly", utc(2026, 1, 1, 10, 20), count=2) == [
        utc(2026, 1, 1, 11),
        utc(2026, 1, 1, 12),
    ]


def test_weekly_nickname_fires_on_sunday_midnight_in_the_job_zone() -> None:
    assert fires("@weekly", utc(2026, 1, 1), NEW_YORK) == [utc(2026, 1, 4, 5)]


def test_interval_fires_on_multiples_of_the_interval_since_the_epoch() -> None:
    # 2026-01-01T00:00:00Z is 1_767_225_600 s after the epoch, a multiple of 90.
    assert fires("every 90s", utc(2026, 1, 1, 0, 0, 10), count=2) == [
        utc(2026, 1, 1, 0, 1, 30),
        utc(2026, 1, 1, 0, 3, 0),
    ]


def test_interval_slots_do_not_depend_on_the_job_zone() -> None:
    after = utc(2026, 3, 29, 0, 59, 59)
    in_utc = fires("every 7m", after, UTC_ZONE, count=20)
    assert fires("every 7m", after, BERLIN, count=20) == in_utc
    assert fires("every 7m", after, LORD_HOWE, count=20) == in_utc


def test_oncalendar_weekday_expression_fires_in_the_job_zone() -> None:
    assert fires("Mon *-*-* 00:00:00", utc(2026, 1, 1), BERLIN) == [utc(2026, 1, 4, 23)]


def test_oncalendar_daily_fires_at_local_midnight() -> None:
    assert fires("daily", utc(2026, 1, 1, 12), NEW_YORK, count=2) == [
        utc(2026, 1, 2, 5),
        utc(2026, 1, 3, 5),
    ]


def test_oncalendar_expression_that_has_passed_has_no_next_fire() -> None:
    assert parse_schedule("2001-01-01 00:00:00").next_fire(utc(2026, 1, 1), UTC_ZONE) is None


def test_manual_only_schedule_never_fires() -> None:
    schedule = parse_schedule(None)
    assert schedule.next_fire(utc(2026, 1, 1), UTC_ZONE) is None
    assert schedule.next_fires(utc(2026, 1, 1), UTC_ZONE, 5) == []


def test_next_fire_is_strictly_after_the_given_instant() -> None:
    assert fires("*/5 * * * *", utc(2026, 1, 1, 0, 5)) == [utc(2026, 1, 1, 0, 10)]
    assert fires("every 90s", utc(2026, 1, 1, 0, 1, 30)) == [utc(2026, 1, 1, 0, 3)]
    assert fires("*-*-* 02:00:00", utc(2026, 1, 1, 2)) == [utc(2026, 1, 2, 2)]


@pytest.mark.parametrize("expression", ["*/5 * * * *", "every 5m", "*:0/5"])
def test_after_with_microseconds_gives_whole_second_results(expression: str) -> None:
    assert fires(expression, datetime(2026, 1, 1, 0, 4, 59, 999_999, tzinfo=UTC)) == [
        utc(2026, 1, 1, 0, 5)
    ]
    assert fires(expression, datetime(2026, 1, 1, 0, 5, 0, 1, tzinfo=UTC)) == [
        utc(2026, 1, 1, 0, 10)
    ]


def test_results_are_in_utc_whatever_the_zone_of_after() -> None:
    after_in_tokyo = datetime(2026, 1, 1, 9, tzinfo=ZoneInfo("Asia/Tokyo"))
    (fire,) = fires("0 2 * * *", after_in_tokyo, BERLIN)
    assert fire == utc(2026, 1, 1, 1)
    assert fire.tzinfo is UTC


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("@daily").next_fire(datetime(2026, 1, 1), UTC_ZONE)


def test_next_fires_with_zero_count_is_empty() -> None:
    assert fires("@hourly", utc(2026, 1, 1), count=0) == []


# --- Descriptions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 13 * * 1", "At 13:00 on Monday"),
        ("@hourly", "At the start of every hour"),
        ("every 90s", "Every 90 seconds"),
        ("every 2h", "Every 2 hours"),
        ("every 1h", "Every hour"),
        ("every 1h30m", "Every 1h30m"),
        ("every 5 minutes", "Every 5 minutes"),
        ("every 0.5h", "Every 30 minutes"),
        ("Mon *-*-* 00:00:00", "Systemd calendar: Mon *-*-* 00:00:00"),
        ("daily", "Systemd calendar: daily"),
        ("", "Manual only"),
    ],
)
def test_describe_puts_the_schedule_in_words(expression: str, words: str) -> None:
    assert parse_schedule(expression).describe() == words


# --- Daylight saving time ------------------------------------------------------------


def test_daily_time_in_the_berlin_spring_gap_fires_once_right_after_the_gap() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    assert fires("30 2 * * *", utc(2026, 3, 28, 12), BERLIN, count=2) == [
        utc(2026, 3, 29, 1),  # 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_daily_time_in_the_berlin_repeated_hour_fires_once_on_the_first_pass() -> None:
    # 2026-10-25 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    assert fires("30 2 * * *", utc(2026, 10, 24, 12), BERLIN, count=2) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 26, 1, 30),  # 02:30 CET, next day
    ]


def test_daily_time_does_not_fire_again_on_the_second_pass_of_the_repeated_hour() -> None:
    second_pass_0215 = utc(2026, 10, 25, 1, 15)
    assert fires("30 2 * * *", second_pass_0215, BERLIN) == [utc(2026, 10, 26, 1, 30)]


def test_daily_time_in_the_new_york_spring_gap_fires_once_right_after_the_gap() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT.
    assert fires("30 2 * * *", utc(2026, 3, 7, 12), NEW_YORK, count=2) == [
        utc(2026, 3, 8, 7),  # 03:00 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]


def test_daily_time_in_the_new_york_repeated_hour_fires_once_on_the_first_pass() -> None:
    # 2026-11-01 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    assert fires("30 1 * * *", utc(2026, 10, 31, 12), NEW_YORK, count=2) == [
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT
        utc(2026, 11, 2, 6, 30),  # 01:30 EST, next day
    ]


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        (BERLIN, datetime(2026, 3, 29)),
        (BERLIN, datetime(2026, 10, 25)),
        (NEW_YORK, datetime(2026, 3, 8)),
        (NEW_YORK, datetime(2026, 11, 1)),
    ],
)
def test_every_quarter_hour_follows_real_time_across_dst_changes(
    tz: ZoneInfo, day: datetime
) -> None:
    start = day.replace(tzinfo=tz).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
    day_fires = [f for f in fires("*/15 * * * *", start, tz, count=110) if f < end]
    gaps = {later - earlier for earlier, later in pairwise(day_fires)}
    assert gaps == {timedelta(minutes=15)}
    assert len(day_fires) == (end - start) // timedelta(minutes=15) - 1


def test_oncalendar_time_in_the_spring_gap_does_not_fire_that_day() -> None:
    # systemd semantics, unlike cron: the skipped wall time is simply skipped.
    assert fires("*-*-* 02:30:00", utc(2026, 3, 28, 12), BERLIN) == [utc(2026, 3, 30, 0, 30)]


def test_oncalendar_time_in_the_repeated_hour_fires_once() -> None:
    assert fires("*-*-* 02:30:00", utc(2026, 10, 24, 12), BERLIN, count=2) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_oncalendar_every_second_from_the_second_pass_of_the_repeated_hour() -> None:
    # OnCalendar only yields first-pass times there; we must skip past them, not give up.
    second_pass = utc(2026, 10, 25, 1, 0, 5)  # 02:00:05 CET
    assert fires("*-*-* *:*:*", second_pass, BERLIN) == [utc(2026, 10, 25, 2)]


# --- Properties ----------------------------------------------------------------------

ZONES = st.sampled_from([BERLIN, NEW_YORK, KOLKATA, LORD_HOWE, UTC_ZONE])
AFTERS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "weekday": (0, 7),
}


@st.composite
def cron_terms(draw: st.DrawFn, low: int, high: int) -> str:
    value = st.integers(low, high)
    kind = draw(st.sampled_from(["star", "number", "range", "step"]))
    if kind == "star":
        return "*"
    if kind == "number":
        return str(draw(value))
    first = draw(st.integers(low, high - 1))
    span = f"{first}-{draw(st.integers(first + 1, high))}"
    if kind == "range":
        return span
    start = draw(st.sampled_from(["*", str(first), span]))
    return f"{start}/{draw(st.integers(1, high - low + 1))}"


@st.composite
def cron_fields(draw: st.DrawFn, name: str) -> str:
    low, high = BOUNDS[name]
    terms = draw(st.lists(cron_terms(low, high), min_size=1, max_size=3))
    return ",".join(terms)


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    names = ["minute", "hour", "day", "month", "weekday"]
    if draw(st.booleans()):
        names.insert(0, "second")
    return " ".join(draw(cron_fields(name)) for name in names)


def expand(field: str, low: int, high: int) -> set[int]:
    """An independent reading of one cron field (no L, W or #)."""
    values: set[int] = set()
    for term in field.split(","):
        span, _, step = term.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(part) for part in span.split("-"))
        else:
            first = last = int(span)
        if step:
            last = high if "-" not in span else last
            values.update(range(first, last + 1, int(step)))
        else:
            values.update(range(first, last + 1))
    return values


def matches(expression: str, wall: datetime) -> bool:
    fields = expression.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    second, minute, hour, day, month, weekday = fields
    weekdays = {value % 7 for value in expand(weekday, 0, 7)}
    day_ok = wall.day in expand(day, 1, 31)
    weekday_ok = (wall.weekday() + 1) % 7 in weekdays
    # Debian cron: if either day field starts with '*', both must match; otherwise either.
    both = day.startswith("*") or weekday.startswith("*")
    return (
        wall.second in expand(second, 0, 59)
        and wall.minute in expand(minute, 0, 59)
        and wall.hour in expand(hour, 0, 23)
        and wall.month in expand(month, 1, 12)
        and ((day_ok and weekday_ok) if both else (day_ok or weekday_ok))
    )


def wall_clock(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def explained_by(expression: str, fire: datetime, tz: ZoneInfo) -> bool:
    """The fire matches the expression, or is the end of a gap that swallowed a match."""
    wall = wall_clock(fire, tz)
    if matches(expression, wall):
        return True
    gap_start = wall_clock(fire - timedelta(seconds=1), tz) + timedelta(seconds=1)
    swallowed = range((wall - gap_start) // timedelta(minutes=1))
    return any(matches(expression, gap_start + timedelta(minutes=m)) for m in swallowed)


@settings(max_examples=150, deadline=None)
@given(expression=cron_expressions(), after=AFTERS, tz=ZONES)
def test_cron_fires_are_increasing_later_than_after_and_match_the_expression(
    expression: str, after: datetime, tz: ZoneInfo
) -> None:
    try:
        schedule = parse_schedule(expression)
    except ScheduleError:
        reject()  # e.g. day 31 with only 30-day months and a '*' weekday
    assert schedule.kind == "cron"
    assert schedule.describe()
    result = schedule.next_fires(after, tz, 5)
    assert result
    assert all(fire.tzinfo is UTC and fire.microsecond == 0 for fire in result)
    assert all(earlier < later for earlier, later in zip([after, *result], result, strict=False))
    for fire in result:
        assert explained_by(expression, fire, tz), (fire, wall_clock(fire, tz))


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(1, 366 * 86_400), after=AFTERS, tz=ZONES)
def test_interval_fires_are_epoch_multiples_one_interval_apart(
    seconds: int, after: datetime, tz: ZoneInfo
) -> None:
    result = parse_schedule(f"every {seconds}s").next_fires(after, tz, 5)
    interval = timedelta(seconds=seconds)
    assert len(result) == 5
    assert all((fire - EPOCH) % interval == timedelta(0) for fire in result)
    assert after < result[0] <= after + interval
    assert [later - earlier for earlier, later in pairwise(result)] == [interval] * 4


CRONISH = st.text(alphabet=" 0123456789*/,-#?@LWMONJANFRIdailyevrsmh:~.\n\t\x00é", max_size=40)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=60), CRONISH))
def test_parse_schedule_raises_only_schedule_error_on_any_text(text: str) -> None:
    try:
        schedule = parse_schedule(text)
    except ScheduleError as error:
        assert "\n" not in str(error)
        return
    assert schedule.describe()
    fire = schedule.next_fire(utc(2026, 1, 1), BERLIN)
    assert fire is None or fire > utc(2026, 1, 1)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=300))
def test_parse_timezone_raises_only_schedule_error_on_any_text(name: str) -> None:
    try:
        assert isinstance(parse_timezone(name), ZoneInfo)
    except ScheduleError as error:
        assert str(error).startswith("unknown time zone ")

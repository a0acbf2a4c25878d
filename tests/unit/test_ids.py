"""Run ids are UUIDv7: version 7, RFC 9562 variant, sortable by the instant they name."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.domain.ids import uuid7

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_id_is_a_version_7_uuid_with_the_rfc_variant() -> None:
    value = uuid7(AT)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert str(value)[14] == "7"


def test_the_first_48_bits_are_the_instant_in_unix_milliseconds() -> None:
    value = uuid7(AT)
    assert value.int >> 80 == int(AT.timestamp()) * 1000


def test_two_ids_for_the_same_instant_differ() -> None:
    assert uuid7(AT) != uuid7(AT)


def test_ids_for_a_run_of_increasing_instants_sort_in_time_order() -> None:
    moments = [AT + timedelta(milliseconds=step) for step in range(0, 5000, 7)]
    ids = [uuid7(moment) for moment in moments]
    assert sorted(ids) == ids
    assert sorted(str(value) for value in ids) == [str(value) for value in ids]


millisecond_instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))


@given(millisecond_instants, millisecond_instants)
def test_an_earlier_instant_always_gets_a_smaller_id(first: datetime, second: datetime) -> None:
    a, b = uuid7(first), uuid7(second)
    assert a.version == b.version == 7
    if first < second:
        assert a < b
    elif second < first:
        assert b < a

"""UTCDateTime on SQLite reads its stored text in one step (store/types.py
`sqlite_utc_time`): the same aware UTC datetimes as SQLAlchemy's parse followed by
`process_result_value`, and a time read back is the time written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import processors

from cronkeeper.store.types import UTCDateTime, sqlite_utc_time

STORED = [
    "2026-10-31 05:17:11.003000",
    "2026-10-31 05:17:11.000000",
    "2026-10-31 05:17:11",
    "2026-10-31 05:17:11.003",
    "1999-12-31 23:59:59.999999",
    "2026-10-31T05:17:11+02:00",
    "2026-10-31 05:17:11.5+00:00",
]


@pytest.mark.parametrize("text", STORED)
def test_stored_text_reads_as_sqlalchemys_parse_then_utc(text: str) -> None:
    expected = UTCDateTime().process_result_value(
        processors.str_to_datetime(text), sqlite.dialect()
    )

    found = sqlite_utc_time(text)

    assert found == expected
    assert found is not None and found.tzinfo is UTC


def test_none_reads_as_none() -> None:
    assert sqlite_utc_time(None) is None


def test_a_time_written_through_sqlalchemy_reads_back_equal_and_utc() -> None:
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    engine = create_engine("sqlite://")
    written = [
        datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, 3000, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    ]
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(insert(table), [{"id": i, "at": at} for i, at in enumerate(written)])
        read = [row.at for row in conn.execute(select(table).order_by(table.c.id))]

    assert read == written
    assert all(at.tzinfo is UTC for at in read)

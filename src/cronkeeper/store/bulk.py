"""Statements for the hot write paths, compiled once per dialect and run as one
`executemany` on the driver, with each parameter converted by its column type's own bind
processor (so values are stored exactly as every other statement stores them).

Why: a Core `conn.execute(statement, [dict, …])` builds a cache key, looks up the
compiled form and runs SQLAlchemy's generic per-row parameter machinery on every call;
for the many small rows of a ping batch that costs several times what SQLite spends
writing them. Here the per-row work is one tuple of converted values.

On SQLite the two converters that matter most are replaced by equivalents that give the
very same stored text faster (tests/store/test_bulk.py compares them with SQLAlchemy's):
a UUID is its 32-digit hex (`Uuid` on SQLite), a `UTCDateTime` the naive UTC text
`YYYY-MM-DD HH:MM:SS.ffffff`. `prepared` hands out the SQL and the converted rows for a
caller that runs them on the driver itself (store/sqlite_driver.py `run_on_thread`).

A caller that builds many rows from few values can go further: it asks a `ValueForm`
for each value once, already as SQLite stores it (`SQLITE_VALUES`), and hands the rows to
`arranged`, which only puts them in the statement's parameter order; `PYTHON_VALUES`
gives the same rows as plain Python values, for `execute` or `prepared` to convert.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from operator import attrgetter, itemgetter
from typing import Any

from sqlalchemy import Dialect, Uuid
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from cronkeeper.domain.ids import uuid7, uuid7_int
from cronkeeper.store.types import UTCDateTime

Processor = Callable[[Any], Any] | None
#: The dialect that statements run on SQLite's own thread are prepared for (`prepared`).
SQLITE = SQLiteDialect_aiosqlite()


def sqlite_uuid(value: Any) -> str | None:
    """A UUID as SQLAlchemy's `Uuid` stores it on SQLite (32 lowercase hex digits)."""
    return None if value is None else str(value.hex)


def sqlite_time(value: datetime | None) -> str | None:
    """An aware time as `UTCDateTime` stores it on SQLite (naive UTC, microseconds).

    Recent answers are remembered: a ping's time fills several columns of several rows
    (equal aware times are the same instant, so they share one text)."""
    if value is None:
        return None
    text = _times.get(value)
    if text is None:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; every stored time is UTC")
        if len(_times) >= 4096:
            _times.clear()
        utc = value if value.tzinfo is UTC else value.astimezone(UTC)
        # The naive UTC text is the aware one less its "+00:00" (no naive copy to make).
        text = _times[value] = utc.isoformat(" ", "microseconds")[:26]
    return text


_times: dict[datetime, str] = {}


def sqlite_json(value: Any) -> str:
    """A value as `JSON` stores it on SQLite: `json.dumps` (None too: JSON `null`).

    A flat dict of strings (a ping's client, say) is written here without the encoder's
    per-call setup, to the very same text."""
    if type(value) is dict:
        try:
            return "{" + ", ".join([f"{_text(k)}: {_text(v)}" for k, v in value.items()]) + "}"
        except TypeError:  # a key or value that is not a string
            pass
    return json.dumps(value)


_text = encode_basestring_ascii


def sqlite_uuid7(at: datetime) -> str:
    """A fresh `uuid7(at)` as `Uuid` stores it on SQLite, with no UUID object made."""
    return f"{uuid7_int(at):032x}"


@dataclass(frozen=True)
class ValueForm:
    """How a caller hands its rows' values to a BulkStatement. `stored`: already as SQLite
    stores them (`SQLITE_VALUES`; rows go to `arranged`); otherwise as Python values,
    which `execute` and `prepared` convert on any dialect."""

    stored: bool
    id: Callable[[uuid.UUID], Any]
    new_id: Callable[[datetime], Any]  # a fresh UUIDv7 for that instant
    time: Callable[[datetime], Any]  # an aware time (never None)
    json: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


PYTHON_VALUES = ValueForm(False, _same, uuid7, _same, _same)
#: `sqlite_uuid` and `sqlite_time` for values that are never None.
SQLITE_VALUES = ValueForm(True, attrgetter("hex"), sqlite_uuid7, sqlite_time, sqlite_json)


def converter(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """How a value of `type_` becomes a driver parameter on `dialect` (None: as it is)."""
    if dialect.name == "sqlite":
        if isinstance(type_, UTCDateTime):
            return sqlite_time
        if isinstance(type_, Uuid) and type_.as_uuid:
            return sqlite_uuid
    return type_.dialect_impl(dialect).bind_processor(dialect)


def reader(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """How a stored value of `type_` on `dialect` is read, as SQLAlchemy reads it (the type's
    own result processor; None: as it is), for rows fetched on the driver itself."""
    return type_.dialect_impl(dialect).result_processor(dialect, None)


class BulkStatement:
    """`statement` executed with rows given as tuples in the order of `keys` (the
    statement's bind parameter names: column names for an INSERT)."""

    def __init__(self, statement: ClauseElement, keys: Sequence[str]) -> None:
        self.statement, self.keys = statement, tuple(keys)
        self._compiled: dict[str, _Plan] = {}

    async def execute(self, conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> None:
        """Run the statement once per row, in one driver call."""
        if rows:
            plan = self._plan(conn.dialect)
            await conn.exec_driver_sql(plan.sql, [plan.convert(row) for row in rows])

    def prepared(
        self, dialect: Dialect, rows: Sequence[Sequence[Any]]
    ) -> tuple[str, list[tuple[Any, ...]]]:
        """(the SQL text, the rows as driver parameters) for running it on the driver."""
        plan = self._plan(dialect)
        return plan.sql, [plan.convert(row) for row in rows]

    def arranged(
        self, dialect: Dialect, rows: Sequence[Sequence[Any]]
    ) -> tuple[str, Sequence[Sequence[Any]]]:
        """`prepared` for rows whose values are already driver parameters
        (`ValueForm.stored`): only put in the statement's parameter order."""
        plan = self._plan(dialect)
        return plan.sql, plan.arrange(rows)

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._compiled.get(dialect.name)
        if plan is None:
            plan = self._compiled[dialect.name] = _Plan.of(self.statement, self.keys, dialect)
        return plan


class _Plan:
    """The SQL text for one dialect and how a row becomes its positional parameters
    (the statement's own literal values, such as `status = 'running'`, ride along,
    converted once)."""

    def __init__(
        self,
        sql: str,
        positions: list[int],
        converters: list[Processor],
        constants: tuple[Any, ...],
        width: int,
    ) -> None:
        self.sql, self._constants = sql, constants
        self._steps = [(at, convert) for at, convert in enumerate(converters) if convert]
        self._pick = itemgetter(*positions) if len(positions) > 1 else None
        self._position = positions[0]
        # Rows of `width` values that are the parameters as they are (an INSERT of its keys).
        self._in_order = not constants and positions == list(range(width))

    @classmethod
    def of(cls, statement: ClauseElement, keys: tuple[str, ...], dialect: Dialect) -> _Plan:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
        index = {key: position for position, key in enumerate(keys)}
        constants: list[Any] = []
        positions = []
        converters: list[Processor] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            convert = converter(bind.type, dialect)
            if name not in index:  # a literal of the statement itself
                index[name] = len(keys) + len(constants)
                constants.append(convert(bind.effective_value) if convert else bind.effective_value)
            positions.append(index[name])
            converters.append(convert if index[name] < len(keys) else None)
        return cls(compiled.string, positions, converters, tuple(constants), len(keys))

    def convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if self._constants:
            row = (*row, *self._constants)
        values = list(self._pick(row)) if self._pick else [row[self._position]]
        for at, convert in self._steps:
            values[at] = convert(values[at])
        return tuple(values)

    def arrange(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """Rows of converted values, in the statement's parameter order."""
        if self._in_order:
            return rows
        if self._constants:
            rows = [(*row, *self._constants) for row in rows]
        if self._pick is None:
            return [(row[self._position],) for row in rows]
        return list(map(self._pick, rows))

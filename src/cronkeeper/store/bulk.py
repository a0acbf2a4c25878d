"""Statements for the hot write paths, compiled once per dialect and run as one
`executemany` on the driver, with each parameter converted by its column type's own bind
processor (so values are stored exactly as every other statement stores them).

Why: a Core `conn.execute(statement, [dict, …])` builds a cache key, looks up the
compiled form and runs SQLAlchemy's generic per-row parameter machinery on every call;
for the many small rows of a ping batch that costs several times what SQLite spends
writing them. Here the per-row work is one tuple of converted values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


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

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._compiled.get(dialect.name)
        if plan is None:
            plan = self._compiled[dialect.name] = _Plan.of(self.statement, self.keys, dialect)
        return plan


class _Plan:
    """The SQL text for one dialect and how a row becomes its positional parameters
    (the statement's own literal values, such as `status = 'running'`, ride along)."""

    def __init__(
        self,
        sql: str,
        positions: list[int],
        converters: list[Processor],
        constants: tuple[Any, ...],
    ) -> None:
        self.sql, self._converters, self._constants = sql, converters, constants
        self._pick = itemgetter(*positions) if len(positions) > 1 else None
        self._position = positions[0]

    @classmethod
    def of(cls, statement: ClauseElement, keys: tuple[str, ...], dialect: Dialect) -> _Plan:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None
        index = {key: position for position, key in enumerate(keys)}
        constants: list[Any] = []
        positions = []
        for name in compiled.positiontup:
            if name not in index:  # a literal of the statement itself
                index[name] = len(keys) + len(constants)
                constants.append(compiled.binds[name].effective_value)
            positions.append(index[name])
        converters: list[Processor] = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in compiled.positiontup
        ]
        return cls(compiled.string, positions, converters, tuple(constants))

    def convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if self._constants:
            row = (*row, *self._constants)
        values = self._pick(row) if self._pick else (row[self._position],)
        return tuple(
            [
                value if convert is None else convert(value)
                for convert, value in zip(self._converters, values, strict=True)
            ]
        )

"""Job functions the worker tests run as `python` jobs (`<this module>:<function>`)."""

from __future__ import annotations

from typing import Any


class ReportBroke(Exception):
    """A job's own exception type, to check `error_class` on the attempt."""


def explode() -> None:
    raise ReportBroke("the report template is missing")


def count_rows(table: str, ctx: Any) -> dict[str, Any]:
    ctx.log.info(f"counting {table}")
    return {"table": table, "rows": 3, "payload": ctx.payload, "attempt": ctx.attempt}

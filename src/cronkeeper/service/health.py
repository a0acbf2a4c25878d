"""Readiness: can we reach the database?"""

from __future__ import annotations

from cronkeeper.service.context import Context


async def database_problem(ctx: Context) -> str | None:
    """None when the database answers a trivial query, else a short reason."""
    try:
        await ctx.db.ping()
    except Exception as error:  # readiness must report any failure, not raise it
        return f"{type(error).__name__}: {str(error)[:200]}"
    return None

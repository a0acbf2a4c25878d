"""Test data written straight into the ledger: finished runs with attempts and events, as
the runtime would have recorded them (many at once, for the history-size tests).

The builder lives in `cronkeeper.testing` so that the benchmarks (bench/pages.py) seed
the same ledger without importing from tests/."""

from __future__ import annotations

from cronkeeper.testing import add_runs

__all__ = ["add_runs"]

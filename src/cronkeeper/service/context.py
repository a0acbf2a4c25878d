"""What every use case needs: the database, the clock and where the server is reached."""

from __future__ import annotations

from dataclasses import dataclass

from cronkeeper.clock import Clock, SystemClock
from cronkeeper.store.engine import Database


@dataclass(frozen=True)
class Context:
    db: Database
    clock: Clock = SystemClock()  # noqa: RUF009  (stateless; sharing it is fine)
    base_url: str = "http://127.0.0.1:8080"

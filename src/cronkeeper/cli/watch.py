"""`cronkeeper runs <slug> --watch`: every run of the job that ends after the watch began,
once, in the order the runs ended.

The runs API lists runs by creation (or slot), not by when they end, and has no "changed
since" query (DESIGN §3), so the tail keeps two things between polls:

- a creation window: each poll reads, oldest first and through every page, the job's
  runs created since `GRACE` before the newest one seen. A run whose row commits a little
  after a newer one (group commit, a slow transaction, another node) is still read; ids
  already settled are skipped. A run whose creation commits more than `GRACE` late is the
  one case the tail can miss.
- the runs seen queued, running or suspended (at the start, every such run of the job,
  however old). Once one is older than the window it is looked up by id, or, when there
  are many, through the lists of active runs (only those gone from them by id), until it
  ends.

The requests of a poll are bounded by the runs in the window and the active runs, never
by the job's history or by how long the watch has run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.client import Client
from cronkeeper.clock import Clock
from cronkeeper.errors import ClientError

Run = dict[str, Any]

ACTIVE = ("queued", "running", "suspended")
#: How far before the newest run seen each poll reads again (late commits, clock skew).
GRACE = timedelta(seconds=10)
#: Up to this many active runs older than the window are looked up one by one; more cost
#: the three active lists, and a lookup for each run gone from them.
BY_ID = 3
PAGE = 100
DETAIL_ONLY = ("attempt_details", "steps")  # what a run's own page adds to a listed run
#: The start reads the active lists twice over: a run moving between them (a retry goes
#: running → queued) would have to move twice within a few requests to be missed.
START_LISTS = (*ACTIVE, *ACTIVE[:2])


def moment(value: str) -> datetime:
    """An API timestamp as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def completion_order(runs: Iterable[Run]) -> list[Run]:
    """Runs in the order they ended (creation, then id, break ties)."""

    def key(run: Run) -> tuple[datetime, datetime, str]:
        created = moment(run["created_at"])
        ended = moment(run["finished_at"]) if run.get("finished_at") else created
        return ended, created, run["id"]

    return sorted(runs, key=key)


class Tail:
    """What the watch knows between polls: the runs settled (printed, or ended before the
    watch began), the runs seen active, and the newest creation seen.

    No I/O: the polls hand it the runs they read and print what `take` returns."""

    def __init__(self, grace: timedelta = GRACE) -> None:
        self.grace = grace
        self.settled: dict[str, datetime] = {}  # run id → created_at
        self.active: dict[str, datetime] = {}
        self.newest: datetime | None = None

    def window_start(self) -> datetime | None:
        """The creation instant the next poll reads from (None: the job's first run)."""
        return None if self.newest is None else self.newest - self.grace

    def note_created(self, run: Run) -> None:
        """Move the window up to this run's creation if it is the newest seen."""
        created = moment(run["created_at"])
        if self.newest is None or created > self.newest:
            self.newest = created

    def begin(self, runs: Iterable[Run]) -> list[Run]:
        """`take` for the read that starts the watch: a run that had ended by then is
        settled unprinted, unless an earlier read saw it active."""
        runs = list(runs)
        for run in runs:
            if run["status"] not in ACTIVE and run["id"] not in self.active:
                self.settled[run["id"]] = moment(run["created_at"])
        return self.take(runs)

    def take(self, runs: Iterable[Run]) -> list[Run]:
        """The runs that ended and were not settled yet, each now settled; every active
        run is remembered."""
        ended: dict[str, Run] = {}
        for run in runs:
            self.note_created(run)
            if run["id"] in self.settled:
                continue
            if run["status"] in ACTIVE:
                self.active[run["id"]] = moment(run["created_at"])
            else:
                ended[run["id"]] = run
        for run_id, run in ended.items():
            self.active.pop(run_id, None)
            self.settled[run_id] = moment(run["created_at"])
        return list(ended.values())

    def active_before(self, start: datetime | None) -> list[str]:
        """Active runs created before `start`, which a read of the window does not see."""
        return [i for i, created in self.active.items() if start is not None and created < start]

    def forget(self, run_id: str) -> None:
        """Stop following a run (it is gone from the ledger)."""
        self.active.pop(run_id, None)

    def forget_old(self) -> None:
        """Drop settled runs created before the window: no read returns them again."""
        start = self.window_start()
        if start is not None:
            self.settled = {i: at for i, at in self.settled.items() if at >= start}


async def ended_runs(
    client: Client, slug: str, shown: list[Run], clock: Clock, interval: float
) -> AsyncIterator[list[Run]]:
    """The job's runs that ended, in the order they ended: a batch as the watch begins,
    then one after each pause of `interval` on `clock`.

    The active runs in `shown` (what was printed as the watch began) are followed too."""
    tail = Tail(GRACE)
    tail.take(run for run in shown if run["status"] in ACTIVE)
    for status in START_LISTS:
        tail.take(await _all_pages(client, slug, status=status))
    for newest in (await client.list_runs(slug, limit=1))["items"]:
        tail.note_created(newest)
    ended = tail.begin(await _window(client, slug, tail.window_start()))
    while True:
        yield completion_order(ended)
        await clock.sleep(interval)
        start = tail.window_start()
        ended = tail.take(await _window(client, slug, start))
        ended += tail.take(await _looked_up(client, slug, tail, tail.active_before(start)))
        tail.forget_old()


async def _window(client: Client, slug: str, start: datetime | None) -> list[Run]:
    since = None if start is None else start.isoformat()
    return await _all_pages(client, slug, sort="created_at", order="asc", **{"from": since})


async def _looked_up(client: Client, slug: str, tail: Tail, run_ids: list[str]) -> list[Run]:
    """The runs as they are now; a run the ledger no longer has is forgotten."""
    if len(run_ids) > BY_ID:
        still = set()
        for status in ACTIVE:
            still |= {run["id"] for run in await _all_pages(client, slug, status=status)}
        run_ids = [run_id for run_id in run_ids if run_id not in still]
    found = []
    for run_id in run_ids:
        try:
            detail = await client.get_run(run_id)
        except ClientError as error:
            if error.status != 404:
                raise
            tail.forget(run_id)
        else:  # printed like the runs a list returns
            found.append({k: v for k, v in detail.items() if k not in DETAIL_ONLY})
    return found


async def _all_pages(client: Client, slug: str, **filters: Any) -> list[Run]:
    return [run async for run in client.iter_runs(slug, limit=PAGE, **filters)]

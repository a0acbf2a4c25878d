"""A batch of pings builds its rows in the form the store takes them in: on SQLite already
as SQLite stores them (`SQLITE_VALUES`), elsewhere as Python values that the statements
convert. Both forms of one batch give SQLite the very same parameters, and the batch
decides the same either way.

The batch covers starts (one superseding a stored run, one a run of the batch), finishes
of stored runs, of runs of the batch and with no start, a too-fast success, a failure by
exit status, log pings to an open run, to the batch's newest run, to the newest stored run
and to a job that never ran, bodies, pings without client or rid, and a job with a
max_runtime.

On SQLite the pinged jobs are read through a cache of their rows: a job edited between two
pings is read anew."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from cronkeeper.domain import ids
from cronkeeper.domain.models import Actor
from cronkeeper.domain.pings import OpenRun, Ping, PingAction, PingedJob
from cronkeeper.service import jobs as job_service
from cronkeeper.service import pings
from cronkeeper.service.context import Context
from cronkeeper.service.ping_batch import PingBatch
from cronkeeper.service.projects import ensure_project
from cronkeeper.store import pings as ping_store
from cronkeeper.store.bulk import PYTHON_VALUES, SQLITE_VALUES, ValueForm
from cronkeeper.testing import FakeClock

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
PROJECT = uuid.uuid4()
PLAIN, QUICK, LONG, IDLE = (
    PingedJob(uuid.uuid4(), PROJECT, "default", slug, "heartbeat", "active", "default", *limits)
    for slug, limits in [
        ("plain", (None, None)),
        ("quick", (30.0, None)),
        ("long", (None, 60.0)),
        ("idle", (None, None)),
    ]
)
STORED = OpenRun(uuid.uuid4(), None, T0 - timedelta(minutes=5), 3)
STORED_RID = OpenRun(uuid.uuid4(), "r1", T0 - timedelta(minutes=1), 2)
LATEST = uuid.uuid4()  # IDLE's newest stored run, finished
CLIENT = {"method": "POST", "remote_addr": "::1", "user_agent": 'naïve "ua" \U0001f680'}

S, START, F, LOG = PingAction.SUCCESS, PingAction.START, PingAction.FAIL, PingAction.LOG
PINGS: list[tuple[PingedJob, PingAction, dict[str, Any]]] = [
    (PLAIN, LOG, {"body": "to the stored open run"}),
    (PLAIN, START, {}),  # supersedes STORED
    (QUICK, S, {"rid": "r1"}),  # closes STORED_RID: slower than 30 s
    (QUICK, START, {"rid": "r2"}),
    (QUICK, S, {"rid": "r2", "client": {}}),  # too fast: a run of this batch
    (LONG, START, {"body": "hello"}),
    (LONG, START, {"rid": "r3"}),
    (LONG, F, {"exit_status": 3}),  # closes the first LONG run of the batch
    (LONG, LOG, {"rid": "r9"}),  # no open run with r9: the batch's newest run
    (IDLE, LOG, {}),  # the newest stored run
    (IDLE, S, {"exit_status": 0}),  # no start: a run that starts and ends at once
    (IDLE, LOG, {"body": "x" * 10}),
    (PLAIN, S, {}),
    (PLAIN, LOG, {}),
]


def decided(form: ValueForm, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], Any]:
    """Every ping of PINGS through one batch whose rows are in `form`; the same random
    ids whatever the form."""
    rng = random.Random(7)
    monkeypatch.setattr(ids, "os", SimpleNamespace(urandom=rng.randbytes))
    open_runs = {PLAIN.id: [STORED], QUICK.id: [STORED_RID]}
    batch = PingBatch(open_runs, {IDLE.id: (LATEST, 8)}, form)
    results = []
    for step, (job, action, fields) in enumerate(PINGS):
        at = T0 + timedelta(seconds=7 * step, microseconds=step)
        ping = Ping(action, at, **{"client": dict(CLIENT), **fields})
        results.append(batch.add(job, ping))
    return results, batch.rows()


def test_both_forms_of_a_batch_give_sqlite_the_same_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    python_results, python_rows = decided(PYTHON_VALUES, monkeypatch)
    sqlite_results, sqlite_rows = decided(SQLITE_VALUES, monkeypatch)

    assert sqlite_results == python_results
    stored = ping_store.sqlite_parameters(sqlite_rows)
    assert stored == ping_store.sqlite_parameters(python_rows)
    assert len(stored) == 6  # every statement has rows
    statuses = [row[4] for row in sqlite_rows.runs] + [row[0] for row in sqlite_rows.closings]
    assert sorted(statuses) == ["cancelled", "failed", "failed", "running"] + ["succeeded"] * 3
    numbers = [(row[0], row[1]) for row in sqlite_rows.events]
    assert len(set(numbers)) == len(numbers)  # each event its own number in its run
    assert (STORED.id.hex, 4) in numbers and (LATEST.hex, 9) in numbers


async def test_a_job_edited_between_pings_is_read_anew(
    ctx: Context, clock: FakeClock, admin: Actor
) -> None:
    async with ctx.db.write() as conn:
        await ensure_project(conn, "default", clock.now())
    body = {"slug": "quick", "kind": "heartbeat", "min_runtime": 60}
    created = await job_service.create_job(ctx, admin, "default", body)
    assert created.ping_uuid is not None
    code = uuid.UUID(created.ping_uuid)

    async def run_of_ten_seconds() -> pings.PingResult:
        await pings.record_ping(ctx, pings.PingRequest(Ping(START, clock.now()), code))
        clock.advance(10)
        return await pings.record_ping(ctx, pings.PingRequest(Ping(S, clock.now()), code))

    too_fast = await run_of_ten_seconds()
    await job_service.update_job(ctx, admin, "default", "quick", {"min_runtime": 5})
    fine = await run_of_ten_seconds()

    assert (too_fast.finished, fine.finished) == ("failed", "succeeded")
    assert fine.job.min_runtime == 5

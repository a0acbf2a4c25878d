"""Runs through HTTP: history per job and project-wide (filters, sorts, keyset pages that
stay put while runs arrive), one run with its attempts, its event log, manual triggers
(rate limited per job), replay, cancel, who may do it, and the audit trail — on SQLite
and PostgreSQL.

The fake clock stands at 2026-03-01 12:00 UTC. Runs for the list tests are inserted
straight into the ledger (the store is not mocked), each at its own instant.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cronkeeper.domain.states import RunStatus
from cronkeeper.service.context import Context
from cronkeeper.service.execution import new_run_values
from cronkeeper.store import jobs as job_store
from cronkeeper.store import projects as project_store
from cronkeeper.store import runs as run_store
from cronkeeper.testing import FakeClock

from .conftest import AUDIT, JOBS, PROBLEM_JSON, Keys, bearer

RUNS = "/api/v1/projects/default/runs"
NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def job_runs(slug: str) -> str:
    return f"{JOBS}/{slug}/runs"


def trigger_url(slug: str) -> str:
    return f"{JOBS}/{slug}/trigger"


def command_job(slug: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": slug,
        "kind": "command",
        "schedule": "0 3 * * *",
        "target": {"command": ["pg_dump", "app"]},
        "retry": {"max_attempts": 4},
    }
    body.update(fields)
    return body


async def create_job(api: httpx.AsyncClient, slug: str, **fields: Any) -> None:
    response = await api.post(JOBS, json=command_job(slug, **fields))
    assert response.status_code == 201, response.text


async def add_run(
    ctx: Context,
    slug: str,
    *,
    at: datetime,
    source: str = "schedule",
    status: RunStatus = RunStatus.QUEUED,
    scheduled_for: datetime | None = None,
    **columns: Any,
) -> str:
    """A run of job `slug` created at `at`, written directly to the ledger; its id."""
    async with ctx.db.write() as conn:
        project = await project_store.get_project(conn, "default")
        assert project is not None
        job = await job_store.get_job(conn, project.id, slug)
        assert job is not None
        values = new_run_values(
            project.id,
            job.id,
            job.spec,
            source=source,
            now=at,
            scheduled_for=scheduled_for,
            status=status,
        )
        values.update(columns)
        run = await run_store.insert_run(conn, values)
    return str(run.id)


async def items(api: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(url, params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]["items"]
    return found


async def ids(api: httpx.AsyncClient, url: str, **params: Any) -> list[str]:
    return [run["id"] for run in await items(api, url, **params)]


async def trigger(api: httpx.AsyncClient, slug: str, **options: Any) -> dict[str, Any]:
    response = await api.post(trigger_url(slug), **options)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()["data"]
    return run


async def audit(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(AUDIT, params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["data"]["items"]
    return entries


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["detail"]
    return problem


def field_names(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem["errors"]]


@pytest.fixture
async def five_runs(api: httpx.AsyncClient, ctx: Context) -> list[str]:
    """Job `backup` with five runs created a minute apart (oldest first)."""
    await create_job(api, "backup")
    return [await add_run(ctx, "backup", at=NOON + timedelta(minutes=i)) for i in range(5)]


# --- history ---------------------------------------------------------------------------------


async def test_a_jobs_runs_come_newest_first_in_a_list_envelope(
    api: httpx.AsyncClient, five_runs: list[str]
) -> None:
    response = await api.get(job_runs("backup"))

    assert response.status_code == 200
    assert set(response.json()) == {"data"}
    page = response.json()["data"]
    assert set(page) == {"items", "next_cursor"}
    assert [run["id"] for run in page["items"]] == five_runs[::-1]
    assert page["next_cursor"] is None
    assert {run["job"] for run in page["items"]} == {"backup"}


async def test_a_run_in_a_list_has_every_documented_field(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "backup")
    await add_run(ctx, "backup", at=NOON, scheduled_for=NOON - timedelta(seconds=1))

    [run] = await items(api, job_runs("backup"))

    assert {
        "id",
        "job",
        "source",
        "status",
        "scheduled_for",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "drift_ms",
        "attempts",
        "max_attempts",
        "failure_reason",
        "error",
        "payload",
        "trace_id",
        "replay_of",
        "node",
    } <= set(run)
    assert run["source"] == "schedule"
    assert run["status"] == "queued"
    assert datetime.fromisoformat(run["scheduled_for"]) == NOON - timedelta(seconds=1)
    assert (run["attempts"], run["max_attempts"]) == (0, 4)
    assert len(run["trace_id"]) == 32


async def test_a_jobs_list_holds_only_that_jobs_runs(api: httpx.AsyncClient, ctx: Context) -> None:
    await create_job(api, "backup")
    await create_job(api, "report")
    mine = await add_run(ctx, "backup", at=NOON)
    await add_run(ctx, "report", at=NOON + timedelta(seconds=1))

    assert await ids(api, job_runs("backup")) == [mine]


async def test_the_project_list_holds_every_jobs_runs(api: httpx.AsyncClient, ctx: Context) -> None:
    await create_job(api, "backup")
    await create_job(api, "report")
    first = await add_run(ctx, "backup", at=NOON)
    second = await add_run(ctx, "report", at=NOON + timedelta(seconds=1))

    runs = await items(api, RUNS)

    assert [(run["id"], run["job"]) for run in runs] == [(second, "report"), (first, "backup")]


async def test_the_job_filter_matches_slug_or_name_substrings_ignoring_case(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "db-backup", name="Nightly dump")
    await create_job(api, "report", name="Weekly REPORT")
    backup = await add_run(ctx, "db-backup", at=NOON)
    report = await add_run(ctx, "report", at=NOON + timedelta(seconds=1))

    assert await ids(api, RUNS, job="BACKUP") == [backup]
    assert await ids(api, RUNS, job="nightly") == [backup]
    assert await ids(api, RUNS, job="weekly rep") == [report]
    assert await ids(api, RUNS, job="P") == [report, backup]
    assert await ids(api, RUNS, job="nothing-like-it") == []


async def test_runs_filter_by_status_and_by_source(api: httpx.AsyncClient, ctx: Context) -> None:
    await create_job(api, "backup")
    queued = await add_run(ctx, "backup", at=NOON)
    failed = await add_run(
        ctx,
        "backup",
        at=NOON + timedelta(seconds=1),
        source="manual",
        status=RunStatus.FAILED,
        failure_reason="exit_code",
    )
    await add_run(ctx, "backup", at=NOON + timedelta(seconds=2), status=RunStatus.SUCCEEDED)

    assert await ids(api, job_runs("backup"), status="failed") == [failed]
    assert await ids(api, RUNS, status="queued") == [queued]
    assert await ids(api, job_runs("backup"), source="manual") == [failed]
    assert await ids(api, RUNS, source="manual", status="queued") == []
    [run] = await items(api, RUNS, status="failed")
    assert run["failure_reason"] == "exit_code"
    assert run["failure_explanation"]


async def test_an_unknown_status_or_source_is_rejected_naming_the_parameter(
    api: httpx.AsyncClient, five_runs: list[str]
) -> None:
    for name in ("status", "source", "sort", "order"):
        response = await api.get(RUNS, params={name: "bogus"})
        problem = assert_problem(response, 422)
        assert any(name in field for field in field_names(problem)), problem


async def test_from_is_inclusive_and_to_exclusive_on_the_creation_time(
    api: httpx.AsyncClient, five_runs: list[str]
) -> None:
    window = {"from": "2026-03-01T12:01:00Z", "to": "2026-03-01T12:03:00Z"}

    assert await ids(api, job_runs("backup"), **window) == [five_runs[2], five_runs[1]]
    assert await ids(api, RUNS, **{"from": "2026-03-01T13:03:00+01:00"}) == five_runs[:2:-1]
    assert await ids(api, RUNS, to="2026-03-01T12:01:00Z") == [five_runs[0]]


async def test_a_time_without_a_timezone_is_rejected(
    api: httpx.AsyncClient, five_runs: list[str]
) -> None:
    response = await api.get(RUNS, params={"from": "2026-03-01T12:00:00"})

    assert_problem(response, 422)


async def test_sorting_by_slot_orders_by_scheduled_for_and_falls_back_to_creation(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "backup")
    # Created in one order, scheduled in another; the manual run has no slot.
    late_slot = await add_run(ctx, "backup", at=NOON, scheduled_for=NOON + timedelta(hours=2))
    early_slot = await add_run(
        ctx, "backup", at=NOON + timedelta(minutes=1), scheduled_for=NOON - timedelta(hours=1)
    )
    manual = await add_run(ctx, "backup", at=NOON + timedelta(minutes=2), source="manual")

    by_creation = await ids(api, job_runs("backup"), sort="created_at")
    by_slot = await ids(api, job_runs("backup"), sort="scheduled_for")
    by_slot_ascending = await ids(api, job_runs("backup"), sort="scheduled_for", order="asc")

    assert by_creation == [manual, early_slot, late_slot]
    assert by_slot == [late_slot, manual, early_slot]
    assert by_slot_ascending == [early_slot, manual, late_slot]


async def test_order_asc_lists_oldest_first(api: httpx.AsyncClient, five_runs: list[str]) -> None:
    assert await ids(api, job_runs("backup"), order="asc") == five_runs


async def test_limit_bounds_the_page_and_is_checked(
    api: httpx.AsyncClient, five_runs: list[str]
) -> None:
    assert await ids(api, RUNS, limit=2) == five_runs[:2:-1][:2]
    for bad in (0, 101, "many"):
        problem = assert_problem(await api.get(RUNS, params={"limit": bad}), 422)
        assert any("limit" in field for field in field_names(problem))


async def collect_pages(
    api: httpx.AsyncClient, url: str, between: Any = None, **params: Any
) -> list[list[str]]:
    """Every page's run ids, following `next_cursor`; `between()` runs after each page."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(url, params=query)
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        pages.append([run["id"] for run in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        if between is not None:
            await between()


async def test_pages_cover_every_run_once_in_order(api: httpx.AsyncClient, ctx: Context) -> None:
    await create_job(api, "backup")
    # Seven manual runs share one instant (and so one sort key whatever the sort): the id
    # breaks the tie, so no page boundary loses or repeats one.
    created = [await add_run(ctx, "backup", at=NOON, source="manual") for _ in range(7)]
    created += [
        await add_run(ctx, "backup", at=NOON + timedelta(seconds=i), scheduled_for=NOON + slot)
        for i, slot in enumerate(timedelta(minutes=m) for m in (-5, 5, 0, -1, 1))
    ]

    for sort in ("created_at", "scheduled_for"):
        for order in ("desc", "asc"):
            pages = await collect_pages(api, job_runs("backup"), sort=sort, order=order, limit=3)

            flat = [run_id for page in pages for run_id in page]
            assert [len(page) for page in pages] == [3, 3, 3, 3], (sort, order)
            assert sorted(flat) == sorted(created)
            everything = await ids(api, job_runs("backup"), sort=sort, order=order, limit=100)
            assert flat == everything, (sort, order)


async def test_the_cursor_is_stable_while_new_runs_arrive_between_pages(
    api: httpx.AsyncClient, ctx: Context, clock: FakeClock
) -> None:
    for sort in ("created_at", "scheduled_for"):
        for order in ("desc", "asc"):
            slug = f"job-{sort.replace('_', '-')}-{order}"
            await create_job(api, slug)
            original = [
                await add_run(ctx, slug, at=NOON + timedelta(seconds=i), source="manual")
                for i in range(10)
            ]
            arrived: list[str] = []

            async def new_runs_arrive(slug: str = slug, arrived: list[str] = arrived) -> None:
                """A manual run created later than all, and a slot in the middle of them."""
                clock.advance(1)
                arrived.append(await add_run(ctx, slug, at=clock.now() + timedelta(hours=1)))
                middle = NOON + timedelta(seconds=4.5) + timedelta(microseconds=len(arrived))
                arrived.append(
                    await add_run(
                        ctx, slug, at=clock.now() + timedelta(hours=1), scheduled_for=middle
                    )
                )

            pages = await collect_pages(
                api, job_runs(slug), between=new_runs_arrive, sort=sort, order=order, limit=3
            )

            flat = [run_id for page in pages for run_id in page]
            assert len(flat) == len(set(flat)), f"a run was listed twice ({sort} {order})"
            seen_original = [run_id for run_id in flat if run_id in original]
            expected = original[::-1] if order == "desc" else original
            assert seen_original == expected, f"a run went missing or moved ({sort} {order})"
            if sort == "created_at" and order == "desc":
                assert not set(flat) & set(arrived)  # newer runs never push older ones along


async def test_a_cursor_this_server_did_not_issue_is_rejected_naming_the_cursor(
    api: httpx.AsyncClient, five_runs: list[str]
) -> None:
    for forged in ("not-a-cursor", "eyJhdCI6IngiLCJpZCI6InkifQ", "e30"):
        problem = assert_problem(await api.get(RUNS, params={"cursor": forged}), 422)
        assert field_names(problem) == ["cursor"]


async def test_the_runs_of_an_unknown_job_are_404(api: httpx.AsyncClient) -> None:
    problem = assert_problem(await api.get(job_runs("no-such-job")), 404)

    assert problem["type"] == "/problems/not-found"


# --- one run, its attempts and events --------------------------------------------------------


async def test_run_detail_has_the_attempts_with_codes_previews_and_explanations(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "backup")
    run_id = await add_run(
        ctx,
        "backup",
        at=NOON,
        status=RunStatus.FAILED,
        attempts=2,
        failure_reason="exit_code",
        error="exit status 3",
    )
    async with ctx.db.write() as conn:
        await run_store.insert_attempts(
            conn,
            [
                {
                    "run_id": uuid.UUID(run_id),
                    "number": number,
                    "status": "exit_error",
                    "failure_reason": "exit_code",
                    "exit_code": code,
                    "latency_ms": 10 * number,
                    "body_preview": f"pg_dump: error {code}\n",
                    "error": f"exit status {code}",
                    "started_at": NOON + timedelta(seconds=number),
                    "finished_at": NOON + timedelta(seconds=number, milliseconds=10),
                }
                for number, code in ((1, 2), (2, 3))
            ],
        )

    response = await api.get(f"{RUNS}/{run_id}")

    assert response.status_code == 200, response.text
    run = response.json()["data"]
    assert run["id"] == run_id
    assert run["job"] == "backup"
    assert run["status"] == "failed"
    assert run["failure_reason"] == "exit_code"
    assert run["failure_explanation"]
    assert run["steps"] == []
    first, second = run["attempt_details"]
    assert (first["number"], first["exit_code"], first["latency_ms"]) == (1, 2, 10)
    assert (second["number"], second["exit_code"]) == (2, 3)
    assert second["body_preview"] == "pg_dump: error 3\n"
    assert second["failure_reason"] == "exit_code"
    assert second["failure_explanation"] == run["failure_explanation"]
    assert second["status"] == "exit_error"


async def test_events_come_in_sequence_order_and_after_continues_from_a_number(
    api: httpx.AsyncClient, ctx: Context, clock: FakeClock
) -> None:
    await create_job(api, "backup")
    run = await trigger(api, "backup")
    async with ctx.db.write() as conn:
        await run_store.append_events(
            conn,
            uuid.UUID(run["id"]),
            [
                ("attempt_started", clock.now(), "attempt 1 of 4 started", None),
                ("log", clock.now(), "dumping", {"level": "info"}),
                ("attempt_succeeded", clock.now(), "attempt 1 succeeded", {"attempt": 1}),
            ],
        )

    response = await api.get(f"{RUNS}/{run['id']}/events")
    after = await items(api, f"{RUNS}/{run['id']}/events", after=2)

    assert response.status_code == 200
    events = response.json()["data"]["items"]
    assert [e["sequence_num"] for e in events] == [1, 2, 3, 4]
    assert [e["type"] for e in events] == [
        "run_queued",
        "attempt_started",
        "log",
        "attempt_succeeded",
    ]
    assert events[2]["data"] == {"level": "info"}
    assert [e["sequence_num"] for e in after] == [3, 4]
    assert await items(api, f"{RUNS}/{run['id']}/events", after=4) == []


async def test_an_unknown_or_malformed_run_id_is_404_for_every_run_route(
    api: httpx.AsyncClient,
) -> None:
    routes = (("GET", ""), ("GET", "/events"), ("POST", "/replay"), ("POST", "/cancel"))
    for run_ref in (str(uuid.UUID(int=1)), "not-a-uuid", "123", "x" * 300):
        for method, suffix in routes:
            response = await api.request(method, f"{RUNS}/{run_ref}{suffix}")
            problem = assert_problem(response, 404)
            assert problem["type"] == "/problems/not-found", (method, suffix, run_ref)


async def test_a_run_of_another_project_is_not_found_there(
    client: httpx.AsyncClient, api: httpx.AsyncClient, keys: Keys, five_runs: list[str]
) -> None:
    other = bearer(keys.other)
    response = await client.get(f"/api/v1/projects/other/runs/{five_runs[0]}", headers=other)

    assert_problem(response, 404)


# --- trigger ---------------------------------------------------------------------------------


async def test_triggering_a_job_queues_a_manual_run_now(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    await create_job(api, "backup")

    response = await api.post(trigger_url("backup"))

    assert response.status_code == 201, response.text
    run = response.json()["data"]
    assert run["source"] == "manual"
    assert run["status"] == "queued"
    assert run["job"] == "backup"
    assert run["scheduled_for"] is None
    assert datetime.fromisoformat(run["queued_at"]) == clock.now()
    assert (run["attempts"], run["max_attempts"]) == (0, 4)
    assert run["payload"] is None
    assert await ids(api, job_runs("backup")) == [run["id"]]
    events = await items(api, f"{RUNS}/{run['id']}/events")
    assert [(e["sequence_num"], e["type"]) for e in events] == [(1, "run_queued")]


async def test_a_trigger_payload_is_stored_as_the_runs_input(api: httpx.AsyncClient) -> None:
    await create_job(api, "backup")

    run = await trigger(api, "backup", json={"payload": {"tables": ["users"], "full": True}})

    assert run["payload"] == {"input": {"tables": ["users"], "full": True}}
    stored = (await api.get(f"{RUNS}/{run['id']}")).json()["data"]
    assert stored["payload"] == {"input": {"tables": ["users"], "full": True}}


async def test_an_empty_trigger_body_and_an_empty_object_both_mean_no_payload(
    api: httpx.AsyncClient,
) -> None:
    await create_job(api, "backup")

    assert (await trigger(api, "backup", content=b""))["payload"] is None
    assert (await trigger(api, "backup", json={}))["payload"] is None


async def test_a_bad_trigger_body_is_rejected_naming_the_body(api: httpx.AsyncClient) -> None:
    await create_job(api, "backup")
    bad = {
        b"{not json": 400,
        b'{"payloads": {"x": 1}}': 422,
        b'{"payload": 1, "extra": 2}': 422,
        b"[1, 2]": 422,
        b'"just a string"': 422,
    }

    for body, status in bad.items():
        response = await api.post(
            trigger_url("backup"), content=body, headers={"content-type": "application/json"}
        )
        problem = assert_problem(response, status)
        assert field_names(problem) == ["body"], body

    assert await ids(api, job_runs("backup")) == []


async def test_triggering_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    assert_problem(await api.post(trigger_url("no-such-job")), 404)


async def test_triggers_past_the_burst_are_429_with_retry_after_until_time_passes(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    await create_job(api, "backup")
    await create_job(api, "report")
    for _ in range(5):
        await trigger(api, "backup")

    refused = await api.post(trigger_url("backup"))

    problem = assert_problem(refused, 429)
    assert problem["type"] == "/problems/rate-limited"
    assert int(refused.headers["retry-after"]) == 2
    assert len(await ids(api, job_runs("backup"))) == 5
    await trigger(api, "report")  # the limit is per job
    clock.advance(1.0)
    assert_problem(await api.post(trigger_url("backup")), 429)
    clock.advance(1.0)
    await trigger(api, "backup")
    assert len(await ids(api, job_runs("backup"))) == 6
    assert_problem(await api.post(trigger_url("backup")), 429)


# --- replay ----------------------------------------------------------------------------------


async def test_replay_queues_a_new_run_with_the_same_input_and_leaves_the_original(
    api: httpx.AsyncClient, ctx: Context
) -> None:
    await create_job(api, "backup")
    original_id = await add_run(
        ctx,
        "backup",
        at=NOON - timedelta(hours=1),
        scheduled_for=NOON - timedelta(hours=1),
        status=RunStatus.FAILED,
        failure_reason="exit_code",
        payload={"input": {"tables": ["users"]}, "request": {"command": ["pg_dump"]}},
    )
    before = (await api.get(f"{RUNS}/{original_id}")).json()["data"]

    response = await api.post(f"{RUNS}/{original_id}/replay")

    assert response.status_code == 201, response.text
    replay = response.json()["data"]
    assert replay["id"] != original_id
    assert replay["source"] == "replay"
    assert replay["replay_of"] == original_id
    assert replay["status"] == "queued"
    assert replay["scheduled_for"] is None
    assert replay["payload"] == {"input": {"tables": ["users"]}}
    assert (await api.get(f"{RUNS}/{original_id}")).json()["data"] == before
    assert await ids(api, job_runs("backup"), source="replay") == [replay["id"]]
    [event] = await items(api, f"{RUNS}/{replay['id']}/events")
    assert event["type"] == "run_queued"
    assert original_id in event["message"]


# --- cancel ----------------------------------------------------------------------------------


async def test_cancelling_a_queued_run_makes_it_cancelled_and_a_second_cancel_is_409(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    await create_job(api, "backup")
    run = await trigger(api, "backup")
    clock.advance(3)

    response = await api.post(f"{RUNS}/{run['id']}/cancel")

    assert response.status_code == 200, response.text
    cancelled = response.json()["data"]
    assert cancelled["status"] == "cancelled"
    assert datetime.fromisoformat(cancelled["finished_at"]) == clock.now()
    events = await items(api, f"{RUNS}/{run['id']}/events")
    assert [e["type"] for e in events] == ["run_queued", "run_cancelled"]
    assert "writer" in events[-1]["message"]

    again = await api.post(f"{RUNS}/{run['id']}/cancel")

    problem = assert_problem(again, 409)
    assert "cancelled" in problem["detail"]
    assert len(await items(api, f"{RUNS}/{run['id']}/events")) == 2


async def test_a_final_run_cannot_be_cancelled(api: httpx.AsyncClient, ctx: Context) -> None:
    await create_job(api, "backup")
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.MISSED):
        run_id = await add_run(ctx, "backup", at=NOON, status=status)

        assert_problem(await api.post(f"{RUNS}/{run_id}/cancel"), 409)
        assert (await api.get(f"{RUNS}/{run_id}")).json()["data"]["status"] == status.value


# --- who may act, and the audit trail --------------------------------------------------------


async def test_a_read_key_sees_runs_but_cannot_trigger_replay_or_cancel_and_each_refusal_is_audited(
    client: httpx.AsyncClient, api: httpx.AsyncClient, ctx: Context, keys: Keys
) -> None:
    await create_job(api, "backup")
    run_id = await add_run(ctx, "backup", at=NOON)
    reader = bearer(keys.read)

    assert (await client.get(RUNS, headers=reader)).status_code == 200
    assert (await client.get(f"{RUNS}/{run_id}", headers=reader)).status_code == 200
    refusals = [
        await client.post(trigger_url("backup"), headers=reader),
        await client.post(f"{RUNS}/{run_id}/replay", headers=reader),
        await client.post(f"{RUNS}/{run_id}/cancel", headers=reader),
    ]

    for response in refusals:
        assert assert_problem(response, 403)["type"] == "/problems/forbidden"
    assert await ids(api, job_runs("backup")) == [run_id]
    failed = {(e["action"], e["target"]): e for e in await audit(api, outcome="failed")}
    assert set(failed) == {
        ("job.trigger", "job:backup"),
        ("run.replay", f"run:{run_id}"),
        ("run.cancel", f"run:{run_id}"),
    }
    for entry in failed.values():
        assert entry["actor"] == "reader"
        assert "read" in entry["detail"]


async def test_trigger_replay_and_cancel_are_audited_with_the_new_run(
    api: httpx.AsyncClient,
) -> None:
    await create_job(api, "backup")
    run = await trigger(api, "backup")
    replay = (await api.post(f"{RUNS}/{run['id']}/replay")).json()["data"]
    assert (await api.post(f"{RUNS}/{replay['id']}/cancel")).status_code == 200

    entries = {e["action"]: e for e in await audit(api, outcome="success", action="job.trigger")}
    entries |= {e["action"]: e for e in await audit(api, action="run.")}

    trigger_entry = entries["job.trigger"]
    assert (trigger_entry["target"], trigger_entry["actor"]) == ("job:backup", "writer")
    assert trigger_entry["diff"] == {"run": [None, run["id"]]}
    assert entries["run.replay"]["target"] == f"run:{run['id']}"
    assert entries["run.replay"]["diff"] == {"run": [None, replay["id"]]}
    assert entries["run.cancel"]["target"] == f"run:{replay['id']}"
    assert entries["run.cancel"]["diff"] == {"status": ["queued", "cancelled"]}
    assert {e["outcome"] for e in entries.values()} == {"success"}


async def test_a_rate_limited_trigger_is_audited_as_failed(api: httpx.AsyncClient) -> None:
    await create_job(api, "backup")
    for _ in range(5):
        await trigger(api, "backup")
    assert (await api.post(trigger_url("backup"))).status_code == 429

    [entry] = await audit(api, outcome="failed", action="job.trigger")

    assert entry["target"] == "job:backup"
    assert "too often" in entry["detail"]

"""The notifier on both databases, with real peers and a fake clock: alerts become
notifications, deliveries are retried, permanent errors disable channels, rate limits
delay, and alerts whose job recovered within the delay are cancelled."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest

from cronkeeper.domain import notifications
from cronkeeper.domain.models import Actor
from cronkeeper.domain.notifications import SendWindow
from cronkeeper.runtime.notifier import Notifier
from cronkeeper.service.context import Context
from cronkeeper.store.tables import attempts, jobs, runs
from cronkeeper.testing import FakeClock

from .conftest import (
    add_alert,
    alert_row,
    channel_row,
    make_channel,
    make_job,
    notification_rows,
    pass_once,
    set_state,
)
from .peers import Receiver


async def test_a_down_alert_is_posted_to_the_jobs_webhook_as_the_default_json(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "ops-webhook", "webhook", {"url": receiver.url("/hook")})
    job = await make_job(ctx, admin, "backup", channels=["ops-webhook"])
    other = await make_job(ctx, admin, "reports")  # also down: listed as another failing job
    await set_state(ctx, other, "down")
    alert = await add_alert(ctx, job, "down", reason="missed")

    assert await pass_once(notifier) == 1

    [body] = receiver.bodies("/hook")
    assert json.loads(body) == {
        "event": "down",
        "job": {
            "slug": "backup",
            "name": "Job backup",
            "url": "http://cronkeeper.test/jobs/backup",
        },
        "status": "down",
        "reason": "missed",
        "run": None,
        "failing_jobs": [
            {
                "slug": "reports",
                "name": "Job reports",
                "url": "http://cronkeeper.test/jobs/reports",
                "down_since": "2026-03-01T12:00:00Z",
            }
        ],
        "down_for_s": 0.0,
    }
    row = await alert_row(ctx, alert)
    assert row["outcome"] == "sent" and row["processed_at"] is not None
    [sent] = await notification_rows(ctx)
    assert (sent["status"], sent["attempts"], sent["error"]) == ("sent", 1, None)
    assert sent["latency_ms"] is not None and sent["sent_at"] == ctx.clock.now()
    exposition = ctx.metrics.exposition().decode()
    assert 'cronkeeper_alert_dispatch_seconds_count{kind="webhook"} 1.0' in exposition


async def test_the_run_its_failure_explanation_and_output_tail_reach_the_message(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    job = await make_job(ctx, admin, "etl")
    run_id = uuid.uuid4()
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        project_id = (
            (await conn.execute(jobs.select().where(jobs.c.id == job)))
            .mappings()
            .one()["project_id"]
        )
        await conn.execute(
            runs.insert().values(
                id=run_id, project_id=project_id, job_id=job, source="heartbeat",
                status="failed", failure_reason="exit_code", error="exit status 3",
                created_at=now, ordered_at=now, started_at=now, finished_at=now, duration_ms=1500,
            )
        )  # fmt: skip
        await conn.execute(
            attempts.insert().values(
                id=uuid.uuid4(), run_id=run_id, number=1, status="exit_error",
                body_preview="line 1\nboom: disk full", started_at=now,
            )
        )  # fmt: skip
    await add_alert(ctx, job, "down", reason="failed", run_id=run_id)
    await pass_once(notifier)
    run = json.loads(receiver.bodies()[0])["run"]
    assert run["id"] == str(run_id) and run["status"] == "failed"
    assert run["failure_reason"] == "exit_code"
    assert run["failure_explanation"] == "The command exited with a non-zero exit code."
    assert run["output_tail"] == "line 1\nboom: disk full"
    assert run["duration_ms"] == 1500 and run["error"] == "exit status 3"


async def test_an_up_message_says_how_long_the_job_was_down(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    job = await make_job(ctx, admin, "backup")
    await add_alert(ctx, job, "down")
    await pass_once(notifier)
    clock.advance(2 * 3600 + 300)
    await set_state(ctx, job, "up")
    await add_alert(ctx, job, "up", reason="success")
    await pass_once(notifier)
    up = json.loads(receiver.bodies()[1])
    assert up["event"] == "up" and up["status"] == "up"
    assert up["down_for_s"] == 7500.0


async def test_a_down_alert_whose_job_recovered_within_the_delay_is_cancelled_and_so_is_its_up(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    job = await make_job(ctx, admin, "flaky")
    down = await add_alert(ctx, job, "down", delay=60)
    clock.advance(30)
    await set_state(ctx, job, "up")
    up = await add_alert(ctx, job, "up", delay=60)
    assert await pass_once(notifier) == 0  # nothing due yet
    clock.advance(100)
    await pass_once(notifier)
    assert receiver.requests == []
    assert (await alert_row(ctx, down))["outcome"] == "cancelled"
    assert (await alert_row(ctx, up))["outcome"] == "cancelled"
    assert await notification_rows(ctx) == []


async def test_a_reminder_for_a_job_that_is_up_again_is_cancelled(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    job = await make_job(ctx, admin, "backup", state="up")
    reminder = await add_alert(ctx, job, "down", reminder=True)
    await pass_once(notifier)
    assert (await alert_row(ctx, reminder))["outcome"] == "cancelled"
    assert receiver.requests == []


async def test_jobs_naming_no_channel_use_the_default_channels_only(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "main", "webhook", {"url": receiver.url("/main")}, default=True)
    await make_channel(ctx, admin, "second", "webhook", {"url": receiver.url("/second")})
    named = await make_channel(ctx, admin, "by-id", "webhook", {"url": receiver.url("/by-id")})
    plain = await make_job(ctx, admin, "plain")
    picky = await make_job(ctx, admin, "picky", channels=[named["id"], "second"])
    await add_alert(ctx, plain, "down")
    await add_alert(ctx, picky, "down")
    await pass_once(notifier)
    assert sorted(r.path for r in receiver.requests) == ["/by-id", "/main", "/second"]
    slugs = {r.path: json.loads(r.body)["job"]["slug"] for r in receiver.requests}
    assert slugs == {"/main": "plain", "/second": "picky", "/by-id": "picky"}


async def test_an_alert_with_no_usable_channel_is_recorded_as_no_channels(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(ctx, admin, "not-default", "webhook", {"url": receiver.url()})
    job = await make_job(ctx, admin, "lonely")
    alert = await add_alert(ctx, job, "down")
    await pass_once(notifier)
    assert (await alert_row(ctx, alert))["outcome"] == "no_channels"
    assert receiver.requests == [] and await notification_rows(ctx) == []


async def test_a_503_is_retried_with_backoff_until_it_is_delivered(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(
        ctx, admin, "hook", "webhook", {"url": receiver.url("/flaky/2")}, default=True
    )
    job = await make_job(ctx, admin, "backup")
    await add_alert(ctx, job, "down")
    await pass_once(notifier)
    [row] = await notification_rows(ctx)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["error"] == "HTTP 503 Service Unavailable: try later"
    assert row["next_attempt_at"] == clock.now() + timedelta(seconds=10)

    clock.advance(9)
    assert await pass_once(notifier) == 0  # not due yet
    clock.advance(1)
    await pass_once(notifier)  # second 503, next in 30 s
    clock.advance(30)
    await pass_once(notifier)
    [row] = await notification_rows(ctx)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 3, None)
    assert receiver.hits["/flaky/2"] == 3
    assert (await channel_row(ctx, "hook"))["disabled_reason"] is None


async def test_a_receiver_that_keeps_failing_gets_five_attempts_then_the_notification_fails(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(
        ctx, admin, "hook", "webhook", {"url": receiver.url("/status/500")}, default=True
    )
    job = await make_job(ctx, admin, "backup")
    await add_alert(ctx, job, "down")
    for wait in (0, 10, 30, 120, 600, 3600):
        clock.advance(wait)
        await pass_once(notifier)
    [row] = await notification_rows(ctx)
    assert (row["status"], row["attempts"]) == ("failed", 5)
    assert receiver.hits["/status/500"] == 5
    assert (await channel_row(ctx, "hook"))["disabled_reason"] is None  # transient: kept on


async def test_a_permanent_404_fails_at_once_and_disables_the_channel_saying_why(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(
        ctx, admin, "gone", "webhook", {"url": receiver.url("/status/404")}, default=True
    )
    job = await make_job(ctx, admin, "backup")
    await add_alert(ctx, job, "down")
    await pass_once(notifier)
    [row] = await notification_rows(ctx)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    reason = (await channel_row(ctx, "gone"))["disabled_reason"]
    assert reason.startswith("disabled at 2026-03-01T12:00:00Z after a permanent delivery error")
    assert "HTTP 404" in reason

    # A disabled channel is skipped: the next alert finds no usable channel.
    later = await add_alert(ctx, job, "down", reminder=True)
    await pass_once(notifier)
    assert (await alert_row(ctx, later))["outcome"] == "no_channels"
    assert receiver.hits["/status/404"] == 1


async def test_an_unauthorized_401_disables_the_channel_too(
    ctx: Context, admin: Actor, receiver: Receiver, notifier: Notifier
) -> None:
    await make_channel(
        ctx, admin, "auth", "webhook", {"url": receiver.url("/status/401")}, default=True
    )
    await add_alert(ctx, await make_job(ctx, admin, "backup"), "down")
    await pass_once(notifier)
    assert "HTTP 401" in (await channel_row(ctx, "auth"))["disabled_reason"]


async def test_a_burst_over_the_channels_rate_limit_goes_out_as_one_digest(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver
) -> None:
    loop = Notifier(ctx, window=SendWindow(limit=30, window=60.0))
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    for index in range(35):
        await add_alert(ctx, await make_job(ctx, admin, f"job-{index}"), "down")

    await pass_once(loop)

    # more than the window has room for: one digest for all 35, nothing waits
    assert len(receiver.requests) == 1
    summary = json.loads(receiver.requests[0].body)
    assert summary["event"] == "digest" and len(summary["alerts"]) == 35
    assert {a["event"] for a in summary["alerts"]} == {"down"}
    assert summary["job"]["name"] == "35 alerts" and summary["status"] == "down"
    assert summary["reason"].startswith("35 down: job-")
    told = sorted(a["job"]["slug"] for a in summary["alerts"])
    assert told == sorted(f"job-{index}" for index in range(35))  # every job, once
    assert {r["status"] for r in await notification_rows(ctx)} == {"sent"}
    await loop.dispatcher.close()


async def test_a_backlog_bigger_than_a_digest_goes_as_several_in_one_send(
    ctx: Context, admin: Actor, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "DIGEST_SIZE", 10)  # 200 in production
    loop = Notifier(ctx, window=SendWindow(limit=30, window=60.0))
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    for index in range(25):
        await add_alert(ctx, await make_job(ctx, admin, f"job-{index}"), "down")

    await pass_once(loop)

    digests = [json.loads(request.body) for request in receiver.requests]
    assert sorted(len(body["alerts"]) for body in digests) == [5, 10, 10]
    told = sorted(alert["job"]["slug"] for body in digests for alert in body["alerts"])
    assert told == sorted(f"job-{index}" for index in range(25))  # every job, once
    assert {r["status"] for r in await notification_rows(ctx)} == {"sent"}
    await loop.dispatcher.close()


async def test_with_no_room_left_in_the_window_messages_wait_and_are_not_dropped(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver
) -> None:
    loop = Notifier(ctx, window=SendWindow(limit=2, window=60.0))  # one send per 15 s
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    for index in range(2):
        await add_alert(ctx, await make_job(ctx, admin, f"job-{index}"), "down")
        await pass_once(loop)
        clock.advance(15)
    assert len(receiver.requests) == 2  # the window is full now
    for index in range(2, 5):
        await add_alert(ctx, await make_job(ctx, admin, f"job-{index}"), "down")

    await pass_once(loop)
    assert len(receiver.requests) == 2
    waiting = [r for r in await notification_rows(ctx) if r["status"] == "pending"]
    assert len(waiting) == 3 and all(r["attempts"] == 0 for r in waiting)

    clock.advance(30)  # the first message leaves the window
    await pass_once(loop)
    assert len(receiver.requests) == 3  # room for 1, 3 waiting: one digest of the three
    assert json.loads(receiver.requests[-1].body)["event"] == "digest"
    assert {r["status"] for r in await notification_rows(ctx)} == {"sent"}
    await loop.dispatcher.close()


async def test_a_burst_in_small_claims_goes_out_as_a_digest_a_second_not_the_window_at_once(
    ctx: Context, admin: Actor, clock: FakeClock, receiver: Receiver
) -> None:
    loop = Notifier(ctx, window=SendWindow(limit=30, window=60.0))  # pace 1 s
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    told: list[tuple[float, int]] = []  # (seconds into the burst, alerts the message carries)

    async def pass_at(second: float) -> None:
        before = len(receiver.requests)
        await pass_once(loop)
        for request in receiver.requests[before:]:
            told.append((second, len(json.loads(request.body).get("alerts", [None]))))

    for tenth in range(30):  # 3 jobs go down every 0.1 s for 3 s: 90 alerts
        for index in range(3):
            await add_alert(ctx, await make_job(ctx, admin, f"job-{tenth}-{index}"), "down")
        await pass_at(tenth / 10)
        clock.advance(0.1)
    await pass_at(3.0)

    # the old plan sent each of these claims one message per alert: 30 messages in the
    # first second, the rest a minute later. Now the first claim's go alone, then one
    # digest a second carries what fell due meanwhile
    assert told == [(0.0, 1)] * 3 + [(1.0, 30), (2.0, 30), (3.0, 27)]
    assert {r["status"] for r in await notification_rows(ctx)} == {"sent"}
    await loop.dispatcher.close()


async def test_the_loop_wakes_on_the_alerts_pending_nudge_and_survives_errors(
    ctx: Context, admin: Actor, receiver: Receiver
) -> None:
    await make_channel(ctx, admin, "hook", "webhook", {"url": receiver.url()}, default=True)
    job = await make_job(ctx, admin, "backup")
    loop = Notifier(ctx, poll=3600)  # only a nudge can wake it in time
    stopping = asyncio.Event()
    task = asyncio.create_task(loop.run(stopping))
    await asyncio.sleep(0.2)
    await add_alert(ctx, job, "down")
    ctx.wakeups.alerts_pending.set()
    for _ in range(100):
        if receiver.requests:
            break
        await asyncio.sleep(0.05)
    assert len(receiver.requests) == 1
    stopping.set()
    await asyncio.wait_for(task, 10)

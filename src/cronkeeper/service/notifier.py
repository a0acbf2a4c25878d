"""The notifier's use cases: turn due alerts into notifications, and deliver them.

1. `process_due_alerts` (one transaction): each alert whose `deliver_at` has come is
   claimed once (conditional update) with an outcome:
   - `cancelled`: a down alert whose job is no longer down (it recovered within the alert
     delay) — and the up alert that follows it, since nobody was told it was down; a
     "still down" reminder for a job that is up; an up alert whose down was cancelled;
   - `no_channels`: the job names no usable channel (and the project has no default);
   - `sent`: one pending notification per enabled channel, delivered by step 2.
2. `claim_deliveries` takes due notifications under a lease (so another process does
   not send them too) and `deliver` sends one: rate limited per channel (excess waits),
   retried with backoff, failed for good after the last attempt or at once on a
   permanent error — which also disables the channel, saying why and when.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cronkeeper.channels import Dispatcher
from cronkeeper.domain.notifications import (
    Channel,
    Delivery,
    JobRef,
    Message,
    SendWindow,
    after_attempt,
    disabled_reason,
    message_from_payload,
    message_to_payload,
)
from cronkeeper.service.context import Context
from cronkeeper.store import alert_facts as facts
from cronkeeper.store import channels as store
from cronkeeper.store.alert_facts import JobFacts
from cronkeeper.store.channels import Alert, Notification
from cronkeeper.store.engine import Connection

#: A claimed notification is this process's for this long (a delivery times out sooner).
LEASE = timedelta(seconds=90)


@dataclass(frozen=True)
class ClaimedDelivery:
    notification: Notification
    channel: Channel
    due_since: datetime  # the alert's deliver_at (the test message's creation)


def job_url(ctx: Context, project: str, slug: str) -> str:
    """The dashboard page of a job."""
    suffix = "" if project == "default" else f"?project={project}"
    return f"{ctx.base_url}/jobs/{slug}{suffix}"


async def process_due_alerts(ctx: Context, limit: int = 200) -> int:
    """Claim the alerts due now and queue their notifications; returns how many were taken."""
    now = ctx.clock.now()
    queued = 0
    async with ctx.db.write() as conn:
        for alert in await store.due_alerts(conn, now, limit):
            queued += await _process(ctx, conn, alert, now)
    return queued


async def _process(ctx: Context, conn: Connection, alert: Alert, now: datetime) -> int:
    """Decide one alert; returns the number of notifications queued for it."""
    job = await facts.job_facts(conn, alert.job_id)
    if job is None or await _cancelled(conn, alert, job, now):
        await store.claim_alert(conn, alert.id, now, "cancelled")
        return 0
    targets = [
        c
        for c in await store.resolve_channels(conn, job.project_id, job.alert_channels)
        if c.disabled_reason is None
    ]
    if not targets:
        await store.claim_alert(conn, alert.id, now, "no_channels")
        return 0
    if not await store.claim_alert(conn, alert.id, now, "sent"):
        return 0
    payload = message_to_payload(await _message(ctx, conn, alert, job, now))
    for channel in targets:
        await store.insert_notification(
            conn,
            Notification(
                id=uuid.uuid4(),
                alert_id=alert.id,
                channel_id=channel.id,
                event=alert.event,
                payload=payload,
                status="pending",
                attempts=0,
                error=None,
                latency_ms=None,
                created_at=now,
                sent_at=None,
                next_attempt_at=now,
            ),
        )
    return len(targets)


async def _cancelled(conn: Connection, alert: Alert, job: JobFacts, now: datetime) -> bool:
    """True when the alert must not be sent (see the module docstring)."""
    if alert.event == "down" and job.monitor_state != "down":
        if not alert.reminder and (up := await store.pending_up_after(conn, alert)) is not None:
            await store.claim_alert(conn, up.id, now, "cancelled")
        return True
    if alert.event == "up":
        down = await store.previous_down_alert(conn, alert)
        if down is not None and down.processed_at is None:
            await store.claim_alert(conn, down.id, now, "cancelled")
            return True
        return down is not None and down.outcome == "cancelled"
    return False


async def _message(
    ctx: Context, conn: Connection, alert: Alert, job: JobFacts, now: datetime
) -> Message:
    happened = await facts.flip_time(conn, alert.flip_id) or alert.created_at
    down_for = None
    if alert.event == "up":
        since = await facts.went_down_at(conn, job.id, happened)
        down_for = (happened - since).total_seconds() if since else None
    elif alert.event == "down":
        since = await facts.went_down_at(conn, job.id, now) or job.state_since or happened
        down_for = max(0.0, (now - since).total_seconds())
    failing = await facts.failing_jobs(conn, job.project_id, job.id)
    project = job.project_slug
    return Message(
        event=alert.event,
        project=project,
        job=JobRef(job.slug, job.name, job_url(ctx, project, job.slug)),
        status=alert.event if alert.event in ("down", "up") else job.monitor_state,
        reason=alert.reason,
        at=happened,
        run=await facts.run_facts(conn, alert.run_id),
        failing_jobs=tuple(
            JobRef(slug, name, job_url(ctx, project, slug), since) for slug, name, since in failing
        ),
        down_for_s=down_for,
        reminder=alert.reminder,
    )


async def claim_deliveries(ctx: Context, limit: int = 50) -> list[ClaimedDelivery]:
    """Due notifications, each leased to this process for one attempt."""
    now = ctx.clock.now()
    claimed: list[ClaimedDelivery] = []
    async with ctx.db.write() as conn:
        due = await store.due_notifications(conn, now, limit)
        deliver_at = await store.alert_deliver_times(
            conn, [n.alert_id for n, _ in due if n.alert_id is not None]
        )
        for notification, channel in due:
            if await store.claim_notification(conn, notification, now + LEASE):
                since = deliver_at.get(notification.alert_id or -1, notification.created_at)
                claimed.append(ClaimedDelivery(notification, channel, since))
    return claimed


async def deliver(
    ctx: Context, dispatcher: Dispatcher, window: SendWindow, item: ClaimedDelivery
) -> str:
    """One attempt at one claimed notification; returns the status recorded."""
    channel, notification = item.channel, item.notification
    if channel.disabled_reason is not None:  # disabled after this was queued
        refused = Delivery(False, 0, f"channel disabled: {channel.disabled_reason}")
        return await _record(ctx, item, refused, final=True)
    wait = window.take(str(channel.id), ctx.clock.monotonic())
    if wait > 0:  # over the channel's rate limit: later, not dropped
        async with ctx.db.write() as conn:
            later = ctx.clock.now() + timedelta(seconds=wait)
            await store.record_attempt(conn, notification.id, {"next_attempt_at": later})
        return "pending"
    message = message_from_payload(notification.payload or {})
    delivery = await dispatcher.send(channel.kind, channel.config, message)
    return await _record(ctx, item, delivery)


async def _record(
    ctx: Context, item: ClaimedDelivery, delivery: Delivery, *, final: bool = False
) -> str:
    now = ctx.clock.now()
    attempts = item.notification.attempts + (0 if final else 1)
    verdict = after_attempt(delivery, attempts)
    status = "failed" if final else verdict.status
    values = {
        "status": status,
        "attempts": attempts,
        "error": delivery.error,
        "latency_ms": delivery.latency_ms,
        "sent_at": now if status == "sent" else None,
        "next_attempt_at": now + timedelta(seconds=verdict.retry_in or 0)
        if status == "pending"
        else None,
    }
    async with ctx.db.write() as conn:
        await store.record_attempt(conn, item.notification.id, values)
        if verdict.disable_channel and not final:
            await store.disable_channel(conn, item.channel.id, disabled_reason(delivery.error, now))
    if status == "sent":
        waited = max(0.0, (now - item.due_since).total_seconds())
        ctx.metrics.alert_dispatched(item.channel.kind, waited)
    return status


async def next_due_at(ctx: Context) -> datetime | None:
    """When the next alert or notification falls due (the loop sleeps until then)."""
    async with ctx.db.read() as conn:
        times = [await store.next_alert_at(conn), await store.next_notification_at(conn)]
    present = [t for t in times if t is not None]
    return min(present) if present else None

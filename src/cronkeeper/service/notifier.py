"""The notifier's use cases: turn due alerts into notifications, and deliver them.

1. `process_due_alerts` (one transaction): each alert whose `deliver_at` has come is
   claimed once (conditional update) with an outcome:
   - `cancelled`: a down alert whose job is no longer down (it recovered within the alert
     delay) — and the up alert that follows it, since nobody was told it was down; a
     "still down" reminder for a job that is up; an up alert whose down was cancelled;
   - `no_channels`: the job names no usable channel (and the project has no default);
   - `sent`: one pending notification per enabled channel, delivered by step 2.
2. `claim_deliveries` takes due notifications under a lease (so another process does
   not send them too) as the messages each channel's rate limit allows now (one send
   per pace: singles while its reserve holds, else digests of its backlog) —
   the limit is the channel's, shared by every process through its send log — and
   `deliver_send` sends one (a notification, or one digest of several): retried with
   backoff, failed for good after the last attempt or at once on a permanent error —
   which also disables the channel, saying why and when. Excess waits, never dropped.

Cost per alert (1,000 jobs going down at once, bench `alerts`): a batch of due alerts
reads its facts with a few statements for the whole batch, claims its `sent` alerts
with one UPDATE … RETURNING and inserts their notifications with one executemany;
due notifications are leased with a few statements per claim (the channels' lock,
window and send log included); the results of deliveries that end together are
written in one group-committed transaction (`db.writer`).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cronkeeper.channels import Dispatcher
from cronkeeper.domain.notifications import (
    Channel,
    Delivery,
    JobRef,
    Message,
    RunFacts,
    SendPlan,
    SendWindow,
    after_attempt,
    digest,
    disabled_reason,
    message_from_payload,
    message_to_payload,
)
from cronkeeper.service.context import Context
from cronkeeper.store import alert_facts as facts
from cronkeeper.store import channel_sends
from cronkeeper.store import channels as store
from cronkeeper.store.alert_facts import JobFacts
from cronkeeper.store.channels import Alert, Notification
from cronkeeper.store.engine import Connection

#: A claimed notification is this process's for this long (a delivery times out sooner).
LEASE = timedelta(seconds=90)
#: Due notifications read per claim: a burst of 1,000 jobs goes in one send (digests).
CLAIM_SIZE = 1000


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
    """Claim the alerts due now and queue their notifications; returns how many were taken.

    The facts the messages need (jobs, flips, runs, the projects' down jobs, channels)
    are read once for the whole batch, and its notifications inserted with one
    executemany: 1,000 jobs going down at once are told in a few transactions of a few
    statements per alert (the claim), not ten statements per alert."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        due = await store.due_alerts(conn, now, limit)
        if not due:
            return 0
        batch = await _Facts.load(conn, due, now)
        for alert in due:
            await _process(ctx, conn, alert, now, batch)
        return await batch.flush(conn, now)


@dataclass
class _Facts:
    """What the messages of one batch of alerts say, read once for the batch (nothing the
    batch writes changes them: it claims alerts and inserts notifications only)."""

    jobs: dict[uuid.UUID, JobFacts]
    flips: dict[int, datetime]
    went_down: dict[uuid.UUID, datetime]  # each job's latest down flip at or before now
    runs: dict[uuid.UUID, RunFacts]
    channels: dict[uuid.UUID, list[Channel]]  # every channel of the projects, by name
    down_jobs: dict[uuid.UUID, list[tuple[uuid.UUID, str, str, datetime | None]]] = field(
        default_factory=dict
    )
    # alerts decided `sent` whose claim is deferred to one statement: (alert, targets,
    # payload); claimed (and their notifications inserted) by `flush`
    to_send: list[tuple[Alert, list[Channel], dict[str, Any]]] = field(default_factory=list)
    queued: int = 0

    @classmethod
    async def load(cls, conn: Connection, due: list[Alert], now: datetime) -> _Facts:
        job_ids = list({alert.job_id for alert in due})
        project_ids = list({alert.project_id for alert in due})
        return cls(
            jobs=await store.jobs_facts(conn, job_ids),
            flips=await store.flip_times(conn, [a.flip_id for a in due if a.flip_id is not None]),
            went_down=await store.went_down_by(
                conn, list({a.job_id for a in due if a.event == "down"}), now
            ),
            runs=await store.runs_facts(conn, list({a.run_id for a in due if a.run_id})),
            channels=await store.project_channels(conn, project_ids),
        )

    def targets(self, job: JobFacts) -> list[Channel]:
        """The enabled channels the job's alerts go to."""
        chosen = store.pick_channels(self.channels.get(job.project_id, []), job.alert_channels)
        return [channel for channel in chosen if channel.disabled_reason is None]

    async def flush(self, conn: Connection, now: datetime) -> int:
        """Claim the alerts decided `sent` so far (one conditional UPDATE … RETURNING) and
        insert the notifications of those claimed (one executemany); returns how many
        notifications this batch queued in all."""
        claimed = await store.claim_alerts(conn, [a.id for a, _, _ in self.to_send], now, "sent")
        rows = [
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
            )
            for alert, targets, payload in self.to_send
            if alert.id in claimed
            for channel in targets
        ]
        await store.insert_notifications(conn, rows)
        self.to_send.clear()
        self.queued += len(rows)
        return self.queued

    async def failing(
        self, conn: Connection, project_id: uuid.UUID, except_job: uuid.UUID
    ) -> list[tuple[str, str, datetime | None]]:
        """(slug, name, down since) of the project's other jobs that are down."""
        if project_id not in self.down_jobs:
            self.down_jobs[project_id] = await store.down_jobs(
                conn, project_id, facts.FAILING_JOBS_LIMIT + 1
            )
        others = [row for row in self.down_jobs[project_id] if row[0] != except_job]
        return [(slug, name, since) for _, slug, name, since in others][: facts.FAILING_JOBS_LIMIT]


async def _process(
    ctx: Context, conn: Connection, alert: Alert, now: datetime, batch: _Facts
) -> None:
    """Decide one alert: claimed at once when cancelled or without channels; a `sent`
    alert's claim (and its notifications) wait for `batch.flush`."""
    job = batch.jobs.get(alert.job_id)
    if job is None or alert.event == "up" or job.monitor_state != "down":
        # `_cancelled` reads other alerts' claims: make this batch's claims visible first
        await batch.flush(conn, now)
    if job is None or await _cancelled(conn, alert, job, now):
        await store.claim_alert(conn, alert.id, now, "cancelled")
        return
    targets = batch.targets(job)
    if not targets:
        await store.claim_alert(conn, alert.id, now, "no_channels")
        return
    payload = message_to_payload(await _message(ctx, conn, alert, job, now, batch))
    batch.to_send.append((alert, targets, payload))


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
    ctx: Context, conn: Connection, alert: Alert, job: JobFacts, now: datetime, batch: _Facts
) -> Message:
    happened = (batch.flips.get(alert.flip_id) if alert.flip_id else None) or alert.created_at
    down_for = None
    if alert.event == "up":
        since = await facts.went_down_at(conn, job.id, happened)
        down_for = (happened - since).total_seconds() if since else None
    elif alert.event == "down":
        since = batch.went_down.get(job.id) or job.state_since or happened
        down_for = max(0.0, (now - since).total_seconds())
    failing = await batch.failing(conn, job.project_id, job.id)
    project = job.project_slug
    return Message(
        event=alert.event,
        project=project,
        job=JobRef(job.slug, job.name, job_url(ctx, project, job.slug)),
        status=alert.event if alert.event in ("down", "up") else job.monitor_state,
        reason=alert.reason,
        at=happened,
        run=batch.runs.get(alert.run_id) if alert.run_id else None,
        failing_jobs=tuple(
            JobRef(slug, name, job_url(ctx, project, slug), since) for slug, name, since in failing
        ),
        down_for_s=down_for,
        reminder=alert.reminder,
    )


@dataclass(frozen=True)
class Send:
    """One message to one channel: a claimed notification, or ONE digest of several."""

    items: list[ClaimedDelivery]

    @property
    def digest(self) -> bool:
        return len(self.items) > 1


async def claim_deliveries(ctx: Context, window: SendWindow, limit: int = 50) -> list[Send]:
    """Due notifications, each leased to this process for one attempt, as at most `limit`
    messages their channels' rate limits allow now (`SendWindow.plan`: each on its own,
    digests, or none yet — those are put off until the channel may send, not claimed).

    Up to CLAIM_SIZE due notifications are read at once, so that a channel's digests
    carry its backlog, not one claim's worth. The room is the channel's, shared by every
    process: counted from the channel's send log and taken in this transaction under
    the channel's lock (store/channel_sends.py), so two notifiers never both take its
    last free place, nor both send within its pace."""
    now = ctx.clock.now()
    async with ctx.db.write() as conn:
        groups: dict[uuid.UUID, list[tuple[Notification, Channel]]] = {}
        for notification, channel in await store.due_notifications(
            conn, now, max(limit, CLAIM_SIZE)
        ):
            groups.setdefault(channel.id, []).append((notification, channel))
        plans = await _plan_sends(conn, window, groups, now)
        for channel_id, plan in plans.items():
            if plan.wait_until is not None:
                waiting = [notification for notification, _ in groups.pop(channel_id)]
                await store.put_off_notifications(conn, waiting, plan.wait_until)
        sends = await _claim_sends(conn, _messages(groups, plans, limit), now)
        await channel_sends.record_sends(
            conn,
            [
                (send.items[0].channel.id, now, len(send.items))
                for send in sends
                if send.items[0].channel.id in plans  # disabled channels send nothing
            ],
        )
    return sends


def _messages(
    groups: dict[uuid.UUID, list[tuple[Notification, Channel]]],
    plans: dict[uuid.UUID, SendPlan],
    limit: int,
) -> list[list[tuple[Notification, Channel]]]:
    """At most `limit` messages by plan, the channel due longest first, each as the
    notifications it carries. The rest stay due, for the next claim."""
    messages: list[list[tuple[Notification, Channel]]] = []
    for channel_id, items in groups.items():
        plan = plans.get(channel_id, SendPlan("each"))  # disabled: each refused alone
        messages += plan.batches(items)[: limit - len(messages)]
        if len(messages) >= limit:
            break
    return messages


async def _plan_sends(
    conn: Connection,
    window: SendWindow,
    groups: dict[uuid.UUID, list[tuple[Notification, Channel]]],
    now: datetime,
) -> dict[uuid.UUID, SendPlan]:
    """The plan of each enabled channel, from its send log read under its lock."""
    limited = [key for key, items in groups.items() if items[0][1].disabled_reason is None]
    start = window.start(now)
    await channel_sends.lock_channels(conn, limited)
    await channel_sends.forget_sends(conn, limited, start)
    sent = await channel_sends.recent_sends(conn, limited, start)
    return {key: window.plan(sent.get(key, []), len(groups[key]), now) for key in limited}


async def _claim_sends(
    conn: Connection, messages: list[list[tuple[Notification, Channel]]], now: datetime
) -> list[Send]:
    """Lease the notifications of these messages; a message keeps those it got."""
    due = [notification for items in messages for notification, _ in items]
    taken = await store.claim_notifications(conn, due, now + LEASE)
    deliver_at = await store.alert_deliver_times(
        conn, [n.alert_id for n in due if n.id in taken and n.alert_id is not None]
    )
    sends: list[Send] = []
    for items in messages:
        claimed = [
            ClaimedDelivery(n, channel, deliver_at.get(n.alert_id or -1, n.created_at))
            for n, channel in items
            if n.id in taken
        ]
        if claimed:
            sends.append(Send(claimed))
    return sends


async def deliver(ctx: Context, dispatcher: Dispatcher, item: ClaimedDelivery) -> str:
    """One attempt at one claimed notification; returns the status recorded."""
    channel, notification = item.channel, item.notification
    if channel.disabled_reason is not None:  # disabled after this was queued
        refused = Delivery(False, 0, f"channel disabled: {channel.disabled_reason}")
        return await _record(ctx, item, refused, final=True)
    message = message_from_payload(notification.payload or {})
    delivery = await dispatcher.send(channel.kind, channel.config, message)
    return await _record(ctx, item, delivery)


async def deliver_send(ctx: Context, dispatcher: Dispatcher, send: Send) -> list[str]:
    """Send one claimed message — a notification, or ONE digest standing for several —
    and record the outcome on each notification it carries; returns their statuses."""
    if not send.digest:
        return [await deliver(ctx, dispatcher, send.items[0])]
    channel = send.items[0].channel
    parts = [message_from_payload(item.notification.payload or {}) for item in send.items]
    project = parts[0].project
    suffix = "" if project == "default" else f"?project={project}"
    message = digest(parts, f"{ctx.base_url}/{suffix}", ctx.clock.now())
    delivery = await dispatcher.send(channel.kind, channel.config, message)
    return list(await asyncio.gather(*(_record(ctx, item, delivery) for item in send.items)))


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
    if verdict.disable_channel and not final:
        async with ctx.db.write() as conn:
            await store.record_attempt(conn, item.notification.id, values)
            await store.disable_channel(conn, item.channel.id, disabled_reason(delivery.error, now))
    else:  # group-committed with the other deliveries that end meanwhile
        await ctx.db.writer.submit(_write_attempts, (item.notification.id, values))
    if status == "sent":
        waited = max(0.0, (now - item.due_since).total_seconds())
        ctx.metrics.alert_dispatched(item.channel.kind, waited)
    return status


async def _write_attempts(
    conn: Connection, results: list[tuple[uuid.UUID, dict[str, Any]]]
) -> list[None]:
    """The group writer's batch function: record many attempts' results at once."""
    await store.record_attempts(conn, results)
    return [None] * len(results)


async def next_due_at(ctx: Context) -> datetime | None:
    """When the next alert or notification falls due (the loop sleeps until then)."""
    async with ctx.db.read() as conn:
        times = [await store.next_alert_at(conn), await store.next_notification_at(conn)]
    present = [t for t in times if t is not None]
    return min(present) if present else None

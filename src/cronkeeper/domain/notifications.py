"""Alert messages and their delivery rules: what a channel is told, and what happens after.

Pure: the notifier (service) gathers ledger facts into a `Message`; channels render it
(`default_payload`, `template_variables`, `subject`, `text_body`) and report a
`Delivery`; `after_attempt` decides sent / retry later / failed (and whether the channel
must be disabled); `SendWindow` spaces messages per channel (`plan`: each, digest, wait).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from cronkeeper.domain.failures import explain

EVENTS = ("down", "up", "flapping", "test", "digest")
#: Seconds to wait after attempt 1, 2, 3, 4 failed; attempt 5 is the last.
RETRY_DELAYS: tuple[float, ...] = (10.0, 30.0, 120.0, 600.0)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
#: A Retry-After longer than this is not honoured beyond it.
MAX_RETRY_AFTER = 3600.0
#: Output tails longer than this are cut (from the start) before they reach a message.
OUTPUT_TAIL_LIMIT = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")


@dataclass(frozen=True)
class JobRef:
    slug: str
    name: str
    url: str
    down_since: datetime | None = None


@dataclass(frozen=True)
class RunFacts:
    """The run an alert is about (the failed run of a down alert, the good one of an up)."""

    id: str
    status: str
    failure_reason: str | None = None
    error: str | None = None
    output_tail: str | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class Message:
    """Everything a channel may say about one alert."""

    event: str  # down | up | flapping | test
    project: str
    job: JobRef
    status: str  # the job's monitor state the alert reports ("test" for a test message)
    reason: str | None
    at: datetime
    run: RunFacts | None = None
    failing_jobs: tuple[JobRef, ...] = ()  # the project's *other* jobs that are down
    down_for_s: float | None = None  # up: how long it was down; down: for how long so far
    reminder: bool = False
    parts: tuple[Message, ...] = ()  # a digest: the messages it stands for


def digest(parts: Sequence[Message], project_url: str, at: datetime) -> Message:
    """One message standing for many a channel could not take one by one (over its rate
    limit): who went down and who came back, in one go, instead of a queue of minutes."""
    downs = [m for m in parts if m.event == "down"]
    ups = [m for m in parts if m.event == "up"]
    counts = [f"{len(downs)} down"] if downs else []
    counts += [f"{len(ups)} up"] if ups else []
    others = len(parts) - len(downs) - len(ups)
    counts += [f"{others} other"] if others else []
    names = ", ".join(m.job.slug for m in parts[:20]) + (", …" if len(parts) > 20 else "")
    return Message(
        event="digest",
        project=parts[0].project if parts else "",
        job=JobRef("*", f"{len(parts)} alerts", project_url),
        status="down" if downs else "up",
        reason=f"{', '.join(counts)}: {names}",
        at=at,
        failing_jobs=tuple(m.job for m in downs),
        parts=tuple(parts),
    )


@dataclass(frozen=True)
class Delivery:
    """What a channel reports about one attempt to deliver a message."""

    ok: bool
    latency_ms: int = 0
    error: str | None = None
    permanent: bool = False  # retrying cannot help: the channel's config must change
    retry_after: float | None = None  # seconds the receiver asked us to wait


class Sender(Protocol):
    """A channel kind's adapter: deliver one message with the channel's config."""

    async def send(self, config: Mapping[str, Any], message: Message) -> Delivery: ...


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tail(text: str | None, limit: int = OUTPUT_TAIL_LIMIT) -> str | None:
    """The last `limit` characters of `text`."""
    return None if text is None else text[-limit:]


def describe_duration(seconds: float | None) -> str:
    """`2h 5m`, `45s`, `3d 4h`: two units at most; "" for None."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size or (unit == "s" and not parts):
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return " ".join(parts[:2])


def run_payload(run: RunFacts | None) -> dict[str, Any] | None:
    """The `run` object of the default webhook JSON."""
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "scheduled_for": iso(run.scheduled_for),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_ms": run.duration_ms,
        "failure_reason": run.failure_reason,
        "failure_explanation": explain(run.failure_reason) if run.failure_reason else None,
        "error": run.error,
        "output_tail": tail(run.output_tail),
    }


def job_payload(job: JobRef) -> dict[str, Any]:
    return {"slug": job.slug, "name": job.name, "url": job.url}


def default_payload(message: Message) -> dict[str, Any]:
    """The webhook JSON of DESIGN §3, exactly these keys (a digest adds `alerts`: the
    default JSON of each message it stands for)."""
    payload = _default_payload(message)
    if message.event == "digest":
        payload["alerts"] = [_default_payload(part) for part in message.parts]
    return payload


def _default_payload(message: Message) -> dict[str, Any]:
    return {
        "event": message.event,
        "job": job_payload(message.job),
        "status": message.status,
        "reason": message.reason,
        "run": run_payload(message.run),
        "failing_jobs": [
            {**job_payload(job), "down_since": iso(job.down_since)} for job in message.failing_jobs
        ],
        "down_for_s": None if message.down_for_s is None else round(message.down_for_s, 3),
    }


def template_variables(message: Message) -> dict[str, Any]:
    """What `{{ … }}` placeholders of a body template may name (values not yet escaped)."""
    run = run_payload(message.run) or dict.fromkeys(
        ("id", "status", "failure_reason", "failure_explanation", "error", "output_tail")
    )
    return {
        "event": message.event,
        "project": message.project,
        "job": job_payload(message.job),
        "status": message.status,
        "reason": message.reason,
        "at": iso(message.at),
        "run": run,
        "failure_reason": run.get("failure_reason"),
        "failure_explanation": run.get("failure_explanation"),
        "output_tail": run.get("output_tail"),
        "down_for": describe_duration(message.down_for_s),
        "down_for_s": None if message.down_for_s is None else round(message.down_for_s),
        "failing_jobs": ", ".join(job.slug for job in message.failing_jobs),
        "reminder": message.reminder,
    }


def headline(message: Message) -> str:
    """One line: what happened to which job."""
    name = message.job.name or message.job.slug
    if message.event == "test":
        return f"Test message from Cronkeeper (project {message.project})"
    if message.event == "up":
        after = f" after {describe_duration(message.down_for_s)}" if message.down_for_s else ""
        return f"UP: {name} has recovered{after}"
    if message.event == "flapping":
        return f"FLAPPING: {name} keeps changing state"
    if message.event == "digest":
        return f"{name}: {message.reason}"
    still = "still " if message.reminder else ""
    return f"DOWN: {name} is {still}down" + (f" ({message.reason})" if message.reason else "")


def subject(message: Message) -> str:
    """The e-mail subject / notification title."""
    return f"[Cronkeeper] {headline(message)}"


def detail_lines(message: Message) -> list[str]:
    """The body of a message as plain lines (e-mail, Apprise)."""
    if message.event == "digest":
        lines = [headline(message), "", f"Project: {message.project}", ""]
        return lines + [f"  - {headline(part)} ({part.job.url})" for part in message.parts]
    lines = [headline(message), "", f"Job: {message.job.slug} ({message.job.url})"]
    lines.append(f"Project: {message.project}")
    if message.reason:
        lines.append(f"Reason: {message.reason}")
    if message.event == "down" and message.down_for_s:
        lines.append(f"Down for: {describe_duration(message.down_for_s)}")
    run = message.run
    if run is not None:
        lines.append(f"Run: {run.id} ({run.status})")
        if run.failure_reason:
            lines.append(f"Failure: {run.failure_reason} - {explain(run.failure_reason)}")
        if run.error:
            lines.append(f"Error: {run.error}")
    if message.failing_jobs:
        lines += ["", "Other failing jobs in this project:"]
        lines += [f"  - {job.slug} ({job.url})" for job in message.failing_jobs]
    if run is not None and run.output_tail:
        lines += ["", "Output (tail):", tail(run.output_tail) or ""]
    return lines


def retry_delay(attempts_made: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after `attempts_made` failed ones; None: give up.

    A receiver's Retry-After is honoured when longer (capped at MAX_RETRY_AFTER)."""
    if attempts_made < 1 or attempts_made >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS[attempts_made - 1]
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, MAX_RETRY_AFTER)
    return delay


@dataclass(frozen=True)
class Verdict:
    """What to record after one delivery attempt."""

    status: str  # sent | pending (retry later) | failed
    retry_in: float | None = None
    disable_channel: bool = False


def after_attempt(delivery: Delivery, attempts_made: int) -> Verdict:
    """Sent; or retried with backoff; or failed — permanently failed disables the channel."""
    if delivery.ok:
        return Verdict("sent")
    if delivery.permanent:
        return Verdict("failed", disable_channel=True)
    delay = retry_delay(attempts_made, delivery.retry_after)
    return Verdict("failed") if delay is None else Verdict("pending", retry_in=delay)


def is_permanent_http_status(code: int) -> bool:
    """4xx other than 408 (timeout) and 429 (rate limited) will not change by retrying."""
    return 400 <= code < 500 and code not in (408, 429)


#: The most notifications one digest message carries (as many as the notifier has in
#: flight by default): its default JSON, ~3 KB an alert with 20 failing jobs, stays
#: within the 1 MB request bodies receivers commonly accept (a 1,000-alert digest, over
#: 3 MB, was refused). A bigger backlog goes as several digests.
DIGEST_SIZE = 200


@dataclass(frozen=True)
class SendPlan:
    """How one channel's due notifications go out now (`SendWindow.plan`)."""

    how: str  # each: a message per notification | digest: up to DIGEST_SIZE a message | wait
    wait_until: datetime | None = None  # wait: when the channel may send again
    digests: int = 1  # digest: at most this many messages now (a bigger backlog waits)

    def batches(self, notifications: Sequence[T]) -> list[list[T]]:
        """The messages this plan sends now, each as the notifications it carries (the
        first ones; the others stay due)."""
        if self.how == "each":
            return [[item] for item in notifications]
        if self.how != "digest":
            return []
        carried = notifications[: self.digests * DIGEST_SIZE]
        return [list(carried[i : i + DIGEST_SIZE]) for i in range(0, len(carried), DIGEST_SIZE)]

    def messages(self, notifications: int) -> int:
        """The messages this plan sends for `notifications` (the places it takes)."""
        return len(self.batches(range(notifications)))


@dataclass(frozen=True)
class SendWindow:
    """At most `limit` messages per channel in any `window` seconds, spent so that a
    burst never starves the window.

    Pure: the caller passes the times of the channel's messages and now. The times come
    from the channel's send log, which every notifier process reads and writes under the
    channel's lock (store/channel_sends.py): the limit holds for the channel, not per
    process. Notifications the window has no room for wait: late, never dropped.

    The policy (`plan`), for the notifications of one channel due now:
    - one send per `pace` at most: whatever falls due meanwhile waits and goes with the
      next send, so a burst accumulates instead of trickling out one message a claim;
    - a send is one message per notification while `reserve` places stay free after
      them, otherwise ONE digest for all (one per DIGEST_SIZE of a big backlog, the
      rationed places left out): singles never spend the digests' places;
    - the last `rationed` places are spread evenly until the oldest message leaves the
      window (still `pace` apart at least), so a long burst gets a digest every few
      seconds instead of a minute's silence once the window is spent;
    - with no place at all, wait until one frees. No wait outlasts the window."""

    limit: int = 30
    window: float = 60.0

    @property
    def reserve(self) -> int:
        """Places kept for digests: two thirds of the limit, but fewer than the limit (a
        lone notification on an idle channel always goes at once, on its own)."""
        return min(self.limit - 1, max(1, self.limit * 2 // 3))

    @property
    def rationed(self) -> int:
        """The last places of the window, spread out (a third of the limit)."""
        return self.limit // 3

    @property
    def pace(self) -> float:
        """Seconds from one send to the next: half the even spacing (1 s for 30/min)."""
        return self.window / self.limit / 2

    def start(self, now: datetime) -> datetime:
        """Messages sent after this moment are inside the window at `now`."""
        return now - timedelta(seconds=self.window)

    def room(self, sent: Sequence[datetime], now: datetime) -> int:
        """How many messages the channel may send now."""
        return max(0, self.limit - len(self._inside(sent, now)))

    def free_at(self, sent: Sequence[datetime], now: datetime) -> datetime:
        """When the window has room for one more message (`now` if it has already)."""
        inside = self._inside(sent, now)
        if len(inside) < self.limit:
            return now
        return inside[-self.limit] + timedelta(seconds=self.window)

    def plan(self, sent: Sequence[datetime], due: int, now: datetime) -> SendPlan:
        """`due` notifications of one channel: each its own message, ONE digest for all,
        or wait until the channel may send (see the class)."""
        inside = self._inside(sent, now)
        room = self.limit - len(inside)
        if room <= 0:
            paced = inside[-1] + timedelta(seconds=self.pace)
            return SendPlan("wait", max(self.free_at(inside, now), paced))
        if inside and (allowed := self._next_send(inside, room)) > now:
            return SendPlan("wait", allowed)
        if due <= max(1, room - self.reserve):  # one alone is its own message anyway
            return SendPlan("each")
        needed = math.ceil(due / DIGEST_SIZE)
        return SendPlan("digest", digests=min(needed, max(1, room - self.rationed)))

    def _next_send(self, inside: list[datetime], room: int) -> datetime:
        """`pace` after the last message; with only rationed places left, the time until
        the oldest message leaves is shared evenly by them and the place it frees."""
        gap = timedelta(seconds=self.pace)
        if room <= self.rationed:
            leaves = inside[0] + timedelta(seconds=self.window)
            gap = max(gap, (leaves - inside[-1]) / (room + 1))
        return inside[-1] + gap

    def _inside(self, sent: Sequence[datetime], now: datetime) -> list[datetime]:
        start = self.start(now)
        return sorted(moment for moment in sent if moment > start)


@dataclass(frozen=True)
class Channel:
    """A place alerts go (DESIGN §2): config holds its secrets in clear (never log it)."""

    id: Any  # uuid.UUID
    project_id: Any  # uuid.UUID
    name: str
    kind: str  # webhook | email | apprise
    config: dict[str, Any]
    is_default: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


def disabled_reason(error: str | None, at: datetime) -> str:
    """The note a permanent delivery error leaves on its channel."""
    return f"disabled at {iso(at)} after a permanent delivery error: {error or 'unknown'}"[:2000]


def message_to_payload(message: Message) -> dict[str, Any]:
    """A message as stored on its notification: the default webhook JSON plus what the
    other renderings need (project, time, reminder), so a retry says what the first said."""
    payload = {
        **default_payload(message),
        "project": message.project,
        "at": iso(message.at),
        "reminder": message.reminder,
    }
    if message.parts:
        payload["parts"] = [message_to_payload(part) for part in message.parts]
    return payload


def _when(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def message_from_payload(payload: Mapping[str, Any]) -> Message:
    """The message a notification stored (inverse of `message_to_payload`)."""
    job = payload["job"]
    run = payload.get("run")
    return Message(
        event=payload["event"],
        project=payload.get("project", ""),
        job=JobRef(job["slug"], job["name"], job["url"]),
        status=payload["status"],
        reason=payload.get("reason"),
        at=_when(payload.get("at")) or EPOCH,
        run=None
        if run is None
        else RunFacts(
            id=run["id"],
            status=run["status"],
            failure_reason=run.get("failure_reason"),
            error=run.get("error"),
            output_tail=run.get("output_tail"),
            scheduled_for=_when(run.get("scheduled_for")),
            started_at=_when(run.get("started_at")),
            finished_at=_when(run.get("finished_at")),
            duration_ms=run.get("duration_ms"),
        ),
        failing_jobs=tuple(
            JobRef(j["slug"], j["name"], j["url"], _when(j.get("down_since")))
            for j in payload.get("failing_jobs", [])
        ),
        down_for_s=payload.get("down_for_s"),
        reminder=bool(payload.get("reminder")),
        parts=tuple(message_from_payload(part) for part in payload.get("parts", [])),
    )

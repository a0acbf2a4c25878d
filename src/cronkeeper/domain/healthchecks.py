"""Healthchecks' Management API v3 over heartbeat jobs: how a check, a ping and a flip read.

A Healthchecks *check* is a Cronkeeper heartbeat job: `uuid` is the job's ping UUID,
`timeout` (a period in seconds) is the schedule `every {n}s`, `schedule`/`tz` a cron or
OnCalendar schedule and its zone, `grace` is `start_grace`, `desc` the description, the
space-separated `tags` string the tag list, and `channels` the job's alert channels.
Monitor states read as Healthchecks' statuses (`late` is `grace`); an open heartbeat run
is `started: true` (API v3 never reports `started` as a status, v1 did).

The shapes follow Healthchecks' `Check.to_dict`, `Ping.to_dict` and `Flip.to_dict`
(hc/api/models.py); the request side is `domain/healthchecks_input.py`.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronkeeper.domain.jobs import JobSpec
from cronkeeper.domain.monitor import Anchor, expected_slot
from cronkeeper.domain.schedules import parse_schedule
from cronkeeper.domain.states import JobStatus

#: Fields of features Cronkeeper lacks (e-mail pings, keyword filters, manual resume,
#: POST-only pings), shown and accepted only at their neutral value.
NEUTRAL: dict[str, Any] = {
    "manual_resume": False,
    "methods": "",
    "subject": "",
    "subject_fail": "",
    "start_kw": "",
    "success_kw": "",
    "failure_kw": "",
    "filter_subject": False,
    "filter_body": False,
    "filter_http_body": False,
    "filter_default_fail": False,
}
#: Monitor state → Healthchecks status.
_STATUSES = {"new": "new", "up": "up", "late": "grace", "down": "down", "paused": "paused"}
#: Event type → Healthchecks ping type.
PING_TYPES = {
    "attempt_started": "start",
    "attempt_succeeded": "success",
    "attempt_failed": "fail",
    "log": "log",
}
#: The ping events that finish a run (Healthchecks' success and fail pings).
FINISHING = ("attempt_succeeded", "attempt_failed")
#: What service/ping_batch.py writes as the message of a log ping that had no body.
EMPTY_LOG_MESSAGE = "log ping received (empty body)"
#: A finish further than this from its start gets no `duration` (Healthchecks' MAX_DURATION).
MAX_DURATION = timedelta(hours=72)
_MAX_DURATION_MS = MAX_DURATION.total_seconds() * 1000


def unique_key(ping_uuid: uuid.UUID) -> str:
    """The stable id read-only keys see instead of the UUID: sha1 of the first half of its
    hex, as Healthchecks' `Check.unique_key` computes it."""
    return hashlib.sha1(ping_uuid.hex[:16].encode(), usedforsecurity=False).hexdigest()


def check_status(paused: bool, monitor_state: str) -> str:
    """Healthchecks' v3 status of a job: new, up, grace, down or paused."""
    return "paused" if paused else _STATUSES.get(monitor_state, "new")


def isostring(moment: datetime | None) -> str | None:
    """Healthchecks' timestamps: UTC, whole seconds, `+00:00`."""
    return None if moment is None else moment.astimezone(UTC).replace(microsecond=0).isoformat()


def period_seconds(expression: str | None) -> int | None:
    """The period of an `every …` schedule in seconds; None for any other kind."""
    return parse_schedule(expression).period()


@dataclass(frozen=True)
class CheckFacts:
    """Everything a check's JSON says, gathered by the service."""

    ping_uuid: uuid.UUID
    spec: JobSpec
    monitor_state: str
    n_pings: int
    last_finish: datetime | None  # the newest success or fail ping in the ledger
    reset_at: datetime | None  # the newest flip to `new` (a resume)
    last_start: datetime | None  # the start of the newest open heartbeat run
    last_duration_ms: int | None
    channels: list[str]  # channel ids

    @property
    def paused(self) -> bool:
        return self.spec.status is JobStatus.PAUSED

    @property
    def timeout(self) -> int | None:
        return period_seconds(self.spec.schedule)

    @property
    def last_ping(self) -> datetime | None:
        """Healthchecks' `last_ping`: the last success or fail ping (starts and logs do
        not count), forgotten when the check is resumed."""
        if self.last_finish is None or (self.reset_at and self.last_finish <= self.reset_at):
            return None
        return self.last_finish


def next_ping(facts: CheckFacts) -> datetime | None:
    """When the next ping is due, as Healthchecks' `get_grace_start`: a period after the
    last ping or the schedule's next slot while up (or in grace), the open run's start if
    that is sooner; None when new, paused or down with nothing running."""
    if facts.paused:
        return None
    due = None
    if facts.monitor_state in ("up", "late") and facts.last_ping is not None:
        due = expected_slot(facts.spec, Anchor(facts.last_ping))
    if facts.last_start is not None and facts.monitor_state != "down":
        due = facts.last_start if due is None else min(due, facts.last_start)
    return due


def check_json(
    facts: CheckFacts, base_url: str, badge_url: str, *, readonly: bool
) -> dict[str, Any]:
    """A check as Healthchecks' v3 API shows it (`unique_key` instead of the UUID and
    the URLs for read-only keys)."""
    spec = facts.spec
    result: dict[str, Any] = {
        "name": spec.name,
        "slug": spec.slug,
        "tags": " ".join(spec.tags),
        "desc": spec.description,
        "grace": int(spec.start_grace),
        "n_pings": facts.n_pings,
        "status": check_status(facts.paused, facts.monitor_state),
        "started": facts.last_start is not None,
        "last_ping": isostring(facts.last_ping),
        "next_ping": isostring(next_ping(facts)),
        **NEUTRAL,
    }
    if facts.last_duration_ms:  # Healthchecks leaves out a zero or unknown duration
        result["last_duration"] = facts.last_duration_ms // 1000
    result["badge_url"] = badge_url
    if readonly:
        result["unique_key"] = unique_key(facts.ping_uuid)
    else:
        code = str(facts.ping_uuid)
        update_url = f"{base_url}/api/v3/checks/{code}"
        result.update(
            uuid=code,
            ping_url=f"{base_url}/ping/{code}",
            update_url=update_url,
            pause_url=f"{update_url}/pause",
            resume_url=f"{update_url}/resume",
            channels=",".join(sorted(facts.channels)),
        )
    if spec.schedule and facts.timeout is None:
        result.update(schedule=spec.schedule, tz=spec.timezone)
    else:
        result["timeout"] = facts.timeout or 0  # 0: no schedule, nothing is expected
    return result


@dataclass(frozen=True)
class PingEvent:
    """An event of a heartbeat run that a ping left (its `data` names the client), with
    what the ledger kept of the ping's body: a finish's is its attempt's, a start's the
    log line written with it, a log ping's its message."""

    type: str
    at: datetime
    data: dict[str, Any]
    run_duration_ms: int | None
    message: str | None = None
    attempt_body: str | None = None
    start_body: str | None = None

    @property
    def body(self) -> str | None:
        """The ping's logged body, None if it had none."""
        if self.type in FINISHING:
            return self.attempt_body or None
        if self.type == "attempt_started":
            return self.start_body or None
        return None if self.message in (None, "", EMPTY_LOG_MESSAGE) else self.message


def ping_json(event: PingEvent, n: int, scheme: str, body_url: str | None) -> dict[str, Any]:
    """A ping as Healthchecks' `GET …/pings/` lists it (`duration`, in seconds, on a
    finish that closed a start less than 72 hours before)."""
    kind = PING_TYPES[event.type]
    result: dict[str, Any] = {
        "type": kind,
        "date": event.at.astimezone(UTC).isoformat(),
        "n": n,
        "scheme": scheme,
        "remote_addr": event.data.get("remote_addr"),
        "method": event.data.get("method", ""),
        "ua": event.data.get("user_agent", ""),
        "rid": event.data.get("rid"),
        "body_url": body_url if event.body else None,
    }
    duration = event.run_duration_ms
    if kind in ("success", "fail") and duration is not None and duration < _MAX_DURATION_MS:
        result["duration"] = duration / 1000
    return result


def flip_json(created_at: datetime, new_state: str) -> dict[str, Any]:
    """A flip as Healthchecks lists it: when, and whether the check went up."""
    return {"timestamp": isostring(created_at), "up": 1 if new_state == "up" else 0}

"""Rendering for the CLI (Rich). No logic: tables, cards and JSON out of ready data."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (grep, files) gets wide lines instead of an 80-column wrap.
_WIDTH = None if sys.stdout.isatty() else 200
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH)


def print_json(value: Any) -> None:
    """Exactly the API envelope, for jq."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_json_line(value: Any) -> None:
    """One envelope on one line (a stream for `jq`), flushed at once for a live tail."""
    sys.stdout.write(json.dumps(value, default=str) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    """One line on stderr; never a traceback."""
    first = " ".join(str(message).split())
    err.print(f"error: {first}", markup=False)


def when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def jobs_table(jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        out.print("No jobs yet. Create one with: cronkeeper jobs create --slug … --schedule …")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("SLUG", "KIND", "STATUS", "STATE", "SCHEDULE", "NEXT FIRE (UTC)", "LAST RUN"):
        table.add_column(column)
    for job in jobs:
        last = job.get("last_run") or {}
        table.add_row(
            job["slug"],
            job["kind"],
            job["status"],
            job["monitor_state"],
            job.get("schedule") or "manual",
            when(job["next_fires"][0]) if job.get("next_fires") else "-",
            last.get("status", "-"),
        )
    out.print(table)


def job_card(job: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("slug", job["slug"]),
        ("name", job.get("name") or "-"),
        ("kind", job["kind"]),
        ("status", f"{job['status']} ({job['monitor_state']})"),
        ("schedule", f"{job.get('schedule') or 'manual'} — {job['schedule_description']}"),
        ("timezone", job["timezone"]),
        ("next fires", ", ".join(when(t) for t in job.get("next_fires", [])) or "-"),
        ("timeout", f"{job['timeout']}s"),
        ("retry", json.dumps(job["retry"])),
        ("overlap", f"{job['overlap']} (concurrency {job['concurrency']})"),
        ("catch-up", job["catch_up"]),
        ("tags", ", ".join(job.get("tags", [])) or "-"),
        ("target", json.dumps(job.get("target"), indent=None)),
    ]
    if job.get("ping_url"):
        rows.append(("ping url", job["ping_url"]))
    if job.get("description"):
        rows.append(("description", job["description"]))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, str(value))
    out.print(table)


def keys_table(keys: list[dict[str, Any]]) -> None:
    table = Table(show_edge=False, header_style="bold")
    for column in ("PREFIX", "NAME", "PROJECT", "ROLE", "CREATED", "LAST USED", "REVOKED"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key["prefix"],
            key["name"],
            key["project"],
            key["role"],
            when(key["created_at"]),
            when(key["last_used_at"]),
            when(key["revoked_at"]),
        )
    out.print(table)


def audit_table(entries: list[dict[str, Any]]) -> None:
    if not entries:
        out.print("No audit entries match.")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("AT", "ACTOR", "IP", "ACTION", "TARGET", "OUTCOME", "CHANGES"):
        table.add_column(column)
    for entry in entries:
        changes = entry.get("detail") or ", ".join(sorted(entry.get("diff", {}))) or "-"
        table.add_row(
            when(entry["at"]),
            entry["actor"],
            entry.get("ip") or "-",
            entry["action"],
            entry["target"],
            entry["outcome"],
            changes,
        )
    out.print(table)


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _run_row(run: dict[str, Any]) -> list[str]:
    finished = when(run.get("finished_at")) if run.get("finished_at") else run["status"]
    return [
        run["status"],
        run["source"],
        f"{run['attempts']}/{run['max_attempts']}",
        when(run.get("scheduled_for")),
        when(run.get("started_at")),
        finished,
        duration(run.get("duration_ms")),
        duration(run.get("drift_ms")),
        run.get("failure_reason") or "-",
        run["id"],
    ]


RUN_COLUMNS = (
    "STATUS",
    "TRIGGERED BY",
    "ATTEMPT",
    "SCHEDULED FOR",
    "STARTED",
    "FINISHED",
    "DURATION",
    "DRIFT",
    "FAILURE",
    "RUN ID",
)


def runs_table(runs: list[dict[str, Any]], *, header: bool = True) -> None:
    if not runs and header:
        out.print("No runs match.")
        return
    table = Table(show_edge=False, header_style="bold", show_header=header)
    for column in RUN_COLUMNS:
        table.add_column(column, no_wrap=True)
    for run in runs:
        table.add_row(*_run_row(run))
    out.print(table)


def run_card(run: dict[str, Any]) -> None:
    """A bordered card: the run's fields, failure reason with its explanation, error, payload."""
    from rich.panel import Panel

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in zip(RUN_COLUMNS, _run_row(run), strict=True):
        grid.add_row(label.lower(), value)
    if run.get("failure_reason"):
        grid.add_row("why", run.get("failure_explanation") or "")
    if run.get("error"):
        grid.add_row("error", run["error"])
    if run.get("trace_id"):
        grid.add_row("trace id", run["trace_id"])
    if run.get("payload") is not None:
        grid.add_row("payload", json.dumps(run["payload"], indent=2, default=str))
    for attempt in run.get("attempt_details", []):
        grid.add_row(f"attempt {attempt['number']}", _attempt_line(attempt))
    title = f"{run['job']} · {run['status']}"
    out.print(Panel(grid, title=title, title_align="left", expand=False))


def _attempt_line(attempt: dict[str, Any]) -> str:
    code = attempt.get("status_code") or attempt.get("exit_code")
    parts = [
        attempt["status"],
        f"code {code}" if code is not None else "",
        duration(attempt.get("latency_ms")),
        attempt.get("failure_reason") or "",
        (attempt.get("error") or "")[:200],
    ]
    return "  ".join(part for part in parts if part)


def events_table(events: list[dict[str, Any]]) -> None:
    table = Table(show_edge=False, header_style="bold")
    for column in ("#", "AT", "EVENT", "MESSAGE"):
        table.add_column(column)
    for event in events:
        table.add_row(
            str(event["sequence_num"]), when(event["at"]), event["type"], event.get("message") or ""
        )
    out.print(table)


def stats_table(stats: dict[str, Any]) -> None:
    if not stats["jobs"]:
        out.print("No runs in this window.")
        return
    table = Table(show_edge=False, header_style="bold")
    columns = (
        "JOB",
        "RUNS",
        "OK",
        "FAILED",
        "SKIPPED",
        "MISSED",
        "SUCCESS",
        "P50",
        "P95",
        "DRIFT P50",
        "DRIFT P95",
    )
    for column in columns:
        table.add_column(column, no_wrap=True)
    for job in stats["jobs"]:
        rate = job["success_rate"]
        table.add_row(
            job["job"],
            str(job["total"]),
            str(job["succeeded"]),
            str(job["failed"]),
            str(job["skipped"]),
            str(job["missed"]),
            "-" if rate is None else f"{rate:.1%}",
            duration(job["duration_ms"]["p50"]),
            duration(job["duration_ms"]["p95"]),
            duration(job["drift_ms"]["p50"]),
            duration(job["drift_ms"]["p95"]),
        )
    out.print(table)
    out.print(
        f"{stats['total']} runs since {when(stats['since'])}: "
        f"{stats['succeeded']} succeeded, {stats['failed']} failed",
        markup=False,
    )

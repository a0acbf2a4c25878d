"""`cronkeeper maintenance list|create|delete`: windows without alerts (or without fires)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from cronkeeper.cli import render
from cronkeeper.cli.client_options import (
    JsonOption,
    KeyOption,
    ProjectOption,
    UrlOption,
    envelope,
    with_client,
)
from cronkeeper.cli.main_helpers import run
from cronkeeper.domain.durations import parse_duration
from cronkeeper.errors import FieldError, InvalidInput

app = typer.Typer(
    help="Maintenance windows: no alerts (mute) or no fires (skip) while they last.",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help="Window name (a-z, 0-9, -)")]


@app.command("list")
def list_windows(
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the project's maintenance windows and whether each is on now."""
    page = run(with_client(url, api_key, project, lambda c: c.list_maintenance()))
    if as_json:
        render.print_json(envelope(page))
    else:
        _table(page["items"])


@app.command("create")
def create_window(
    name: NameArg,
    mode: Annotated[str, typer.Option(help="mute (no alerts) | skip (no fires)")] = "mute",
    starts: Annotated[
        str | None, typer.Option("--from", help="Start, ISO 8601 (default: now)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End, ISO 8601")] = None,
    lasting: Annotated[
        str | None, typer.Option("--for", help="Length, e.g. 2h (one-off: from --from or now)")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help="Recurring: when each occurrence starts (cron …)")
    ] = None,
    timezone: Annotated[str, typer.Option(help="Time zone of --schedule")] = "UTC",
    job: Annotated[list[str] | None, typer.Option(help="Only this job (repeatable)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only jobs with this tag")] = None,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a window: `--for 2h` (now), `--from … --until …`, or `--schedule … --for …`."""
    body: dict[str, Any] = {"name": name, "mode": mode, "jobs": job or [], "tags": tag or []}
    if schedule is not None:
        body.update(schedule=schedule, timezone=timezone, duration=lasting)
    else:
        start = _moment(starts, "--from") if starts else datetime.now(UTC)
        end = _moment(until, "--until") if until else None
        if end is None and lasting is not None:
            end = start + timedelta(seconds=_length(lasting))
        body.update(starts_at=start.isoformat(), ends_at=end.isoformat() if end else None)
    window = run(with_client(url, api_key, project, lambda c: c.create_maintenance(body)))
    if as_json:
        render.print_json(envelope(window))
    else:
        _table([window])


@app.command("delete")
def delete_window(
    name: NameArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Remove a maintenance window."""
    run(with_client(url, api_key, project, lambda c: c.delete_maintenance(name)))
    render.out.print(f"deleted maintenance window {name}", markup=False)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(FieldError(option, "must be an ISO 8601 date and time")) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _length(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise InvalidInput(FieldError("--for", str(error))) from None


def _table(windows: list[dict[str, Any]]) -> None:
    if not windows:
        render.out.print("No maintenance windows.")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("NAME", "MODE", "WHEN", "APPLIES TO", "ON NOW"):
        table.add_column(column)
    for window in windows:
        if window["schedule"]:
            length = render.duration(int(window["duration"] * 1000))
            when = f"{window['schedule']} ({window['timezone']}) for {length}"
        else:
            when = f"{render.when(window['starts_at'])} → {render.when(window['ends_at'])}"
        scope = [*window["jobs"], *(f"#{tag}" for tag in window["tags"])]
        on_now = f"until {render.when(window['active_until'])}" if window["active_until"] else "-"
        table.add_row(window["name"], window["mode"], when, ", ".join(scope) or "all jobs", on_now)
    render.out.print(table)

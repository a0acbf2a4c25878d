"""`cronkeeper runs <slug>`, `cronkeeper run show|replay|cancel <id>`, `jobs trigger`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

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
from cronkeeper.cli.watch import ended_runs
from cronkeeper.client import Client
from cronkeeper.clock import Clock, SystemClock
from cronkeeper.errors import FieldError, InvalidInput

run_app = typer.Typer(help="Inspect and act on one run.", no_args_is_help=True)
RunIdArg = Annotated[str, typer.Argument(help="Run id")]


def runs(
    slug: Annotated[str, typer.Argument(help="Job slug")],
    status: Annotated[str | None, typer.Option(help="Only runs with this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many runs")] = 20,
    detail: Annotated[bool, typer.Option("--detail", help="Bordered cards with errors")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Keep printing runs as they end")] = False,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A job's runs, newest first: status, trigger, attempts, times, drift, failure."""

    async def show(client: Client) -> None:
        page = await client.list_runs(slug, status=status, limit=limit)
        if as_json and watch:  # a stream: one envelope per line, from the first
            for item in page["items"]:
                render.print_json_line(envelope(item))
        elif as_json:
            render.print_json(envelope(page))
        else:
            await _print_runs(client, page["items"], detail)
        if watch:
            await _watch(client, slug, status, detail, as_json, page["items"])

    run(with_client(url, api_key, project, show))


async def _print_runs(client: Client, items: list[dict[str, Any]], detail: bool) -> None:
    if not detail:
        render.runs_table(items)
        return
    if not items:
        render.out.print("No runs match.")
    for item in items:
        render.run_card(await client.get_run(item["id"]))


#: The watch's pauses between polls; tests swap in a clock that scripts them.
watch_clock: Clock = SystemClock()
WATCH_INTERVAL = 1.0


async def _watch(
    client: Client,
    slug: str,
    status: str | None,
    detail: bool,
    as_json: bool,
    shown: list[dict[str, Any]],
) -> None:
    """Append-only: each run that ends from now on, once, in the order the runs ended
    (`watch.ended_runs`); `--status` picks which of them are printed."""
    async for ended in ended_runs(client, slug, shown, watch_clock, WATCH_INTERVAL):
        for item in ended:
            if status is not None and item["status"] != status:
                continue
            if as_json:
                render.print_json_line(envelope(item))
            elif detail:
                render.run_card(await client.get_run(item["id"]))
            else:
                render.runs_table([item], header=False)


@run_app.command("show")
def show_run(
    run_id: RunIdArg,
    events: Annotated[bool, typer.Option("--events", help="Also list the event log")] = False,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every field of a run, its attempts, and (with --events) its event log."""

    async def show(client: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        detail = await client.get_run(run_id)
        return detail, (await client.list_events(run_id) if events else [])

    detail, event_items = run(with_client(url, api_key, project, show))
    if as_json:
        render.print_json(envelope({**detail, "events": event_items} if events else detail))
        return
    render.run_card(detail)
    if events:
        render.events_table(event_items)


@run_app.command("replay")
def replay_run(
    run_id: RunIdArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the job again with the same input; the original run is unchanged."""
    new = run(with_client(url, api_key, project, lambda c: c.replay_run(run_id)))
    _print_one(new, f"queued replay {new['id']} of run {run_id}", as_json)


@run_app.command("cancel")
def cancel_run(
    run_id: RunIdArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a queued or running run."""
    cancelled = run(with_client(url, api_key, project, lambda c: c.cancel_run(run_id)))
    _print_one(cancelled, f"cancelled run {run_id}", as_json)


def trigger_job(
    slug: Annotated[str, typer.Argument(help="Job slug")],
    payload: Annotated[str | None, typer.Option(help="JSON handed to the run")] = None,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a run of the job now."""
    value = None
    if payload is not None:
        try:
            value = json.loads(payload)
        except ValueError as error:
            raise InvalidInput(FieldError("payload", f"is not JSON: {error}")) from None
    new = run(with_client(url, api_key, project, lambda c: c.trigger_job(slug, value)))
    _print_one(new, f"triggered {slug}: run {new['id']} queued", as_json)


def _print_one(item: dict[str, Any], message: str, as_json: bool) -> None:
    if as_json:
        render.print_json(envelope(item))
    else:
        render.out.print(message, markup=False)


def stats(
    since: Annotated[str, typer.Option(help="Window back from now, e.g. 24h, 7d")] = "24h",
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per job: runs, outcomes, success rate, p50/p95 duration and start drift."""
    result = run(with_client(url, api_key, project, lambda c: c.stats(since)))
    if as_json:
        render.print_json(envelope(result))
    else:
        render.stats_table(result)

"""`cronkeeper jobs …`: manage jobs through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

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
from cronkeeper.errors import FieldError, InvalidInput

app = typer.Typer(help="Create, inspect and change jobs.", no_args_is_help=True)

FileOption = Annotated[
    Path | None, typer.Option("--file", "-f", help="Job body as JSON or YAML ('-' for stdin)")
]
SlugArg = Annotated[str, typer.Argument(help="Job slug")]


def load_file(path: Path | None) -> dict[str, Any]:
    """A JSON/YAML object from a file (or stdin for '-'); InvalidInput if it is not one."""
    if path is None:
        return {}
    try:
        text = typer.get_text_stream("stdin").read() if str(path) == "-" else path.read_text()
        value = yaml.safe_load(text)
    except OSError as error:
        raise InvalidInput(FieldError("file", f"cannot read {path}: {error.strerror}")) from None
    except yaml.YAMLError as error:
        raise InvalidInput(FieldError("file", f"{path} is not JSON or YAML: {error}")) from None
    if not isinstance(value, dict):
        raise InvalidInput(FieldError("file", f"{path} must hold one job object"))
    return value


def parse_headers(headers: list[str]) -> dict[str, str]:
    """`Name: value` strings → a dict; InvalidInput for a header without a colon."""
    result = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise InvalidInput(FieldError("header", f"{header!r} is not 'Name: value'"))
        result[name.strip()] = value.strip()
    return result


def flags_to_body(flags: dict[str, Any], target_flags: dict[str, Any]) -> dict[str, Any]:
    """The given (non-None) flags as a job body; target flags nest under `target`."""
    body = {key: value for key, value in flags.items() if value not in (None, [], ())}
    target = {key: value for key, value in target_flags.items() if value not in (None, {}, [])}
    if target:
        body["target"] = target
    return body


def _target_flags(
    url: str | None, method: str | None, header: list[str], body: str | None, command: str | None
) -> dict[str, Any]:
    flags: dict[str, Any] = {"url": url, "method": method and method.upper(), "body": body}
    flags["headers"] = parse_headers(header)
    if command is not None:
        flags.update({"command": command, "shell": True})
    return flags


NameOpt = Annotated[str | None, typer.Option(help="Display name")]
KindOpt = Annotated[
    str | None, typer.Option(help="http | command | python | workflow | heartbeat | trigger")
]
ScheduleOpt = Annotated[str | None, typer.Option(help="Cron, @nickname, 'every 90s' or OnCalendar")]
TimezoneOpt = Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin")]
UrlTargetOpt = Annotated[str | None, typer.Option("--target-url", help="HTTP target URL")]
MethodOpt = Annotated[str | None, typer.Option(help="HTTP method")]
HeaderOpt = Annotated[list[str], typer.Option("--header", "-H", help="'Name: value' (repeat)")]
BodyOpt = Annotated[str | None, typer.Option("--body", help="HTTP request body template")]
CommandOpt = Annotated[str | None, typer.Option("--command", help="Shell command to run")]
TagOpt = Annotated[list[str], typer.Option("--tag", help="Tag (repeat)")]
DescriptionOpt = Annotated[str | None, typer.Option(help="What the job does")]
TimeoutOpt = Annotated[str | None, typer.Option(help="Per-attempt timeout, e.g. 30s")]


@app.command("list")
def list_jobs(
    tag: Annotated[str | None, typer.Option(help="Only jobs with this tag")] = None,
    status: Annotated[str | None, typer.Option(help="active | paused")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind")] = None,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs with their state, schedule and next fire."""
    filters = {"tag": tag, "status": status, "kind": kind, "limit": 100}

    async def everything(client: Any) -> list[dict[str, Any]]:
        return [job async for job in client.iter_jobs(**filters)]

    jobs = run(with_client(url, api_key, project, everything))
    if as_json:
        render.print_json(envelope({"items": jobs, "next_cursor": None}))
    else:
        render.jobs_table(jobs)


@app.command("show")
def show_job(
    slug: SlugArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one job: schedule in words, next fires, policies, target (secrets masked)."""
    job = run(with_client(url, api_key, project, lambda c: c.get_job(slug)))
    _print_job(job, as_json)


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        render.print_json(envelope(job))
    else:
        render.job_card(job)


@app.command("create")
def create_job(
    file: FileOption = None,
    slug: Annotated[str | None, typer.Option(help="Unique name, [a-z0-9-]")] = None,
    name: NameOpt = None,
    kind: KindOpt = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    target_url: UrlTargetOpt = None,
    method: MethodOpt = None,
    header: HeaderOpt = [],  # noqa: B006  (Typer needs a literal default)
    body: BodyOpt = None,
    command: CommandOpt = None,
    tag: TagOpt = [],  # noqa: B006
    description: DescriptionOpt = None,
    timeout: TimeoutOpt = None,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a job from a file and/or flags (flags win). Kind defaults to http, or
    command when --command is given."""
    flags = {
        "slug": slug,
        "name": name,
        "kind": kind,
        "schedule": schedule,
        "timezone": timezone,
        "tags": tag,
        "description": description,
        "timeout": timeout,
    }
    from_flags = flags_to_body(flags, _target_flags(target_url, method, header, body, command))
    job_body = load_file(file)
    target = {**(job_body.get("target") or {}), **from_flags.pop("target", {})}
    job_body.update(from_flags)
    if target:
        job_body["target"] = target
    job_body.setdefault("kind", "command" if command else "http")
    job = run(with_client(url, api_key, project, lambda c: c.create_job(job_body)))
    if not as_json:
        render.out.print(f"created job {job['slug']}", markup=False)
    _print_job(job, as_json)


@app.command("edit")
def edit_job(
    slug: SlugArg,
    file: FileOption = None,
    name: NameOpt = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    target_url: UrlTargetOpt = None,
    method: MethodOpt = None,
    header: HeaderOpt = [],  # noqa: B006
    body: BodyOpt = None,
    command: CommandOpt = None,
    tag: TagOpt = [],  # noqa: B006
    description: DescriptionOpt = None,
    timeout: TimeoutOpt = None,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a job: the file is a JSON merge patch; flags set single fields."""
    flags = {
        "name": name,
        "schedule": schedule,
        "timezone": timezone,
        "tags": tag,
        "description": description,
        "timeout": timeout,
    }
    patch = load_file(file)
    patch.update(flags_to_body(flags, _target_flags(target_url, method, header, body, command)))
    if not patch:
        raise InvalidInput([], "nothing to change: give --file or at least one field flag")
    job = run(with_client(url, api_key, project, lambda c: c.update_job(slug, patch)))
    if not as_json:
        render.out.print(f"updated job {job['slug']}", markup=False)
    _print_job(job, as_json)


@app.command("delete")
def delete_job(
    slug: SlugArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a job and its whole run history."""
    if not yes:
        typer.confirm(f"Delete job {slug} and all its runs?", abort=True)
    run(with_client(url, api_key, project, lambda c: c.delete_job(slug)))
    if as_json:
        render.print_json(envelope({"deleted": slug}))
    else:
        render.out.print(f"deleted job {slug}", markup=False)


@app.command("pause")
def pause_job(
    slug: SlugArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop future fires (runs in flight finish)."""
    job = run(with_client(url, api_key, project, lambda c: c.pause_job(slug)))
    _print_status(job, "paused", as_json)


@app.command("resume")
def resume_job(
    slug: SlugArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fire again from the next slot (missed slots are not replayed)."""
    job = run(with_client(url, api_key, project, lambda c: c.resume_job(slug)))
    _print_status(job, "resumed", as_json)


def _print_status(job: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        render.print_json(envelope(job))
        return
    fires = job.get("next_fires") or []
    after = f"; next fire {render.when(fires[0])}" if fires else ""
    render.out.print(f"{verb} job {job['slug']}{after}", markup=False)

"""`cronkeeper channels …`: manage alert channels through the API (admin key for changes)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

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
from cronkeeper.cli.jobs import FileOption, load_file, parse_headers
from cronkeeper.cli.main_helpers import run
from cronkeeper.client import Client
from cronkeeper.errors import InvalidInput

app = typer.Typer(
    help="Alert channels: webhook, email, apprise (changes need an admin key).",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Channel name")]
KindOpt = Annotated[str | None, typer.Option(help="webhook | email | apprise")]
WebhookUrlOpt = Annotated[str | None, typer.Option("--webhook-url", help="Webhook URL")]
MethodOpt = Annotated[str | None, typer.Option(help="Webhook HTTP method [POST]")]
HeaderOpt = Annotated[list[str], typer.Option("--header", "-H", help="'Name: value' (repeat)")]
BodyDownOpt = Annotated[str | None, typer.Option(help="Webhook body template for down alerts")]
BodyUpOpt = Annotated[str | None, typer.Option(help="Webhook body template for recoveries")]
ToOpt = Annotated[list[str], typer.Option("--to", help="E-mail recipient (repeat)")]
SmtpOpt = Annotated[str | None, typer.Option(help="smtp://user:pass@host:port (smtps://, …)")]
FromOpt = Annotated[str | None, typer.Option("--from", help="E-mail sender address")]
AppriseOpt = Annotated[list[str], typer.Option("--apprise-url", help="Apprise URL (repeat)")]
DefaultOpt = Annotated[
    bool | None, typer.Option("--default/--no-default", help="Serve jobs that name no channel")
]


def _path(name: str, suffix: str = "") -> str:
    return f"/channels/{quote(name, safe='')}{suffix}"


async def _call(client: Client, method: str, path: str, body: object = None) -> Any:
    answer = await client.request(method, f"/api/v1/projects/{client.project}{path}", json=body)
    return None if answer is None else answer["data"]


def _config_flags(
    webhook_url: str | None,
    method: str | None,
    header: list[str],
    body_down: str | None,
    body_up: str | None,
    to: list[str],
    smtp_url: str | None,
    sender: str | None,
    apprise_url: list[str],
) -> dict[str, Any]:
    flags: dict[str, Any] = {
        "url": webhook_url,
        "method": method and method.upper(),
        "headers": parse_headers(header),
        "body_down": body_down,
        "body_up": body_up,
        "to": to,
        "smtp_url": smtp_url,
        "from": sender,
        "urls": apprise_url,
    }
    return {key: value for key, value in flags.items() if value not in (None, [], {})}


@app.command("list")
def list_channels(
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """List channels: kind, default, enabled or why disabled."""
    page = run(with_client(url, api_key, project, lambda c: _call(c, "GET", "/channels?limit=100")))
    if as_json:
        render.print_json(envelope(page))
        return
    if not page["items"]:
        render.out.print("No channels yet. Create one with: cronkeeper channels create …")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("NAME", "KIND", "DEFAULT", "STATE", "TARGET"):
        table.add_column(column)
    for channel in page["items"]:
        table.add_row(
            channel["name"],
            channel["kind"],
            "yes" if channel["default"] else "no",
            "disabled" if channel["disabled"] else "enabled",
            _target(channel),
        )
    render.out.print(table)


def _target(channel: dict[str, Any]) -> str:
    config = channel["config"]
    if channel["kind"] == "webhook":
        return f"{config.get('method', 'POST')} {config.get('url', '')}"
    if channel["kind"] == "email":
        return ", ".join(config.get("to", []))
    return ", ".join(url.split("?")[0] for url in config.get("urls", []))


def _print_channel(channel: dict[str, Any], as_json: bool) -> None:
    if as_json:
        render.print_json(envelope(channel))
        return
    lines = [
        f"{channel['name']}  ({channel['kind']})",
        f"  default:  {'yes' if channel['default'] else 'no'}",
        f"  state:    {'disabled' if channel['disabled'] else 'enabled'}",
    ]
    if channel.get("disabled_reason"):
        lines.append(f"  disabled: {channel['disabled_reason']}")
        lines.append("            (any `cronkeeper channels edit` switches it back on)")
    lines.append("  config:   " + json.dumps(channel["config"], ensure_ascii=False))
    render.out.print("\n".join(lines), markup=False)


@app.command("show")
def show_channel(
    name: NameArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one channel (secrets masked) and why it is disabled, if it is."""
    channel = run(with_client(url, api_key, project, lambda c: _call(c, "GET", _path(name))))
    _print_channel(channel, as_json)


@app.command("create")
def create_channel(
    file: FileOption = None,
    name: Annotated[str | None, typer.Option(help="Unique name in the project")] = None,
    kind: KindOpt = None,
    webhook_url: WebhookUrlOpt = None,
    method: MethodOpt = None,
    header: HeaderOpt = [],  # noqa: B006  (Typer needs a literal default)
    body_down: BodyDownOpt = None,
    body_up: BodyUpOpt = None,
    to: ToOpt = [],  # noqa: B006
    smtp_url: SmtpOpt = None,
    sender: FromOpt = None,
    apprise_url: AppriseOpt = [],  # noqa: B006
    default: DefaultOpt = None,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a channel from a file and/or flags (flags win)."""
    body = load_file(file)
    config = {
        **(body.get("config") or {}),
        **_config_flags(
            webhook_url, method, header, body_down, body_up, to, smtp_url, sender, apprise_url
        ),
    }
    body.update(
        {k: v for k, v in {"name": name, "kind": kind, "default": default}.items() if v is not None}
    )
    if config:
        body["config"] = config
    channel = run(with_client(url, api_key, project, lambda c: _call(c, "POST", "/channels", body)))
    if not as_json:
        render.out.print(f"created channel {channel['name']}", markup=False)
    _print_channel(channel, as_json)


@app.command("edit")
def edit_channel(
    name: NameArg,
    file: FileOption = None,
    new_name: Annotated[str | None, typer.Option("--name", help="Rename the channel")] = None,
    webhook_url: WebhookUrlOpt = None,
    method: MethodOpt = None,
    header: HeaderOpt = [],  # noqa: B006
    body_down: BodyDownOpt = None,
    body_up: BodyUpOpt = None,
    to: ToOpt = [],  # noqa: B006
    smtp_url: SmtpOpt = None,
    sender: FromOpt = None,
    apprise_url: AppriseOpt = [],  # noqa: B006
    default: DefaultOpt = None,
    enable: Annotated[
        bool, typer.Option("--enable", help="Switch a disabled channel back on")
    ] = False,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a channel: the file is a JSON merge patch; flags set single fields. Any
    edit (or `--enable` alone) switches a disabled channel back on."""
    patch = load_file(file)
    config = _config_flags(
        webhook_url, method, header, body_down, body_up, to, smtp_url, sender, apprise_url
    )
    if config:
        patch["config"] = {**(patch.get("config") or {}), **config}
    patch.update({k: v for k, v in {"name": new_name, "default": default}.items() if v is not None})
    if not patch and not enable:
        raise InvalidInput([], "nothing to change: give --file, a field flag or --enable")
    channel = run(
        with_client(url, api_key, project, lambda c: _call(c, "PATCH", _path(name), patch))
    )
    if not as_json:
        render.out.print(f"updated channel {channel['name']}", markup=False)
    _print_channel(channel, as_json)


@app.command("delete")
def delete_channel(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a channel and its delivery history."""
    if not yes:
        typer.confirm(f"Delete channel {name}?", abort=True)
    run(with_client(url, api_key, project, lambda c: _call(c, "DELETE", _path(name))))
    if as_json:
        render.print_json(envelope({"deleted": name}))
    else:
        render.out.print(f"deleted channel {name}", markup=False)


@app.command("test")
def test_channel(
    name: NameArg,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a test message now; exit 1 (with the channel's error) if it was not delivered."""
    result = run(
        with_client(url, api_key, project, lambda c: _call(c, "POST", _path(name, "/test")))
    )
    if as_json:
        render.print_json(envelope(result))
    elif result["status"] == "sent":
        render.out.print(
            f"sent a test message to {name} in {result['latency_ms']} ms", markup=False
        )
    if result["status"] != "sent":
        if not as_json:
            render.error_line(f"test message to {name} failed: {result.get('error')}")
        raise typer.Exit(1)

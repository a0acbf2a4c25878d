"""`cronkeeper audit`: who changed what."""

from __future__ import annotations

from typing import Annotated

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
from cronkeeper.cli.main_helpers import run, since_to_iso


def audit(
    action: Annotated[str | None, typer.Option(help="e.g. job.create, or job. for all")] = None,
    outcome: Annotated[str | None, typer.Option(help="success | failed")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries newer than this, e.g. 24h")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    project: ProjectOption = "default",
    url: UrlOption = None,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log, newest first."""
    filters = {"action": action, "outcome": outcome, "from": since_to_iso(since), "limit": limit}
    page = run(with_client(url, api_key, project, lambda c: c.list_audit(**filters)))
    if as_json:
        render.print_json(envelope(page))
    else:
        render.audit_table(page["items"])

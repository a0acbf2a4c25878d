"""`cronkeeper users create`: dashboard users (local: talks to the database directly)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cronkeeper.cli import render
from cronkeeper.cli.main_helpers import run
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import FieldError, InvalidInput
from cronkeeper.service import keys as key_service
from cronkeeper.service import users as user_service
from cronkeeper.service.setup import open_context
from cronkeeper.settings import Settings

app = typer.Typer(
    help="Dashboard users (local: talks to the database directly).", no_args_is_help=True
)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput(FieldError("password", "stdin gave no password"))
        return password
    if not sys.stdin.isatty():
        raise InvalidInput(
            FieldError("password", "no terminal to ask on; pipe it with --password-stdin")
        )
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="The user name people log in with")],
    project: Annotated[str, typer.Option(help="Project slug (created if new)")] = "default",
    role: Annotated[KeyRole, typer.Option(help="read | write | admin")] = KeyRole.READ,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin's first line")
    ] = False,
    db: Annotated[
        str | None, typer.Option("--db", help="SQLite path or postgresql:// URL [CRONKEEPER_DB]")
    ] = None,
) -> None:
    """Create a user who logs in to the dashboard with a password (argon2-hashed)."""
    password = _read_password(password_stdin)
    try:
        config = Settings(db=db) if db else Settings()
    except ValueError as error:
        raise InvalidInput([], f"invalid setting: {error}") from None
    actor = key_service.local_actor()

    async def create_user() -> None:
        ctx = await open_context(config.db)
        try:
            await user_service.create_user(
                ctx, actor, project_slug=project, role=role, username=name, password=password
            )
        finally:
            await ctx.db.dispose()

    run(create_user())
    render.out.print(
        f"created user {name} ({role.value} in project {project}); "
        "they log in at the dashboard's /login",
        markup=False,
    )

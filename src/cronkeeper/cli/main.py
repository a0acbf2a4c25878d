"""`cronkeeper`: server and local commands here; API client commands in `jobs.py`/`audit.py`.

Exit codes: 0 ok, 1 a failure reported by the server (or the server unreachable),
2 a usage error. Every error is one line on stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from cronkeeper import __version__
from cronkeeper.cli import render, users
from cronkeeper.cli.main_helpers import run
from cronkeeper.domain.models import ApiKey
from cronkeeper.domain.states import KeyRole
from cronkeeper.errors import ClientError, CronkeeperError, InvalidInput
from cronkeeper.service import keys as key_service
from cronkeeper.service.context import Context
from cronkeeper.service.setup import open_context
from cronkeeper.settings import Settings

app = typer.Typer(
    name="cronkeeper",
    help="Cron runtime and run ledger: run jobs, record every run, watch heartbeats.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys (local: talks to the database directly).", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(users.app, name="users")

DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLite path or postgresql:// URL [CRONKEEPER_DB]")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API envelope as JSON")]


def settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags the user gave on top."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValueError as error:
        raise InvalidInput([], f"invalid setting: {error}") from None


@app.command()
def serve(
    db: DbOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [8080]")] = None,
    role: Annotated[str | None, typer.Option(help="all | api | scheduler | worker [all]")] = None,
    app_module: Annotated[
        str | None, typer.Option("--app", help="Python module whose @cronkeeper.job functions run")
    ] = None,
) -> None:
    """Start the server: API, dashboard and runtime; migrations run first."""
    from cronkeeper.server import run as serve_forever

    config = settings(db=db, host=host, port=port, role=role, app=app_module)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(config, announce=lambda text: render.out.print(text, markup=False))


@app.command()
def version() -> None:
    """Print the version."""
    render.out.print(__version__)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Bring the database schema to the newest version."""
    config = settings(db=db)

    async def upgrade() -> None:
        ctx = await open_context(config.db)
        await ctx.db.dispose()

    run(upgrade())
    render.out.print("database is up to date")


async def _with_context(db_url: str, use: Any) -> Any:
    ctx: Context = await open_context(db_url)
    try:
        return await use(ctx)
    finally:
        await ctx.db.dispose()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Shown as the actor in the audit log")],
    project: Annotated[str, typer.Option(help="Project slug (created if new)")] = "default",
    role: Annotated[KeyRole, typer.Option(help="read | write | admin")] = KeyRole.WRITE,
    db: DbOption = None,
) -> None:
    """Create a key and print it alone on stdout (it is never shown again)."""
    config = settings(db=db)
    actor = key_service.local_actor()
    created = run(
        _with_context(
            config.db,
            lambda ctx: key_service.create_key(
                ctx, actor, project_slug=project, role=role, name=name
            ),
        )
    )
    sys.stdout.write(created.plaintext + "\n")


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "prefix": key.prefix,
        "name": key.name,
        "project": key.project_slug,
        "role": key.role.value,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@keys_app.command("list")
def keys_list(
    project: Annotated[str | None, typer.Option(help="Only this project's keys")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List keys (prefix, name, role; never the secret)."""
    config = settings(db=db)
    keys = run(_with_context(config.db, lambda ctx: key_service.list_keys(ctx, project)))
    items = [_key_json(key) for key in keys]
    if as_json:
        render.print_json({"data": {"items": items, "next_cursor": None}})
    else:
        render.keys_table(items)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's prefix (or the whole key)")],
    db: DbOption = None,
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    config = settings(db=db)
    actor = key_service.local_actor()
    revoked = run(_with_context(config.db, lambda ctx: key_service.revoke_key(ctx, actor, key)))
    render.out.print(f"revoked key {revoked.prefix} ({revoked.name})", markup=False)


def _register_client_commands() -> None:
    from cronkeeper.cli import audit, channels, jobs, maintenance, runs
    from cronkeeper.cli.exec import exec_command

    jobs.app.command("trigger")(runs.trigger_job)
    app.add_typer(jobs.app, name="jobs")
    app.command("runs")(runs.runs)
    app.add_typer(runs.run_app, name="run")
    app.command("stats")(runs.stats)
    app.command("audit")(audit.audit)
    app.add_typer(channels.app, name="channels")
    app.add_typer(maintenance.app, name="maintenance")
    app.command("exec")(exec_command)


_register_client_commands()


def _usage_error(error: typer.TyperException) -> int:
    """Click's usage errors: one line (bare `cronkeeper` shows the help instead)."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    if type(error).__name__ == "NoArgsIsHelpError":
        render.err.print(message, markup=False)
    else:
        render.error_line(message.replace("Value error, ", ""))
    return int(getattr(error, "exit_code", 2))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command, turn every error into one line and an exit code."""
    sys.exit(_main(list(argv) if argv is not None else sys.argv[1:]))


def _main(argv: list[str]) -> int:
    try:
        result = app(args=argv, prog_name="cronkeeper", standalone_mode=False)
    except typer.Abort:
        render.error_line("aborted; nothing was changed")
        return 1
    except KeyboardInterrupt:
        return 130
    except typer.Exit as error:
        return int(error.exit_code)
    except typer.TyperException as error:
        return _usage_error(error)
    except ClientError as error:
        render.error_line(error.detail)
        return 1
    except InvalidInput as error:
        render.error_line(error.detail)
        return 2
    except CronkeeperError as error:
        render.error_line(str(error))
        return 1
    except Exception as error:  # never a traceback: one line, exit 1
        render.error_line(f"{type(error).__name__}: {error}")
        return 1
    return result if isinstance(result, int) else 0

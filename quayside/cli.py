"""The `quayside` command: the embedded start, migrations, and accounts until the management API arrives.

Account commands work on an embedded install's database (`--data-dir`, QUAYSIDE_DATA_DIR) or on
the database at `--database-url` (QUAYSIDE_DATABASE_URL); with neither, on ./quayside-data.
Expected failures (a taken or invalid name, an unknown owner, an unreachable database) end with
one `error:` line on stderr and exit status 1.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from quayside import (
    backup_commands,
    command_support,
    gc_commands,
    quota_commands,
    readonly_commands,
    replication_commands,
    transfer_commands,
)
from shared.auth.accounts import (
    RobotCredentials,
    create_organization,
    create_robot,
    create_user,
)
from shared.auth.passwords import generate_secret
from shared.config import Settings
from shared.db.migrate import migrate
from shared.db.stored_names import invalid_stored_names
from shared.serving import ListenAddress

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Quayside, a container registry suite.",
)
user_app = typer.Typer(no_args_is_help=True, help="Manage users.")
org_app = typer.Typer(no_args_is_help=True, help="Manage organizations.")
robot_app = typer.Typer(no_args_is_help=True, help="Manage robot accounts.")
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")
app.add_typer(robot_app, name="robot")
app.add_typer(readonly_commands.readonly_app, name="readonly")
app.add_typer(backup_commands.backup_app)  # backup, restore
app.add_typer(quota_commands.quota_app, name="quota")
app.add_typer(transfer_commands.app)  # export, export keygen, import
app.add_typer(gc_commands.gc_app, name="gc")
app.add_typer(replication_commands.replication_app, name="replication")


def main() -> None:
    app()


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(envvar="QUAYSIDE_DATA_DIR", help="Data folder [default: ./quayside-data].")
    ] = None,
    listen: Annotated[
        str | None, typer.Option(envvar="QUAYSIDE_LISTEN", help="host:port [default: 127.0.0.1:5000].")
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            envvar="QUAYSIDE_TLS",
            help="Serve HTTPS, with a certificate from a local CA made in the data folder's tls/.",
        ),
    ] = False,
) -> None:
    """Start the whole suite on embedded defaults and serve until Ctrl-C or SIGTERM.

    The first start creates the data folder (embedded PostgreSQL, local storage, token secret) and
    the admin account (QUAYSIDE_ADMIN_USER, default admin) with QUAYSIDE_ADMIN_PASSWORD or a
    generated password printed once. Later starts reuse everything. With --tls it serves HTTPS
    with a certificate of a local CA (data folder's tls/ca.crt), printing how to trust it.
    """
    # Imported here: the web application is heavy to import and only this command runs it.
    from quayside import embedded

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with command_support.errors_reported():
        settings = embedded.EmbeddedSettings()
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": data_dir})
        if listen is not None:
            settings = settings.model_copy(update={"listen": ListenAddress.parse(listen)})
        if tls:
            settings = settings.model_copy(update={"tls": True})
        # The standard event loop, as the registry's own process (services/registry/process.py).
        asyncio.run(embedded.run(settings))


@app.command("migrate")
def migrate_command(database_url: command_support.DatabaseUrlOption = None) -> None:
    """Apply pending database migrations (QUAYSIDE_DATABASE_URL)."""
    with command_support.errors_reported():
        applied = asyncio.run(migrate(database_url or Settings().database_url))
    typer.echo(f"applied: {', '.join(applied)}" if applied else "the database is up to date")


@app.command("check-names")
def check_names(
    data_dir: command_support.DataDirOption = None, database_url: command_support.DatabaseUrlOption = None
) -> None:
    """List stored names that break their rules (e.g. ending in a newline); exit status 1 if any."""
    with command_support.errors_reported():
        found = asyncio.run(command_support.in_database(data_dir, database_url, invalid_stored_names))
    for item in found:
        typer.echo(f"{item.kind} {item.id}: {item.name!r}")
    if found:
        typer.echo(f"error: {len(found)} stored names break their rules", err=True)
        raise typer.Exit(1)
    typer.echo("every stored name follows its rule")


@user_app.command("create")
def user_create(
    name: str,
    password: Annotated[
        str | None, typer.Option("--password", "-p", help="Generated and printed when omitted.")
    ] = None,
    superuser: Annotated[bool, typer.Option("--superuser", help="May administer everything.")] = False,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Create a user (and its namespace)."""
    chosen = password or generate_secret(18)

    async def create(conn: asyncpg.Connection) -> None:
        await create_user(conn, name, chosen, superuser=superuser)

    with command_support.errors_reported():
        asyncio.run(command_support.in_database(data_dir, database_url, create))
    typer.echo(f"created {'superuser' if superuser else 'user'} {name}")
    if password is None:
        typer.echo(f"password: {chosen}")


@org_app.command("create")
def org_create(
    name: str,
    owner: Annotated[str, typer.Option("--owner", help="User who administers the organization.")],
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Create an organization owned by a user."""

    async def create(conn: asyncpg.Connection) -> None:
        await create_organization(conn, name, owner)

    with command_support.errors_reported():
        asyncio.run(command_support.in_database(data_dir, database_url, create))
    typer.echo(f"created organization {name} (owner {owner})")


@robot_app.command("create")
def robot_create(
    namespace: str,
    shortname: str,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Create a robot account in a user's or organization's namespace; its token is printed once."""

    async def create(conn: asyncpg.Connection) -> RobotCredentials:
        return await create_robot(conn, namespace, shortname)

    with command_support.errors_reported():
        credentials = asyncio.run(command_support.in_database(data_dir, database_url, create))
    typer.echo(f"username: {credentials.username}")
    typer.echo(f"token: {credentials.token}")

"""`quayside readonly on|off|status`: read-only mode switched at run time (shared/readonly_state.py),
on an embedded install's database (--data-dir) or the database at --database-url, like the account
commands. Every registry and service process follows within about a second.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import asyncpg
import typer

# quayside.cli imports this module for its command group; its names are used only when commands run.
from quayside import command_support
from shared.readonly_state import RegistryState, parse_duration, read_registry_state, set_registry_state

readonly_app: typer.Typer = typer.Typer(
    no_args_is_help=True, help="Read-only maintenance mode: pulls work, writes are refused."
)


def _describe(state: RegistryState) -> str:
    if not state.read_only:
        return "normal: pushes and changes are accepted"
    if state.forced_by_config:
        return "read-only (QUAYSIDE_REGISTRY_STATE=readonly in this process's environment)"
    until = f" until {state.expires_at.isoformat(timespec='seconds')}" if state.expires_at else ""
    why = f": {state.reason}" if state.reason else ""
    return f"read-only{until} (set by {state.changed_by or 'unknown'}){why}"


def _show(operation: str, state: RegistryState) -> None:
    typer.echo(f"{operation}{_describe(state)}")


@readonly_app.command("on")
def readonly_on(
    period: Annotated[
        str | None, typer.Option("--for", help="Lifts itself after this long: 30m, 2h, 1d, 1w.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Shown to superusers asking for the state.")] = "",
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Make the registry read-only: pulls succeed, every write is refused."""
    try:
        expires_in = parse_duration(period) if period is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--for") from None
    if "\x00" in reason or len(reason) > 500:
        raise typer.BadParameter("at most 500 characters, no NUL", param_hint="--reason")

    async def switch_on(conn: asyncpg.Connection) -> RegistryState:
        await set_registry_state(
            conn, read_only=True, reason=reason, expires_in=expires_in, changed_by=f"cli:{getpass.getuser()}"
        )
        return await read_registry_state(conn, forced_by_config=False)

    with command_support.errors_reported():
        _show("now ", asyncio.run(command_support.in_database(data_dir, database_url, switch_on)))


@readonly_app.command("off")
def readonly_off(
    data_dir: command_support.DataDirOption = None, database_url: command_support.DatabaseUrlOption = None
) -> None:
    """Accept writes again (QUAYSIDE_REGISTRY_STATE=readonly in a process's environment still forces it)."""

    async def switch_off(conn: asyncpg.Connection) -> RegistryState:
        await set_registry_state(conn, read_only=False, changed_by=f"cli:{getpass.getuser()}")
        return await read_registry_state(conn, forced_by_config=False)

    with command_support.errors_reported():
        _show("now ", asyncio.run(command_support.in_database(data_dir, database_url, switch_off)))


@readonly_app.command("status")
def readonly_status(
    data_dir: command_support.DataDirOption = None, database_url: command_support.DatabaseUrlOption = None
) -> None:
    """Show whether the registry is read-only, until when and why."""

    async def status(conn: asyncpg.Connection) -> RegistryState:
        return await read_registry_state(conn, forced_by_config=False)

    with command_support.errors_reported():
        _show("", asyncio.run(command_support.in_database(data_dir, database_url, status)))

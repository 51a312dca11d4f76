"""`quayside replication backfill [--no-wait] | status [--json] | remove-location NAME [--yes]`.

On an embedded install's database (--data-dir) or the database at --database-url, like the other
commands; the replication settings (QUAYSIDE_FEATURE_STORAGE_REPLICATION,
QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS, QUAYSIDE_STORAGE_LOCATIONS) come from the environment,
as the services read them. The copies themselves are made by the replication service
(`python -m services.replication`, or `quayside up`): backfill queues them and follows its progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from quayside import command_support
from shared.config import Settings
from shared.db import create_pool
from shared.replication import (
    ReplicationStatus,
    SoleCopiesError,
    backfill,
    placement_count,
    remove_location,
    replication_status,
    sole_copies,
)

replication_app = typer.Typer(
    no_args_is_help=True, help="Geo-replication: backfill, status, remove-location."
)

# How often backfill's progress is looked at.
PROGRESS_INTERVAL_S = 0.5


class ReplicationOffError(LookupError):
    def __init__(self) -> None:
        super().__init__(
            "replication is off: set QUAYSIDE_FEATURE_STORAGE_REPLICATION=true and"
            " QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS"
        )


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def status_table(status: ReplicationStatus) -> Table:
    table = Table(
        title=f"Replication ({'on' if status.enabled else 'off'}); default locations: "
        f"{', '.join(status.default_locations) or 'none'}"
    )
    for column in (
        "location",
        "state",
        "pending",
        "in flight",
        "failed",
        "lag",
        "blobs copied",
        "bytes copied",
    ):
        table.add_column(column, justify="left" if column in ("location", "state") else "right")
    for entry in status.locations:
        table.add_row(
            entry.location if entry.configured else f"{entry.location} (not configured)",
            entry.state,
            str(entry.pending),
            str(entry.in_flight),
            str(entry.failed),
            f"{entry.lag_seconds:.1f} s",
            str(entry.blobs_copied),
            f"{_human_bytes(entry.bytes_copied)} ({entry.bytes_copied:,})",
        )
    return table


def _print_errors(console: Console, status: ReplicationStatus) -> None:
    for entry in status.locations:
        for failure in entry.last_errors:
            console.print(
                f"FAIL {entry.location} {failure.digest} (attempt {failure.attempts},"
                f" next {failure.next_attempt_at:%H:%M:%S}): {failure.error}",
                highlight=False,
                markup=False,
            )


@contextmanager
def _refusal_reported() -> Iterator[None]:
    """remove-location's refusal as one `error:` line and exit status 1."""
    try:
        yield
    except SoleCopiesError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


async def _with_pool(
    data_dir: command_support.DataDirOption,
    database_url: command_support.DatabaseUrlOption,
    work: Callable[[asyncpg.Pool], Awaitable[None]],
) -> None:
    async with command_support.database_url_of(data_dir, database_url) as dsn:
        pool = await create_pool(dsn, max_size=2)
        try:
            await work(pool)
        finally:
            await pool.close()


async def _status_of(pool: asyncpg.Pool, settings: Settings) -> ReplicationStatus:
    async with pool.acquire() as conn:
        return await replication_status(conn, settings)


async def _follow(pool: asyncpg.Pool, settings: Settings, console: Console) -> None:
    """A progress bar per location until no copy is outstanding anywhere."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bars: dict[str, TaskID] = {}
    totals: dict[str, int] = {}
    with Progress(*columns, console=console) as progress:
        while True:
            status = await _status_of(pool, settings)
            for entry in status.locations:
                outstanding = entry.pending + entry.in_flight + entry.failed
                totals[entry.location] = max(totals.get(entry.location, 0), outstanding)
                if entry.location not in bars and totals[entry.location]:
                    bars[entry.location] = progress.add_task(entry.location, total=totals[entry.location])
                if entry.location in bars:
                    failing = f" FAIL: {entry.last_errors[0].error[:80]}" if entry.last_errors else ""
                    progress.update(
                        bars[entry.location],
                        total=totals[entry.location],
                        completed=totals[entry.location] - outstanding,
                        description=f"{entry.location}{failing}",
                    )
            if status.outstanding == 0:
                return
            await asyncio.sleep(PROGRESS_INTERVAL_S)


@replication_app.command("backfill")
def backfill_command(
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Queue the copies and return at once.")] = False,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Queue a copy of every blob missing from a location it must reach, then show progress until
    every copy is made (the replication service makes them)."""
    console = Console()

    async def work(pool: asyncpg.Pool) -> None:
        settings = Settings()
        if not settings.feature_storage_replication:
            raise ReplicationOffError()
        added = await backfill(pool, settings)
        console.print(f"{added} copies queued", highlight=False)
        if not no_wait:
            await _follow(pool, settings, console)
            console.print("every blob is in every location it must reach", highlight=False)

    with command_support.errors_reported():
        asyncio.run(_with_pool(data_dir, database_url, work))


@replication_app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="The status as JSON (the API's answer).")] = False,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Per location: copies pending, in flight and failing (with why), lag, blobs and bytes copied."""
    console = Console()

    async def work(pool: asyncpg.Pool) -> None:
        status = await _status_of(pool, Settings())
        if as_json:
            typer.echo(status.model_dump_json(indent=2))
            return
        console.print(status_table(status))
        _print_errors(console, status)

    with command_support.errors_reported():
        asyncio.run(_with_pool(data_dir, database_url, work))


@replication_app.command("remove-location")
def remove_location_command(
    name: Annotated[str, typer.Argument(help="The location whose placements are dropped.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Drop every placement of a location (its objects stay in its storage), refusing while it holds
    a blob's only copy; also its queued copies and the replication targets naming it."""
    if "\x00" in name or not 0 < len(name) <= 255:
        raise typer.BadParameter("1 to 255 characters, no NUL", param_hint="NAME")
    console = Console()

    async def work(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            sole = await sole_copies(conn, name)
            if sole.blobs:
                raise SoleCopiesError(name, sole)
            count = await placement_count(conn, name)
        if not yes and not typer.confirm(
            f"Remove the {count} placement(s) of location {name!r}? (objects stay in its storage)"
        ):
            raise typer.Abort()
        removed = 0
        async for digest in remove_location(pool, name):
            console.print(f"removed {digest} from {name}", highlight=False, markup=False)
            removed += 1
        console.print(f"{removed} placement(s) removed from {name}", highlight=False, markup=False)
        settings = Settings()
        if name in settings.distributed_storage_default_locations or name in settings.storage_preference:
            console.print(
                f"warning: {name} is still in QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS or"
                " QUAYSIDE_STORAGE_PREFERENCE: blobs will be copied or pushed there again",
                highlight=False,
                markup=False,
            )

    with command_support.errors_reported(), _refusal_reported():
        asyncio.run(_with_pool(data_dir, database_url, work))

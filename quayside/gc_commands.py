"""`quayside gc run [--dry-run]` and `quayside gc status`: a garbage-collection pass now, with what
it deletes (or would), and the record of the last passes.

On an embedded install (--data-dir, the default) the pass uses its `local` storage folder; with
--database-url it uses the storage locations of QUAYSIDE_STORAGE_LOCATIONS, as the gc service does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

# quayside.cli imports this module for its command group; its names are used only when commands run.
from quayside import command_support, install
from quayside.embedded import STORAGE_LOCATION
from services.gc.pacing import lower_process_priority
from services.gc.passes import GcPass, PassOptions, PassOutcome, recent_passes, run_pass
from shared.config import FilesystemLocation, Settings
from shared.db import create_pool
from shared.storage import Locations

gc_app = typer.Typer(no_args_is_help=True, help="Garbage collection: run a pass now, see what passes freed.")

# Items listed one by one before the totals; beyond, only the totals.
_LISTED_ITEMS = 200


def _settings(data_dir: Path | None, database_url: str | None, dsn: str) -> Settings:
    if data_dir is None and database_url is not None:
        return Settings(database_url=dsn)
    folder = install.DataDir(data_dir or install.DEFAULT_DATA_DIR)
    return Settings(
        database_url=dsn,
        storage_locations={STORAGE_LOCATION: FilesystemLocation(root=str(folder.storage))},
        storage_preference=[STORAGE_LOCATION],
    )


async def _run(data_dir: Path | None, database_url: str | None, dry_run: bool) -> PassOutcome:
    async with command_support.database_url_of(data_dir, database_url) as dsn:
        settings = _settings(data_dir, database_url, dsn)
        lower_process_priority(settings.garbage_collection_niceness)
        pool = await create_pool(dsn, max_size=2)
        try:
            locations = await Locations.open(settings)
            try:
                return await run_pass(pool, locations, settings, PassOptions(dry_run=dry_run))
            finally:
                await locations.close()
        finally:
            await pool.close()


async def _passes(data_dir: Path | None, database_url: str | None, limit: int) -> list[GcPass]:
    async with command_support.database_url_of(data_dir, database_url) as dsn:
        pool = await create_pool(dsn, max_size=1)
        try:
            return await recent_passes(pool, limit)
        finally:
            await pool.close()


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _items_table(outcome: PassOutcome, verb: str) -> Table:
    table = Table(title=f"Content {verb}")
    table.add_column("kind")
    table.add_column("digest")
    table.add_column("size", justify="right")
    table.add_column("locations")
    tally = outcome.tally
    for manifest in tally.manifests[:_LISTED_ITEMS]:
        table.add_row("manifest", manifest.digest, "", f"repository {manifest.repository_id}")
    for blob in tally.blobs[:_LISTED_ITEMS]:
        table.add_row("blob", blob.digest, _size(blob.size), ", ".join(blob.locations))
    hidden = max(len(tally.manifests) - _LISTED_ITEMS, 0) + max(len(tally.blobs) - _LISTED_ITEMS, 0)
    if hidden:
        table.add_row("…", f"{hidden} more", "", "")
    return table


def _totals_table(record: GcPass, verb: str) -> Table:
    table = Table(title=f"Pass {record.id}: totals {verb}")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("namespaces purged", record.namespaces_purged),
        ("repositories purged", record.repositories_purged),
        ("tags purged", record.tags_purged),
        ("manifests deleted", record.manifests_deleted),
        ("blobs deleted", record.blobs_deleted),
    ]
    for label, count in rows:
        table.add_row(label, str(count))
    for location, count in sorted(record.bytes_by_location.items()):
        table.add_row(f"bytes reclaimed in {location}", f"{count} ({_size(count)})")
    table.add_row("bytes reclaimed", f"{record.bytes_reclaimed} ({_size(record.bytes_reclaimed)})")
    for name, count in sorted(record.rows_by_table.items()):
        table.add_row(f"rows of {name}", str(count))
    return table


@gc_app.command("run")
def gc_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Delete nothing; show what a pass would delete.")
    ] = False,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Run one garbage-collection pass now and show what it deleted (with --dry-run: would delete)."""
    with command_support.errors_reported():
        outcome = asyncio.run(_run(data_dir, database_url, dry_run))
    if outcome.record is None:
        typer.echo(f"error: no pass run: {outcome.reason}", err=True)
        raise typer.Exit(1)
    verb = "that would be deleted" if dry_run else "deleted"
    console = Console(width=160)
    console.print(_items_table(outcome, verb))
    console.print(_totals_table(outcome.record, verb))


@gc_app.command("status")
def gc_status(
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="How many of the last passes.")] = 10,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """The last passes, newest first: when, and what each freed."""
    with command_support.errors_reported():
        passes = asyncio.run(_passes(data_dir, database_url, limit))
    table = Table(title="Garbage-collection passes")
    for column in ("pass", "started", "status", "dry", "tags", "manifests", "blobs", "repos", "namespaces"):
        table.add_column(column)
    table.add_column("reclaimed", justify="right")
    for record in passes:
        table.add_row(
            str(record.id),
            record.started_at.isoformat(timespec="seconds"),
            record.status,
            "yes" if record.dry_run else "",
            str(record.tags_purged),
            str(record.manifests_deleted),
            str(record.blobs_deleted),
            str(record.repositories_purged),
            str(record.namespaces_purged),
            _size(record.bytes_reclaimed),
        )
    Console(width=160).print(table)

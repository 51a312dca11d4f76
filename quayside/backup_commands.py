"""`quayside backup DEST` and `quayside restore SRC`: a consistent copy of a whole installation
(quayside/backup), of an embedded data folder (--data-dir) or of a server database (--database-url,
with the storage locations of QUAYSIDE_STORAGE_LOCATIONS), and its rebuild, each verified."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

# quayside.cli imports this module for its commands; its names are used only when commands run.
from quayside import command_support, install
from quayside.backup.archive import BackupError, BackupFolder, BackupManifest, InstallConfig
from quayside.backup.dump import Installation, take_backup
from quayside.backup.restore import EMBEDDED_LOCATION, RestoreReport, restore_embedded, restore_server
from shared.config import FilesystemLocation, Settings, StorageLocation

backup_app: typer.Typer = typer.Typer()
_LOCATIONS = TypeAdapter(dict[str, StorageLocation])


@contextmanager
def _reported() -> Iterator[None]:
    """The commands' one-line errors, backup failures included."""
    with command_support.errors_reported():
        try:
            yield
        except BackupError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None


class RichProgress:
    """The backup's progress on stderr: one bar per phase."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def phase(self, name: str, total: int | None) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total or 0)
        self._task = self._progress.add_task(name, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


def _summary(manifest: BackupManifest) -> str:
    counts = manifest.counts
    size = sum(blob.size for blob in manifest.blobs)
    return (
        f"{counts['repository']} repositories, {counts['manifest']} manifests, {counts['tag']} tags,"
        f" {len(manifest.blobs)} blobs ({size} bytes); consistent as of"
        f" {manifest.consistency_point.isoformat(timespec='milliseconds')}"
    )


async def _backup(
    data_dir: Path | None, database_url: str | None, dest: Path, progress: RichProgress
) -> BackupManifest:
    settings = Settings()
    folder = BackupFolder(dest)
    if data_dir is None and database_url is not None:
        config = InstallConfig(
            token_secret=settings.token_secret,
            secrets_key=settings.secrets_key,
            storage_locations=settings.storage_locations,
            storage_preference=settings.storage_preference,
        )
        source = Installation(database_url=database_url, config=config, embedded=False)
        return await take_backup(source, folder, pg_bin_dir=settings.pg_bin_dir, progress=progress)
    layout = install.DataDir(data_dir or install.DEFAULT_DATA_DIR)
    async with install.existing_install(layout) as dsn:
        secret = (await asyncio.to_thread(layout.token_secret_file.read_text)).strip()
        config = InstallConfig(
            token_secret=secret,
            secrets_key=settings.secrets_key,
            storage_locations={EMBEDDED_LOCATION: FilesystemLocation(root=str(layout.storage))},
            storage_preference=[EMBEDDED_LOCATION],
        )
        source = Installation(database_url=dsn, config=config, embedded=True)
        return await take_backup(source, folder, pg_bin_dir=settings.pg_bin_dir, progress=progress)


@backup_app.command("backup")
def backup(
    dest: Annotated[Path, typer.Argument(help="A new (or empty) folder to write the backup into.")],
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Back up the whole installation (database, every blob, secrets) while it keeps serving."""
    console = Console(stderr=True)
    with _reported(), RichProgress(console) as progress:
        manifest = asyncio.run(_backup(data_dir, database_url, dest, progress))
    typer.echo(f"backed up {_summary(manifest)} into {dest}")


@backup_app.command("restore")
def restore(
    src: Annotated[Path, typer.Argument(help="A folder written by `quayside backup`.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Restore as a new embedded install in this (new) folder."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Restore into this empty PostgreSQL database.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            envvar="QUAYSIDE_STORAGE_LOCATIONS",
            help="With --database-url: the storage locations, as QUAYSIDE_STORAGE_LOCATIONS (JSON).",
        ),
    ] = None,
    preference: Annotated[
        str | None,
        typer.Option(
            "--storage-preference", envvar="QUAYSIDE_STORAGE_PREFERENCE", help="Blobs go to the first."
        ),
    ] = None,
) -> None:
    """Rebuild an installation from a backup and verify it before reporting success."""
    if (data_dir is None) == (database_url is None):
        raise typer.BadParameter("give either --data-dir or --database-url")
    folder = BackupFolder(src)
    settings = Settings()
    console = Console(stderr=True)
    with _reported(), RichProgress(console) as progress:
        if data_dir is not None:
            report: RestoreReport = asyncio.run(
                restore_embedded(
                    folder, install.DataDir(data_dir), pg_bin_dir=settings.pg_bin_dir, progress=progress
                )
            )
        else:
            assert database_url is not None
            if storage is None:
                raise typer.BadParameter("--database-url needs --storage (or QUAYSIDE_STORAGE_LOCATIONS)")
            locations = _LOCATIONS.validate_json(storage)
            order = [name.strip() for name in preference.split(",")] if preference else list(locations)
            report = asyncio.run(
                restore_server(
                    folder, database_url, locations, order, pg_bin_dir=settings.pg_bin_dir, progress=progress
                )
            )
    typer.echo(f"restored and verified {_summary(report.manifest)}; blobs in location {report.location}")
    for note in report.notes:
        typer.echo(f"note: {note}")

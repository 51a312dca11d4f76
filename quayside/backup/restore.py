"""Rebuilding an installation from a backup folder: a new embedded data folder, or a given (empty)
database and storage; verified (row counts, every referenced blob in place) before it reports."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from quayside.backup.archive import (
    BackupError,
    BackupFolder,
    BackupManifest,
    InstallConfig,
    NoProgress,
    Progress,
)
from quayside.backup.dump import pg_tool, run_tool
from quayside.backup.storage_copy import copy_blobs_in
from quayside.backup.verify import verify_backup, verify_installation
from quayside.install import DATABASE_NAME, DataDir, postgres_dsn, start_postgres
from shared.config import FilesystemLocation, StorageLocation
from shared.db.migrate import migrate

# The location of an embedded install (quayside.embedded.STORAGE_LOCATION).
EMBEDDED_LOCATION = "local"


@dataclass
class RestoreReport:
    manifest: BackupManifest
    location: str
    notes: list[str] = field(default_factory=list)


async def _empty_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    if tables:
        raise BackupError("the target database is not empty: restore into a new database")


async def _restore_database(folder: BackupFolder, database_url: str, pg_bin_dir: str | None) -> None:
    await run_tool(
        [
            pg_tool("pg_restore", pg_bin_dir),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--dbname={database_url}",
            str(folder.database),
        ]
    )
    await migrate(database_url)


async def _adopt_storage(database_url: str, manifest: BackupManifest, location: str) -> None:
    """Placements as the target has them: every backed-up blob in its one location; blob rows whose
    bytes are not in the backup (unreferenced blobs collected while it ran) go. Upload sessions are
    dropped (their chunks are not backed up: clients restart those uploads), and so is the backup's
    own lease."""
    digests = [blob.digest for blob in manifest.blobs]
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM blob WHERE NOT (digest = ANY($1::text[]))", digests)
            await conn.execute("DELETE FROM blob_placement")
            await conn.execute(
                "INSERT INTO blob_placement (digest, location) SELECT unnest($1::text[]), $2",
                digests,
                location,
            )
            await conn.execute("DELETE FROM upload")
            await conn.execute("DELETE FROM backup_lease")
    finally:
        await conn.close()


async def _restore_into(
    folder: BackupFolder,
    manifest: BackupManifest,
    database_url: str,
    config: InstallConfig,
    pg_bin_dir: str | None,
    progress: Progress,
) -> str:
    progress.phase("restoring the database", None)
    await _restore_database(folder, database_url, pg_bin_dir)
    progress.phase("copying blobs", sum(blob.size for blob in manifest.blobs))
    location = await copy_blobs_in(folder, manifest.blobs, config, progress)
    await _adopt_storage(database_url, manifest, location)
    progress.phase("verifying the restored installation", None)
    await verify_installation(database_url, config, manifest)
    return location


async def _read_verified(folder: BackupFolder, progress: Progress) -> tuple[BackupManifest, InstallConfig]:
    manifest, config = await folder.read()
    progress.phase("checking the backup", sum(blob.size for blob in manifest.blobs))
    await verify_backup(folder, manifest, progress)
    return manifest, config


def _new_data_dir(data_dir: DataDir) -> None:
    if data_dir.root.exists() and any(data_dir.root.iterdir()):
        raise BackupError(f"{data_dir.root} is not empty: restore into a new data folder")


@contextlib.asynccontextmanager
async def _new_embedded_database(data_dir: DataDir) -> AsyncIterator[str]:
    """A started embedded PostgreSQL in a new data folder with an empty quayside database."""
    await asyncio.to_thread(data_dir.storage.mkdir, parents=True, exist_ok=True)
    server = await asyncio.to_thread(start_postgres, data_dir.postgres)
    try:
        conn = await asyncpg.connect(postgres_dsn(server, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await conn.close()
        yield postgres_dsn(server, DATABASE_NAME)
    finally:
        await asyncio.to_thread(server.cleanup)


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")


async def restore_embedded(
    folder: BackupFolder,
    data_dir: DataDir,
    *,
    pg_bin_dir: str | None = None,
    progress: Progress | None = None,
) -> RestoreReport:
    """Rebuild the backed-up installation as a new embedded data folder (`quayside up --data-dir`)."""
    progress = progress or NoProgress()
    await asyncio.to_thread(_new_data_dir, data_dir)
    manifest, config = await _read_verified(folder, progress)
    target = config.model_copy(
        update={
            "storage_locations": {EMBEDDED_LOCATION: FilesystemLocation(root=str(data_dir.storage))},
            "storage_preference": [EMBEDDED_LOCATION],
        }
    )
    async with _new_embedded_database(data_dir) as dsn:
        location = await _restore_into(folder, manifest, dsn, target, pg_bin_dir, progress)
    await asyncio.to_thread(_write_secret, data_dir.token_secret_file, config.token_secret)
    notes = []
    if config.secrets_key:
        notes.append("the source used QUAYSIDE_SECRETS_KEY: start with the same value (config.json)")
    return RestoreReport(manifest=manifest, location=location, notes=notes)


async def restore_server(
    folder: BackupFolder,
    database_url: str,
    storage_locations: dict[str, StorageLocation],
    storage_preference: list[str],
    *,
    pg_bin_dir: str | None = None,
    progress: Progress | None = None,
) -> RestoreReport:
    """Rebuild the backed-up installation into an empty database and the given storage (blobs go to
    the preferred location)."""
    progress = progress or NoProgress()
    manifest, config = await _read_verified(folder, progress)
    await _empty_database(database_url)
    target = config.model_copy(
        update={"storage_locations": storage_locations, "storage_preference": storage_preference}
    )
    location = await _restore_into(folder, manifest, database_url, target, pg_bin_dir, progress)
    notes = [
        f"run the services with the source's QUAYSIDE_TOKEN_SECRET and QUAYSIDE_SECRETS_KEY ({folder.config})"
    ]
    return RestoreReport(manifest=manifest, location=location, notes=notes)

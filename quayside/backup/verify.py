"""Checking a backup folder after it is written, and an installation after a restore."""

from __future__ import annotations

import asyncio

import asyncpg

from quayside.backup.archive import (
    COUNTED_TABLES,
    BackupError,
    BackupFolder,
    BackupManifest,
    InstallConfig,
    Progress,
)
from quayside.backup.storage_copy import backup_driver, opened_locations, run_all
from shared.storage import PathNotFoundError, StorageDriver
from shared.storage.paths import blob_path

_CONCURRENT_STATS = 16


class VerificationError(BackupError):
    pass


async def _check_sizes(driver: StorageDriver, sizes: dict[str, int], progress: Progress | None) -> list[str]:
    """The blobs missing from driver, or of another size there."""
    bad: list[str] = []
    semaphore = asyncio.Semaphore(_CONCURRENT_STATS)

    async def check(digest: str, size: int) -> None:
        async with semaphore:
            try:
                found = await driver.stat(blob_path(digest))
            except PathNotFoundError:
                found = -1
        if found != size:
            bad.append(digest)
        if progress is not None:
            progress.advance(size)

    await run_all(check(digest, size) for digest, size in sizes.items())
    return bad


async def verify_backup(folder: BackupFolder, manifest: BackupManifest, progress: Progress) -> None:
    """Every blob of the manifest is in the folder with its size (their digests were checked while
    copying) and the database dump is a whole archive; VerificationError otherwise."""
    sizes = {blob.digest: blob.size for blob in manifest.blobs}
    bad = await _check_sizes(backup_driver(folder), sizes, progress)
    if bad:
        raise VerificationError(f"{len(bad)} blobs missing or truncated in the backup, e.g. {bad[0]}")
    if not await asyncio.to_thread(lambda: folder.database.is_file() and folder.database.stat().st_size > 0):
        raise VerificationError(f"{folder.database} is missing or empty")


async def verify_installation(database_url: str, config: InstallConfig, manifest: BackupManifest) -> None:
    """The restored database has the backup's row counts, and every blob a manifest references is
    placed in a configured location that holds it with its size; VerificationError otherwise."""
    conn = await asyncpg.connect(database_url)
    try:
        counts = {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in COUNTED_TABLES}
        rows = await conn.fetch(
            "SELECT DISTINCT mb.digest, b.size, p.location FROM manifest_blob mb"
            " JOIN blob b ON b.digest = mb.digest LEFT JOIN blob_placement p ON p.digest = mb.digest"
        )
    finally:
        await conn.close()
    if counts != manifest.counts:
        differing = {
            table: (manifest.counts.get(table), count)
            for table, count in counts.items()
            if manifest.counts.get(table) != count
        }
        raise VerificationError(f"row counts differ from the backup's (backup, restored): {differing}")
    by_location: dict[str, dict[str, int]] = {}
    for row in rows:
        if row["location"] is None or row["location"] not in config.storage_locations:
            raise VerificationError(f"blob {row['digest']} is placed in no configured location")
        by_location.setdefault(row["location"], {})[row["digest"]] = row["size"]
    async with opened_locations(config) as locations:
        for name, sizes in by_location.items():
            bad = await _check_sizes(locations.driver(name), sizes, None)
            if bad:
                raise VerificationError(f"{len(bad)} blobs missing or truncated in {name}, e.g. {bad[0]}")

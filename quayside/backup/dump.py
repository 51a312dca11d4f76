"""Taking a backup: lease, one database snapshot dumped by pg_dump, the snapshot's blobs copied,
the copy verified, then backup.json written."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from quayside.backup.archive import (
    COUNTED_TABLES,
    BackupError,
    BackupFolder,
    BackupManifest,
    BlobEntry,
    InstallConfig,
    NoProgress,
    Progress,
)
from quayside.backup.storage_copy import PlacedBlob, copy_blobs_out
from quayside.backup.verify import verify_backup
from shared.backup_lease import release_lease, renew_lease, take_lease

LEASE_TTL = timedelta(minutes=10)


@dataclass
class Installation:
    """What a backup is taken of, or restored into."""

    database_url: str
    config: InstallConfig
    embedded: bool


def pg_tool(name: str, bin_dir: str | None = None) -> str:
    """pg_dump or pg_restore: from bin_dir (QUAYSIDE_PG_BIN_DIR), else the one pgserver ships."""
    if bin_dir is not None:
        return str(Path(bin_dir) / name)
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


async def run_tool(command: list[str]) -> None:
    """Run a PostgreSQL client tool; BackupError with its last output lines when it fails."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        tail = " | ".join(output.decode(errors="replace").strip().splitlines()[-3:])
        raise BackupError(f"{Path(command[0]).name} failed ({process.returncode}): {tail}")


@dataclass
class Snapshot:
    consistency_point: datetime
    counts: dict[str, int]
    blobs: dict[str, PlacedBlob]
    unplaced: list[str]  # blobs manifests reference that no location holds (a damaged source)


@contextlib.asynccontextmanager
async def _lease(database_url: str) -> AsyncIterator[None]:
    """Hold a backup lease, renewed until the block ends."""
    conn = await asyncpg.connect(database_url)
    try:
        lease_id = await take_lease(conn, f"quayside backup on {socket.gethostname()}", LEASE_TTL)

        async def renew() -> None:
            while True:
                await asyncio.sleep(LEASE_TTL.total_seconds() / 3)
                await renew_lease(conn, lease_id, LEASE_TTL)

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await release_lease(conn, lease_id)
    finally:
        await conn.close()


async def dump_database(database_url: str, dump_file: Path, pg_bin_dir: str | None) -> Snapshot:
    """pg_dump of one REPEATABLE READ snapshot, and what that snapshot holds: counts, placed blobs."""
    conn = await asyncpg.connect(database_url)
    try:
        # Read before the snapshot: whatever committed before this moment is in it.
        point: datetime = await conn.fetchval("SELECT clock_timestamp()")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot_id = await conn.fetchval("SELECT pg_export_snapshot()")
            rows = await conn.fetch(
                "SELECT b.digest, b.size, array_agg(p.location ORDER BY p.location) AS locations,"
                " EXISTS (SELECT 1 FROM manifest_blob mb WHERE mb.digest = b.digest) AS referenced"
                " FROM blob b JOIN blob_placement p ON p.digest = b.digest GROUP BY b.digest, b.size"
            )
            unplaced = await conn.fetch(
                "SELECT DISTINCT mb.digest FROM manifest_blob mb"
                " WHERE NOT EXISTS (SELECT 1 FROM blob_placement p WHERE p.digest = mb.digest)"
            )
            counts = {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in COUNTED_TABLES}
            # The exporting transaction stays open until pg_dump has taken the snapshot over.
            await run_tool(
                [
                    pg_tool("pg_dump", pg_bin_dir),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot_id}",
                    f"--file={dump_file}",
                    f"--dbname={database_url}",
                ]
            )
    finally:
        await conn.close()
    return Snapshot(
        consistency_point=point,
        counts=counts,
        blobs={
            row["digest"]: PlacedBlob(
                size=row["size"], locations=list(row["locations"]), referenced=row["referenced"]
            )
            for row in rows
        },
        unplaced=[row["digest"] for row in unplaced],
    )


async def take_backup(
    source: Installation,
    folder: BackupFolder,
    *,
    pg_bin_dir: str | None = None,
    progress: Progress | None = None,
) -> BackupManifest:
    """Back the installation up into a new folder and verify the copy; the backup's manifest."""
    progress = progress or NoProgress()
    await folder.prepare_new()
    async with _lease(source.database_url):
        progress.phase("dumping the database", None)
        snapshot = await dump_database(source.database_url, folder.database, pg_bin_dir)
        if snapshot.unplaced:
            raise BackupError(
                f"the source installation lacks {len(snapshot.unplaced)} blobs its manifests reference,"
                f" e.g. {snapshot.unplaced[0]}"
            )
        progress.phase("copying blobs", sum(blob.size for blob in snapshot.blobs.values()))
        gone = set(await copy_blobs_out(source.config, snapshot.blobs, folder, progress))
    blobs = [
        BlobEntry(digest=digest, size=blob.size)
        for digest, blob in sorted(snapshot.blobs.items())
        if digest not in gone
    ]
    manifest = BackupManifest(
        created_at=datetime.now(UTC),
        consistency_point=snapshot.consistency_point,
        source="embedded" if source.embedded else "server",
        # The restore keeps the blob rows whose bytes are in the backup, and only those.
        counts={**snapshot.counts, "blob": len(blobs)},
        blobs=blobs,
    )
    progress.phase("verifying the copy", manifest_bytes(manifest))
    await verify_backup(folder, manifest, progress)
    await folder.write_config(source.config)
    await folder.write_manifest(manifest)
    return manifest


def manifest_bytes(manifest: BackupManifest) -> int:
    return sum(blob.size for blob in manifest.blobs)

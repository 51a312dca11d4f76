"""Copying blobs between an installation's storage locations and a backup folder, through the
project's storage drivers (filesystem, S3), each copy checked against its digest and size."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from quayside.backup.archive import BackupError, BackupFolder, BlobEntry, InstallConfig, Progress
from shared.config import Settings
from shared.oci.digest import new_hasher, parse_digest
from shared.storage import FilesystemDriver, Locations, PathNotFoundError, StorageDriver, StorageError
from shared.storage.paths import blob_path

# Blobs copied at once: enough to hide S3 latency, few enough for a small machine.
_CONCURRENT_COPIES = 8
# Chunks at least this big are hashed in a thread, so the event loop keeps serving.
_THREAD_HASH_BYTES = 64 * 1024


class CopyFailedError(BackupError):
    pass


@dataclass
class PlacedBlob:
    size: int
    locations: list[str]
    # A manifest references it; an unreferenced blob may be collected while the backup runs.
    referenced: bool


@contextlib.asynccontextmanager
async def opened_locations(config: InstallConfig) -> AsyncIterator[Locations]:
    settings = Settings(
        storage_locations=config.storage_locations, storage_preference=config.storage_preference
    )
    locations = await Locations.open(settings)
    try:
        yield locations
    finally:
        await locations.close()


async def run_all(copies: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the copies together; the first failure is raised as itself (the others are cancelled)."""
    try:
        async with asyncio.TaskGroup() as tasks:
            for copy in copies:
                tasks.create_task(copy)
    except ExceptionGroup as group:
        raise group.exceptions[0] from None


def backup_driver(folder: BackupFolder) -> FilesystemDriver:
    return FilesystemDriver(folder.blobs_root, name="backup")


async def copy_blob(source: StorageDriver, target: StorageDriver, digest: str, size: int) -> None:
    """Copy one blob; CopyFailedError (nothing left at the target) when its bytes do not match."""
    algorithm, expected = parse_digest(digest)
    hasher = new_hasher(algorithm)
    path = blob_path(digest)

    async def checked() -> AsyncIterator[bytes]:
        copied = 0
        async for chunk in source.read(path):
            if len(chunk) >= _THREAD_HASH_BYTES:
                await asyncio.to_thread(hasher.update, chunk)
            else:
                hasher.update(chunk)
            copied += len(chunk)
            yield chunk
        if copied != size or hasher.hexdigest() != expected:
            # Raised inside the stream: the driver drops its partial write.
            raise CopyFailedError(f"{digest} in {source.name} has {copied} bytes that do not match it")

    await target.put(path, checked())


async def copy_blobs_out(
    config: InstallConfig, blobs: dict[str, PlacedBlob], folder: BackupFolder, progress: Progress
) -> list[str]:
    """Copy every blob into the backup folder, from the first location (by preference) that holds a
    good copy. A referenced blob without one is a CopyFailedError; an unreferenced one that is gone
    everywhere (collected meanwhile) is left out: the digests left out."""
    target = backup_driver(folder)
    semaphore = asyncio.Semaphore(_CONCURRENT_COPIES)
    left_out: list[str] = []
    async with opened_locations(config) as locations:
        order = locations.order

        async def copy(digest: str, blob: PlacedBlob) -> None:
            candidates = [name for name in order if name in blob.locations]
            errors: list[str] = []
            missing = 0
            async with semaphore:
                for name in candidates:
                    try:
                        await copy_blob(locations.driver(name), target, digest, blob.size)
                    except PathNotFoundError as error:
                        missing += 1
                        errors.append(f"{name}: {error}")
                        continue
                    except (StorageError, CopyFailedError) as error:
                        errors.append(f"{name}: {error}")
                        continue
                    progress.advance(blob.size)
                    return
            if not blob.referenced and candidates and missing == len(candidates):
                left_out.append(digest)
                return
            raise CopyFailedError(
                f"no good copy of {digest} ({'; '.join(errors) or 'no configured location'})"
            )

        await run_all(copy(digest, blob) for digest, blob in blobs.items())
    return left_out


async def copy_blobs_in(
    folder: BackupFolder, blobs: list[BlobEntry], config: InstallConfig, progress: Progress
) -> str:
    """Copy every blob of the backup into the target's preferred location; that location's name."""
    source = backup_driver(folder)
    semaphore = asyncio.Semaphore(_CONCURRENT_COPIES)
    async with opened_locations(config) as locations:
        target = locations.driver(locations.preferred)

        async def copy(blob: BlobEntry) -> None:
            async with semaphore:
                await copy_blob(source, target, blob.digest, blob.size)
            progress.advance(blob.size)

        await run_all(copy(blob) for blob in blobs)
        return locations.preferred

"""One copy: a blob's bytes from a location holding them into a location lacking them, verified.

The copy runs in one transaction that holds the blob's guard shared (shared/blob_guard.py) from
before the first read until the placement is recorded, so garbage collection cannot delete the
blob meanwhile. The bytes stream from the most preferred readable copy into the target (the
driver's write stays invisible until complete), hashed on the way: a source copy that does not
match fails the write before anything is visible. Then the written object is checked again (a
fresh read, its length and digest) before the placement, the task's removal, the location's
counters and BlobReplicated commit together.

Each chunk is hashed in a thread while the next one is fetched, so hashing adds no wait of its own
to a copy; the transaction makes one statement before the storage work and one (plus the outbox
event) after it.

A failure of any storage (the source, the target, the verification) rolls that back and marks the
task failed with the storage's error text; it is retried with back-off (worker.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import asyncpg

from services.replication import metrics
from shared import blob_guard
from shared.config import Settings
from shared.events.models import BlobReplicated
from shared.events.outbox import enqueue
from shared.oci.digest import new_hasher, parse_digest
from shared.storage import StorageDriver, StorageError
from shared.storage.locations import open_driver
from shared.storage.paths import blob_path

log = logging.getLogger(__name__)


class CopyFailedError(Exception):
    """The copy could not be made; the message says why (a storage's own error text when it failed)."""


@dataclass(frozen=True)
class ClaimedCopy:
    digest: str
    location: str


class Drivers:
    """The configured locations' drivers, each opened on first use; one that fails to open (a
    storage down, refused credentials) is tried again on its next use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._drivers: dict[str, StorageDriver] = {}
        # One per location: a location slow to fail opening does not hold up the others.
        self._opening: dict[str, asyncio.Lock] = {}

    @property
    def order(self) -> list[str]:
        return self._settings.location_order()

    async def get(self, name: str) -> StorageDriver:
        """The driver of location ``name``; CopyFailedError when it is not configured or cannot open."""
        config = self._settings.storage_locations.get(name)
        if config is None:
            raise CopyFailedError(f"location {name!r} is not configured (QUAYSIDE_STORAGE_LOCATIONS)")
        async with self._opening.setdefault(name, asyncio.Lock()):
            if name not in self._drivers:
                try:
                    self._drivers[name] = await open_driver(name, config)
                except StorageError as error:
                    raise CopyFailedError(f"location {name!r}: {error}") from error
            return self._drivers[name]

    async def close(self) -> None:
        for driver in self._drivers.values():
            await driver.close()
        self._drivers.clear()


class _StreamDigest:
    """The digest and length of a stream fed chunk by chunk: each chunk is hashed in a thread while
    the caller fetches the next one (the updates stay in order: one runs at a time)."""

    def __init__(self, algorithm: str) -> None:
        self._algorithm = algorithm
        self._hasher = new_hasher(algorithm)
        self._pending: asyncio.Future[None] | None = None
        self.length = 0

    async def add(self, chunk: bytes) -> None:
        await self._settled()
        self._pending = asyncio.get_running_loop().run_in_executor(None, self._hasher.update, chunk)
        self.length += len(chunk)

    async def digest(self) -> str:
        await self._settled()
        return f"{self._algorithm}:{self._hasher.hexdigest()}"

    async def _settled(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending


async def _checked(chunks: AsyncIterable[bytes], digest: str, size: int) -> AsyncIterator[bytes]:
    """The chunks unchanged; raises CopyFailedError at their end when they do not hash to digest or
    add up to size, so that the write consuming them fails (and, by the driver contract, leaves
    nothing behind)."""
    streamed = _StreamDigest(parse_digest(digest)[0])
    async for chunk in chunks:
        await streamed.add(chunk)
        yield chunk
    found = await streamed.digest()
    if found != digest or streamed.length != size:
        raise CopyFailedError(f"the source copy does not match: {streamed.length} bytes hashing to {found}")


async def _digest_of(chunks: AsyncIterable[bytes], algorithm: str) -> tuple[str, int]:
    """The digest and length of a stream."""
    streamed = _StreamDigest(algorithm)
    async for chunk in chunks:
        await streamed.add(chunk)
    return await streamed.digest(), streamed.length


async def _source(
    drivers: Drivers, placed: set[str], target: str, digest: str, size: int
) -> tuple[str, StorageDriver]:
    """The most preferred location other than target whose placed copy answers with the blob's
    size; CopyFailedError naming every location tried and its error when none does."""
    path = blob_path(digest)
    tried: list[str] = []
    candidates = [name for name in drivers.order if name in placed and name != target]
    for name in candidates:
        try:
            driver = await drivers.get(name)
            stored = await driver.stat(path)
        except (CopyFailedError, StorageError) as error:
            tried.append(f"{name}: {error}")
            continue
        if stored != size:
            tried.append(f"{name}: holds {stored} bytes, the blob has {size}")
            continue
        return name, driver
    if not candidates:
        raise CopyFailedError(
            f"no configured location holds a copy (placed in: {', '.join(sorted(placed)) or 'none'})"
        )
    raise CopyFailedError("no readable copy: " + "; ".join(tried))


async def _write_verified(source: StorageDriver, target: StorageDriver, digest: str, size: int) -> None:
    """Stream the blob from source into target, checked on the way (a source copy that does not
    match fails the write, nothing is stored), then check what target stored: the length and the
    digest of a fresh read. A mismatch there removes the written object; both raise CopyFailedError."""
    path = blob_path(digest)
    await target.put(path, _checked(source.read(path), digest, size))
    try:
        reread, length = await _digest_of(target.read(path), parse_digest(digest)[0])
        if reread != digest or length != size:
            raise CopyFailedError(f"the target's copy reads back as {reread} ({length} bytes)")
    except CopyFailedError:
        await _discard(target, path)
        raise


async def _discard(driver: StorageDriver, path: str) -> None:
    try:
        await driver.delete(path)
    except StorageError as error:
        log.warning("could not remove the unverified object %s from %s: %s", path, driver.name, error)


_BLOB_AND_PLACEMENTS = """
SELECT b.size, ARRAY(SELECT p.location FROM blob_placement p WHERE p.digest = b.digest) AS placed
  FROM blob b
 WHERE b.digest = $1
"""
_DROP_TASK = "DELETE FROM replication_task WHERE digest = $1 AND location = $2"
# The placement (only while the blob row exists: nothing when the blob went meanwhile, nor when the
# placement existed already), the task's removal and, for a new placement, the location's counters.
# true when the placement is new.
_RECORD = """
WITH placed AS (
    INSERT INTO blob_placement (digest, location, created_at)
    -- clock_timestamp(): the placement's time is when it was recorded, not when the copy began.
    SELECT digest, $2, clock_timestamp() FROM blob WHERE digest = $1
    ON CONFLICT DO NOTHING
    RETURNING 1
), finished AS (
    DELETE FROM replication_task WHERE digest = $1 AND location = $2
)
INSERT INTO replication_counter AS c (location, blobs_copied, bytes_copied)
SELECT $2, 1, $3 FROM placed
    ON CONFLICT (location) DO UPDATE SET blobs_copied = c.blobs_copied + 1,
       bytes_copied = c.bytes_copied + EXCLUDED.bytes_copied, updated_at = now()
RETURNING true
"""


async def _record(conn: asyncpg.Connection, copy: ClaimedCopy, size: int, source: str) -> bool:
    """Placement, task removal, counters and BlobReplicated, in the caller's transaction; False when
    the blob is gone or the placement existed already (nothing announced, nothing counted)."""
    if not await conn.fetchval(_RECORD, copy.digest, copy.location, size):
        return False
    await enqueue(
        conn, BlobReplicated(digest=copy.digest, location=copy.location, size=size, source_location=source)
    )
    return True


async def copy_blob(pool: asyncpg.Pool, drivers: Drivers, copy: ClaimedCopy) -> None:
    """Make one claimed copy (see the module docstring). Raises CopyFailedError (or a driver's
    error) when it could not be made; the transaction is rolled back then. A blob gone meanwhile, or
    already placed there, just ends the task."""
    started = time.monotonic()
    async with pool.acquire() as conn, conn.transaction():
        await blob_guard.hold_for_push(conn, [copy.digest])
        blob = await conn.fetchrow(_BLOB_AND_PLACEMENTS, copy.digest)
        if blob is None or copy.location in blob["placed"]:
            await conn.execute(_DROP_TASK, copy.digest, copy.location)
            return
        size: int = blob["size"]
        placed = set(blob["placed"])
        source_name, source = await _source(drivers, placed, copy.location, copy.digest, size)
        target = await drivers.get(copy.location)
        await _write_verified(source, target, copy.digest, size)
        recorded = await _record(conn, copy, size, source_name)
    if recorded:
        metrics.COPIES.labels(copy.location, "copied").inc()
        metrics.COPY_SECONDS.labels(copy.location).observe(time.monotonic() - started)
        log.info("replicated %s (%d bytes) from %s to %s", copy.digest, size, source_name, copy.location)

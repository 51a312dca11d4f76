"""Blobs: their records (blob, blob_placement, repository_blob), their bytes in storage, and
finding a readable copy in the locations this instance prefers.

A blob's bytes live at blob_path(digest) in every location that has a placement row for it; a
placement is recorded only for bytes verified against the digest.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from shared.storage import Locations, StorageDriver, StorageError
from shared.storage.paths import blob_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlobSource:
    """A readable copy of a blob: the location's driver and the object's path there."""

    location: str
    driver: StorageDriver
    path: str

    def local_path(self) -> str | None:
        return self.driver.local_path(self.path)

    async def download_url(self) -> str | None:
        return await self.driver.download_url(self.path)

    def read(self, offset: int, length: int) -> AsyncIterator[bytes]:
        return self.driver.read(self.path, offset, length)


async def read_small_blob(pool: asyncpg.Pool, locations: Locations, digest: str, size: int) -> bytes | None:
    """A small blob's whole content (an image config, say) from the best location holding it (see
    readable_source), the next one when a read fails; None when no location gives it."""
    async with pool.acquire() as conn:
        placed = await placement_locations(conn, digest)
    unread = set(placed)
    while (source := await readable_source(locations, unread, digest)) is not None:
        try:
            return b"".join([chunk async for chunk in source.read(0, size)])
        except StorageError as error:
            logger.warning("blob %s unreadable in location %s: %s", digest, source.location, error)
            unread.discard(source.location)
    return None


async def linked_blob_size(conn: asyncpg.Connection, repository_id: int, digest: str) -> int | None:
    """The blob's size when the repository may read it, else None."""
    size = await conn.fetchval(
        "SELECT b.size FROM repository_blob rb JOIN blob b ON b.digest = rb.digest"
        " WHERE rb.repository_id = $1 AND rb.digest = $2",
        repository_id,
        digest,
    )
    return int(size) if size is not None else None


async def placement_locations(conn: asyncpg.Connection, digest: str) -> set[str]:
    rows = await conn.fetch("SELECT location FROM blob_placement WHERE digest = $1", digest)
    return {row["location"] for row in rows}


async def has_placement(conn: asyncpg.Connection, digest: str, location: str) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM blob_placement WHERE digest = $1 AND location = $2)", digest, location
    )
    return bool(found)


def in_preference_order(locations: Locations, placed: set[str]) -> list[str]:
    """The configured locations among placed, most preferred first."""
    return [name for name in locations.order if name in placed]


async def readable_source(locations: Locations, placed: set[str], digest: str) -> BlobSource | None:
    """The best placed location whose storage holds the blob now; None when none does.

    Healthy locations come first, in preference order; unhealthy ones are tried last, while no
    other copy answers. A location that fails to answer, or lacks the object, is skipped for the
    next one (a failure counts against its health: Locations.driver records it).
    """
    path = blob_path(digest)
    for name in locations.read_order(placed):
        driver = locations.driver(name)
        try:
            await driver.stat(path)
        except StorageError as error:
            logger.warning("blob %s unreadable in location %s, trying the next: %s", digest, name, error)
            continue
        return BlobSource(location=name, driver=driver, path=path)
    return None


async def opened_stream(
    locations: Locations, placed: set[str], source: BlobSource, digest: str, offset: int, length: int
) -> AsyncIterator[bytes] | None:
    """The blob's bytes [offset, offset+length) from source, else from the next placed location
    that starts giving them (see readable_source); None when none does.

    A read failing before its first bytes moves on to the next location; once bytes have gone
    out, a failure ends the stream with its error (the client's response cannot be retried).
    """
    unread = set(placed)
    current: BlobSource | None = source
    while current is not None:
        stream = current.read(offset, length)
        try:
            first = await anext(stream, b"")
        except StorageError as error:
            logger.warning(
                "blob %s unreadable in location %s, trying the next: %s", digest, current.location, error
            )
            unread.discard(current.location)
            current = await readable_source(locations, unread, digest)
            continue
        return _prepended(first, stream)
    return None


async def _prepended(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def link_blob(conn: asyncpg.Connection, repository_id: int, digest: str) -> None:
    """Let the repository read a recorded blob (no-op when it already may)."""
    await conn.execute(
        "INSERT INTO repository_blob (repository_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        repository_id,
        digest,
    )


async def unlink_blob(conn: asyncpg.Connection, repository_id: int, digest: str) -> bool:
    """Stop the repository reading the blob; False when it could not. The bytes stay."""
    status = await conn.execute(
        "DELETE FROM repository_blob WHERE repository_id = $1 AND digest = $2", repository_id, digest
    )
    return bool(status != "DELETE 0")


async def record_blob(
    conn: asyncpg.Connection, *, digest: str, size: int, location: str, repository_id: int
) -> None:
    """Record verified bytes at blob_path(digest) in location and link them to the repository.

    Run it in the transaction that makes the blob visible.
    """
    await conn.execute("INSERT INTO blob (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING", digest, size)
    await conn.execute(
        "INSERT INTO blob_placement (digest, location) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        digest,
        location,
    )
    await link_blob(conn, repository_id, digest)


async def store_chunks_as_blob(driver: StorageDriver, chunks: list[str], digest: str) -> None:
    """Make the objects at chunks, in order, the object at blob_path(digest).

    The caller has verified their bytes against digest. A single chunk is moved, several are
    concatenated (they stay in place), none gives an empty blob.
    """
    destination = blob_path(digest)
    if len(chunks) == 1:
        await driver.move(chunks[0], destination)
    elif chunks:
        await driver.concat(chunks, destination)
    else:
        await driver.put(destination, _empty_body())


async def _empty_body() -> AsyncIterator[bytes]:
    yield b""

"""Blob collection: a blob no manifest references (manifest_blob holds layers and configs), created
and last linked to a repository before the cutoff (now - PUSH_TEMP_TAG_EXPIRATION_SEC), is deleted
from every placement, then nothing of it is left.

Per batch, under the per-digest guard (shared/blob_guard.py): claim the digests no push holds;
in one transaction re-check and delete their rows (blob, and with it blob_placement and
repository_blob), write a blob_deletion row per digest and the BlobsCollected event; then delete
the bytes in every location; then the blob_deletion rows; then release the guards. Bytes are
deleted after the rows commit, never before: a crash leaves unreferenced bytes with a
blob_deletion row (finished by the next pass), never a row whose bytes are gone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg

from services.gc.announcements import announce_blobs_deleted
from services.gc.pacing import Pacer
from services.gc.tally import DeletedBlob, PassTally
from shared import blob_guard
from shared.backup_lease import backup_in_progress
from shared.storage import Locations, PathNotFoundError, StorageError
from shared.storage.paths import blob_path

log = logging.getLogger(__name__)

BATCH = 500
# Object deletions in flight at once per location. A remote store answers each after a round trip,
# so several overlap. On a local filesystem a deletion is a syscall on the pushes' own disk and CPU:
# 16 threads unlinking at once (each unlink also a discard request, with online discard) slowed the
# concurrent pushes two to three times as much as one at a time, which deletes 40% fewer blobs a
# second (both settings interleaved within one pass of bench/bench_gc.py's seed; bench/README.md).
_PARALLEL_REMOTE_DELETES = 16
_PARALLEL_LOCAL_DELETES = 1

_UNREFERENCED = (
    "NOT EXISTS (SELECT 1 FROM manifest_blob mb WHERE mb.digest = b.digest)"
    " AND NOT EXISTS (SELECT 1 FROM repository_blob rb WHERE rb.digest = b.digest AND rb.touched_at > $2)"
    " AND b.created_at <= $2"
)
# The unreferenced blobs among the next $3 in digest order after $1 (a range of the primary key,
# whatever the planner thinks of the anti-joins), and where that range ends.
_CANDIDATES = (
    "WITH slice AS MATERIALIZED (SELECT digest, created_at FROM blob WHERE digest > $1 ORDER BY digest LIMIT $3)"
    " SELECT (SELECT max(digest) FROM slice),"
    f" ARRAY(SELECT b.digest FROM slice b WHERE {_UNREFERENCED} ORDER BY b.digest)"
)
_PLACEMENTS = "SELECT digest, location FROM blob_placement WHERE digest = ANY($1::text[])"
_DELETE = (
    "DELETE FROM blob b WHERE b.digest = ANY($1::text[]) AND "
    + _UNREFERENCED.replace("$2", "$2::timestamptz")
    + " RETURNING b.digest, b.size"
)
_LINKS = "SELECT digest, count(*) FROM repository_blob WHERE digest = ANY($1::text[]) GROUP BY digest"


async def collect_blobs(
    conn: asyncpg.Connection,
    locations: Locations,
    tally: PassTally,
    cutoff: datetime,
    pacer: Pacer,
    *,
    dry_run: bool,
) -> None:
    """Delete every unreferenced blob older than ``cutoff``; dry: only its rows, in the caller's
    transaction (which the dry pass rolls back), and no bytes."""
    if not dry_run:
        await finish_interrupted_deletions(conn, locations)
    after: str | None = ""
    while after is not None:
        after, candidates = await conn.fetchrow(_CANDIDATES, after, cutoff, BATCH)
        if not candidates:
            continue
        await pacer.pause()
        if dry_run:
            async with conn.transaction():
                await _delete_rows(conn, tally, candidates, cutoff, dry_run=True)
            continue
        claimed = await blob_guard.claim_for_deletion(conn, candidates)
        try:
            async with conn.transaction():
                deleted = await _delete_rows(conn, tally, claimed, cutoff, dry_run=False)
            reclaimed, gone = await _delete_bytes(locations, deleted)
            for location, size in reclaimed.items():
                tally.bytes_by_location[location] += size
            await conn.execute("DELETE FROM blob_deletion WHERE digest = ANY($1::text[])", gone)
        finally:
            await blob_guard.release(conn, claimed)


async def _delete_rows(
    conn: asyncpg.Connection, tally: PassTally, digests: list[str], cutoff: datetime, *, dry_run: bool
) -> list[DeletedBlob]:
    """Re-check and delete the blobs' rows; record the deletion (blob_deletion, BlobsCollected).
    Nothing while a backup holds its lease: the blobs of its dump must stay until it has copied them."""
    if not digests or (not dry_run and await backup_in_progress(conn)):
        return []
    placed: dict[str, list[str]] = {}
    for row in await conn.fetch(_PLACEMENTS, digests):
        placed.setdefault(row[0], []).append(row[1])
    links = {row[0]: row[1] for row in await conn.fetch(_LINKS, digests)}
    rows = await conn.fetch(_DELETE, digests, cutoff)
    deleted = [DeletedBlob(row[0], row[1], tuple(sorted(placed.get(row[0], ())))) for row in rows]
    if not deleted:
        return []
    tally.blobs += deleted
    tally.rows("blob", len(deleted))
    tally.rows("blob_placement", sum(len(blob.locations) for blob in deleted))
    tally.rows("repository_blob", sum(links.get(blob.digest, 0) for blob in deleted))
    if dry_run:
        for blob in deleted:
            for location in blob.locations:
                tally.bytes_by_location[location] += blob.size
        return deleted
    await conn.executemany(
        "INSERT INTO blob_deletion (digest, locations) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING",
        [(blob.digest, list(blob.locations)) for blob in deleted],
    )
    await announce_blobs_deleted(conn, deleted)
    return deleted


async def _delete_bytes(locations: Locations, blobs: list[DeletedBlob]) -> tuple[dict[str, int], list[str]]:
    """Delete each blob's object in each of its locations: the bytes freed per location, and the
    digests gone everywhere (the others keep their blob_deletion row, for the next pass)."""
    limits: dict[str, asyncio.Semaphore] = {}
    for blob in blobs:
        for location in blob.locations:
            if location not in limits:
                limits[location] = _deletion_limit(locations, location, blob.digest)
    reclaimed: dict[str, int] = {}
    failed: set[str] = set()

    async def delete(blob: DeletedBlob, location: str) -> None:
        async with limits[location]:
            if await _delete_object(locations, location, blob.digest):
                reclaimed[location] = reclaimed.get(location, 0) + blob.size
            else:
                failed.add(blob.digest)

    await asyncio.gather(*(delete(blob, location) for blob in blobs for location in blob.locations))
    return reclaimed, [blob.digest for blob in blobs if blob.digest not in failed]


def _deletion_limit(locations: Locations, location: str, digest: str) -> asyncio.Semaphore:
    """How many of the location's deletions may be in flight: one where objects are local files."""
    local = (
        location in locations.order and locations.driver(location).local_path(blob_path(digest)) is not None
    )
    return asyncio.Semaphore(_PARALLEL_LOCAL_DELETES if local else _PARALLEL_REMOTE_DELETES)


async def _delete_object(locations: Locations, location: str, digest: str) -> bool:
    """True when the object is gone (or was already); False when the location failed."""
    if location not in locations.order:
        log.warning("blob %s: location %s is not configured here, its copy stays", digest, location)
        return False
    try:
        await locations.driver(location).delete(blob_path(digest))
    except PathNotFoundError:
        return True
    except StorageError as error:
        log.warning("blob %s: deleting it from %s failed, retried next pass: %s", digest, location, error)
        return False
    return True


async def finish_interrupted_deletions(conn: asyncpg.Connection, locations: Locations) -> None:
    """Finish the byte deletions an interrupted pass left (blob_deletion rows no collector holds):
    in each location the blob has not been placed in again since, delete its object."""
    pending = await conn.fetch("SELECT digest, locations FROM blob_deletion ORDER BY digest LIMIT $1", BATCH)
    claimed = await blob_guard.claim_for_deletion(conn, [row[0] for row in pending])
    try:
        wanted = {row[0]: row[1] for row in pending if row[0] in set(claimed)}
        for digest, stale in wanted.items():
            placed = {
                row[0]
                for row in await conn.fetch("SELECT location FROM blob_placement WHERE digest = $1", digest)
            }
            results = [
                await _delete_object(locations, location, digest)
                for location in stale
                if location not in placed
            ]
            if all(results):
                await conn.execute("DELETE FROM blob_deletion WHERE digest = $1", digest)
    finally:
        await blob_guard.release(conn, claimed)

"""The copies still to make (replication_task rows): enqueueing what is missing, idempotently.

A task exists for a (digest, location) only while the blob lacks a placement there; enqueueing
the same copy twice, or one already made, changes nothing. Every statement that adds tasks
notifies REPLICATION_CHANNEL at commit, so copiers start at once instead of at their next poll.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared import blob_guard
from shared.config import Settings

REPLICATION_CHANNEL = "quayside_replication"
# Blobs looked at per transaction by the walks (backfill, a namespace's blobs).
PAGE = 500

_ENQUEUE = """
WITH inserted AS (
    INSERT INTO replication_task (digest, location)
    SELECT b.digest, wanted.location
      FROM blob b CROSS JOIN unnest($2::text[]) AS wanted(location)
     WHERE b.digest = ANY($1::text[])
       AND NOT EXISTS (SELECT 1 FROM blob_placement p WHERE p.digest = b.digest AND p.location = wanted.location)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted
"""

_NAMESPACE_PAGE = """
SELECT DISTINCT rb.digest
  FROM repository r JOIN repository_blob rb ON rb.repository_id = r.id
 WHERE r.namespace_id = $1 AND rb.digest > $2
 ORDER BY rb.digest
 LIMIT $3
"""

_BLOB_PAGE = "SELECT digest FROM blob WHERE digest > $1 ORDER BY digest LIMIT $2"

# The missing copies of the blobs $1: into the targets of each namespace whose repositories hold
# the blob, or into the defaults ($2) for namespaces without targets.
_ENQUEUE_REQUIRED = """
WITH required AS (
    SELECT DISTINCT rb.digest, wanted.location
      FROM repository_blob rb
      JOIN repository r ON r.id = rb.repository_id
      CROSS JOIN LATERAL (
          SELECT t.location FROM replication_target t WHERE t.namespace_id = r.namespace_id
          UNION ALL
          SELECT d FROM unnest($2::text[]) AS d
           WHERE NOT EXISTS (SELECT 1 FROM replication_target t WHERE t.namespace_id = r.namespace_id)
      ) AS wanted(location)
     WHERE rb.digest = ANY($1::text[])
),
inserted AS (
    INSERT INTO replication_task (digest, location)
    SELECT digest, location FROM required
     WHERE NOT EXISTS (
         SELECT 1 FROM blob_placement p WHERE p.digest = required.digest AND p.location = required.location
     )
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM inserted
"""


async def notify_copiers(conn: asyncpg.Connection) -> None:
    """Wake every copier when the caller's transaction commits (at once outside one)."""
    await conn.execute("SELECT pg_notify($1, '')", REPLICATION_CHANNEL)


async def enqueue_missing(conn: asyncpg.Connection, digests: Sequence[str], locations: Sequence[str]) -> int:
    """Add a task for each recorded blob of ``digests`` lacking a placement in one of ``locations``;
    how many were added. Run it in a transaction holding the digests' blob guard (so garbage
    collection cannot delete a blob meanwhile)."""
    if not digests or not locations:
        return 0
    added = int(await conn.fetchval(_ENQUEUE, list(digests), list(locations)))
    if added:
        await notify_copiers(conn)
    return added


async def enqueue_for_namespace(pool: asyncpg.Pool, namespace_id: int, locations: Sequence[str]) -> int:
    """Enqueue the missing copies of every blob the namespace's repositories hold, into
    ``locations``, one page of blobs per transaction; how many tasks were added."""
    if not locations:
        return 0
    added = 0
    after = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            page = [row[0] for row in await conn.fetch(_NAMESPACE_PAGE, namespace_id, after, PAGE)]
            if not page:
                return added
            await blob_guard.hold_for_push(conn, page)
            added += await enqueue_missing(conn, page, locations)
        after = page[-1]


async def backfill(pool: asyncpg.Pool, settings: Settings) -> int:
    """Quay's backfillreplication: enqueue every blob's missing copies into the locations its
    namespaces require, walking the blobs in digest order; how many tasks were added."""
    if not settings.feature_storage_replication:
        return 0
    defaults = list(settings.distributed_storage_default_locations)
    added = 0
    after = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            page = [row[0] for row in await conn.fetch(_BLOB_PAGE, after, PAGE)]
            if not page:
                return added
            await blob_guard.hold_for_push(conn, page)
            enqueued = int(await conn.fetchval(_ENQUEUE_REQUIRED, page, defaults))
            if enqueued:
                await notify_copiers(conn)
        added += enqueued
        after = page[-1]

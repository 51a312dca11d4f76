"""Dropping a storage location from the records (Quay's util.removelocation), refusing while it
holds the only copy of a blob.

Only the records go: placements, queued copies into the location and targets naming it. The
objects stay in the location's storage (remove them with the storage's own tools once it is
retired); nothing reads them any more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from pydantic import BaseModel

_SOLE_COPIES = """
SELECT count(*) AS blobs, min(p.digest) AS example
  FROM blob_placement p
 WHERE p.location = $1
   AND NOT EXISTS (SELECT 1 FROM blob_placement o WHERE o.digest = p.digest AND o.location <> $1)
"""

# One page of the location's placements whose blob is placed elsewhere too, removed.
_REMOVE_PAGE = """
DELETE FROM blob_placement
 WHERE location = $1
   AND digest IN (
       SELECT p.digest FROM blob_placement p
        WHERE p.location = $1 AND p.digest > $2
          AND EXISTS (SELECT 1 FROM blob_placement o WHERE o.digest = p.digest AND o.location <> $1)
        ORDER BY p.digest
        LIMIT $3
   )
RETURNING digest
"""
PAGE = 500


class SoleCopies(BaseModel):
    """Blobs placed only in the location: how many, and the first digest of them."""

    blobs: int
    example: str | None


class SoleCopiesError(RuntimeError):
    def __init__(self, location: str, sole: SoleCopies) -> None:
        super().__init__(
            f"location {location!r} holds the only copy of {sole.blobs} blob(s) (for example {sole.example});"
            " replicate them elsewhere first (quayside replication backfill)"
        )
        self.sole = sole


async def sole_copies(conn: asyncpg.Connection, location: str) -> SoleCopies:
    row = await conn.fetchrow(_SOLE_COPIES, location)
    return SoleCopies(blobs=row["blobs"], example=row["example"])


async def placement_count(conn: asyncpg.Connection, location: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM blob_placement WHERE location = $1", location))


async def remove_location(pool: asyncpg.Pool, location: str) -> AsyncIterator[str]:
    """Remove the location's records (see the module docstring), yielding each digest whose
    placement was removed. Raises SoleCopiesError, before removing anything, while a blob is
    placed nowhere else; a blob left with its only copy there meanwhile keeps that placement."""
    async with pool.acquire() as conn:
        sole = await sole_copies(conn, location)
    if sole.blobs:
        raise SoleCopiesError(location, sole)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM replication_task WHERE location = $1", location)
        await conn.execute("DELETE FROM replication_target WHERE location = $1", location)
    after = ""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            removed = sorted(row[0] for row in await conn.fetch(_REMOVE_PAGE, location, after, PAGE))
        if not removed:
            return
        for digest in removed:
            yield digest
        after = removed[-1]

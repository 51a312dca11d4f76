"""The per-digest guard between pushes and blob garbage collection (docs/architecture.md,
"Garbage collection").

Storage paths are content-addressed: a push and a deletion of the same digest touch the same
object. Each digest has one PostgreSQL advisory lock key. Every writer that makes a blob reachable
(an upload's completion, a cross-repository mount, a manifest PUT referencing blobs) holds it
*shared* for its whole transaction, taken before it reads or writes any row of the blob; shared
holders never wait for each other. Blob collection holds it *exclusive*, at session level, from
the re-check of the blob's references until its bytes are deleted everywhere, and only ever tries
it: a digest being pushed is left for the next pass, and the collector never waits on a pusher.

So a push either commits before the collector re-checks (the collector sees its rows and keeps the
blob) or starts after the bytes are gone (it finds no rows: an upload stores the bytes again, a
mount falls back to an upload, a manifest PUT answers MANIFEST_BLOB_UNKNOWN). A collector that dies
between the row deletion and the byte deletion leaves a blob_deletion row; the next pass finishes
it, keeping the bytes of any location where the blob was pushed again meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

_KEY = "hashtextextended('blob:' || d, 0)"


async def hold_for_push(conn: asyncpg.Connection, digests: Sequence[str]) -> None:
    """Hold the guard of each digest shared until the caller's transaction ends.

    Call it inside the transaction, before the statements that read or write the blobs' rows;
    it waits while a collector deletes one of these digests.
    """
    if digests:
        await conn.execute(
            f"SELECT pg_advisory_xact_lock_shared({_KEY}) FROM unnest($1::text[]) AS d", list(digests)
        )


async def touch_links(conn: asyncpg.Connection, repository_id: int, digests: Sequence[str]) -> None:
    """Mark the repository's links to the blobs as used now: collection keeps an unreferenced blob
    for PUSH_TEMP_TAG_EXPIRATION_SEC after its last upload or mount."""
    await conn.execute(
        "UPDATE repository_blob SET touched_at = now() WHERE repository_id = $1 AND digest = ANY($2::text[])",
        repository_id,
        list(digests),
    )


async def claim_for_deletion(conn: asyncpg.Connection, digests: Sequence[str]) -> list[str]:
    """The digests whose guard this session now holds exclusive (those no push holds); the others
    are being pushed and must be left alone. Release them with release()."""
    rows = await conn.fetch(
        f"SELECT d FROM unnest($1::text[]) AS d WHERE pg_try_advisory_lock({_KEY})", list(digests)
    )
    return [row[0] for row in rows]


async def release(conn: asyncpg.Connection, digests: Sequence[str]) -> None:
    """Give back the guards claim_for_deletion took on this session."""
    if digests:
        await conn.execute(f"SELECT pg_advisory_unlock({_KEY}) FROM unnest($1::text[]) AS d", list(digests))

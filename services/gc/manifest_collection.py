"""Manifest collection: a manifest that no remaining tag row reaches is deleted with its rows.

Reaching is per repository: from the manifests of its tag rows (live, or ended but restorable;
tag_purge has removed the rest) through index children (manifest_child) and referrers (a manifest
whose subject is reached), so a multi-arch index keeps its children and a signature lives exactly
as long as its subject. Manifests pushed less than PUSH_TEMP_TAG_EXPIRATION_SEC ago stay, for a
push by digest that its index or tag is about to follow.

Against concurrent pushes: the unreached manifests are locked FOR UPDATE SKIP LOCKED (a push
referring to one as an index child holds it FOR KEY SHARE: it is skipped), then deleted by a new
statement that checks again that no tag row, no manifest outside this batch naming it as a child,
and no subject outside this batch keeps it. A push arriving after the lock waits for the commit
and then finds the child gone (MANIFEST_BLOB_UNKNOWN).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import asyncpg

from services.gc.announcements import announce_manifests_removed, repository_names
from services.gc.pacing import Pacer, commit_without_waiting_for_flush
from services.gc.tally import DeletedManifest, PassTally

BATCH = 500

_CANDIDATES = (
    "SELECT m.id, m.repository_id FROM manifest m WHERE m.id > $1 AND m.pushed_at <= $2"
    " AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.manifest_id = m.id) ORDER BY m.id LIMIT $3"
)

# The candidates ($2) of repository $1 that nothing from its tag rows reaches.
_UNREACHED = """
WITH RECURSIVE edge (parent, child) AS MATERIALIZED (
    SELECT mc.manifest_id, c.id FROM manifest p
    JOIN manifest_child mc ON mc.manifest_id = p.id
    JOIN manifest c ON c.repository_id = p.repository_id AND c.digest = mc.child_digest
    WHERE p.repository_id = $1
  UNION ALL
    SELECT s.id, r.id FROM manifest r
    JOIN manifest s ON s.repository_id = r.repository_id AND s.digest = r.subject_digest
    WHERE r.repository_id = $1 AND r.subject_digest IS NOT NULL
), reached (id) AS (
    SELECT DISTINCT t.manifest_id FROM tag t WHERE t.repository_id = $1
  UNION
    SELECT edge.child FROM reached JOIN edge ON edge.parent = reached.id
)
SELECT id FROM unnest($2::bigint[]) AS id WHERE id NOT IN (SELECT id FROM reached)
"""

_LOCK = "SELECT id FROM manifest WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE SKIP LOCKED"

_BLOBS_OF = "SELECT manifest_id, digest FROM manifest_blob WHERE manifest_id = ANY($1::bigint[])"

_DELETE = (
    "DELETE FROM manifest m WHERE m.id = ANY($1::bigint[]) AND m.pushed_at <= $2"
    " AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.manifest_id = m.id)"
    " AND NOT EXISTS (SELECT 1 FROM manifest_child mc JOIN manifest p ON p.id = mc.manifest_id"
    "  WHERE mc.child_digest = m.digest AND p.repository_id = m.repository_id AND p.id <> ALL($1::bigint[]))"
    " AND NOT EXISTS (SELECT 1 FROM manifest s WHERE m.subject_digest IS NOT NULL"
    "  AND s.repository_id = m.repository_id AND s.digest = m.subject_digest AND s.id <> ALL($1::bigint[]))"
    " RETURNING m.id, m.repository_id, m.digest"
)


async def collect_manifests(
    conn: asyncpg.Connection, tally: PassTally, cutoff: datetime, pacer: Pacer
) -> None:
    """Delete every unreached manifest pushed before ``cutoff``, a batch per transaction."""
    after = 0
    while True:
        candidates = await conn.fetch(_CANDIDATES, after, cutoff, BATCH)
        if not candidates:
            return
        after = candidates[-1]["id"]
        await pacer.pause()
        by_repository: dict[int, list[int]] = defaultdict(list)
        for row in candidates:
            by_repository[row["repository_id"]].append(row["id"])
        unreached: list[int] = []
        for repository_id, ids in by_repository.items():
            unreached += [row[0] for row in await conn.fetch(_UNREACHED, repository_id, ids)]
        if unreached:
            await _delete(conn, tally, unreached, cutoff)


async def _delete(conn: asyncpg.Connection, tally: PassTally, unreached: list[int], cutoff: datetime) -> None:
    async with conn.transaction():
        await commit_without_waiting_for_flush(conn)
        locked = [row[0] for row in await conn.fetch(_LOCK, unreached)]
        if not locked:
            return
        blobs: dict[int, set[str]] = defaultdict(set)
        for row in await conn.fetch(_BLOBS_OF, locked):
            blobs[row[0]].add(row[1])
        deleted = await conn.fetch(_DELETE, locked, cutoff)
        if not deleted:
            return
        used: dict[int, set[str]] = defaultdict(set)
        for row in deleted:
            used[row["repository_id"]] |= blobs.get(row["id"], set())
            tally.manifests.append(DeletedManifest(row["repository_id"], row["digest"]))
        tally.rows("manifest", len(deleted))
        tally.rows("manifest_blob", sum(len(blobs.get(row["id"], ())) for row in deleted))
        names = await repository_names(conn, used)
        await announce_manifests_removed(conn, names, used)

"""Repository and namespace purge: the rows of deleted repositories (state MARKED_FOR_DELETION) and
deleted organizations and users (namespace.marked_for_deletion) are deleted, each in its own
transaction with its BlobsCollected event. The API only marks them (they vanish from every path at
once); their blobs, no longer referenced, go with the blob collection that follows.
"""

from __future__ import annotations

import asyncpg

from services.gc.announcements import announce_manifests_removed, repository_names
from services.gc.tally import PassTally

_MARKED_REPOSITORIES = (
    "SELECT id FROM repository WHERE state = 'MARKED_FOR_DELETION' AND id > $1 ORDER BY id LIMIT 100"
)
_MARKED_NAMESPACES = "SELECT id FROM namespace WHERE marked_for_deletion AND id > $1 ORDER BY id LIMIT 100"
_CONTENT = (
    "SELECT (SELECT count(*) FROM tag WHERE repository_id = $1),"
    " (SELECT count(*) FROM manifest WHERE repository_id = $1),"
    " (SELECT count(*) FROM repository_blob WHERE repository_id = $1),"
    " ARRAY(SELECT DISTINCT mb.digest FROM manifest m JOIN manifest_blob mb ON mb.manifest_id = m.id"
    "  WHERE m.repository_id = $1)"
)


async def purge_repositories(conn: asyncpg.Connection, tally: PassTally) -> None:
    """Delete every repository marked for deletion."""
    after = 0
    while ids := [row[0] for row in await conn.fetch(_MARKED_REPOSITORIES, after)]:
        after = ids[-1]
        for repository_id in ids:
            async with conn.transaction():
                # Locked first: the counts and digests announced are those of the rows deleted.
                marked = await conn.fetchval(
                    "SELECT id FROM repository WHERE id = $1 AND state = 'MARKED_FOR_DELETION' FOR UPDATE",
                    repository_id,
                )
                if marked is None:
                    continue
                await _forget_content(conn, tally, [repository_id])
                await conn.execute("DELETE FROM repository WHERE id = $1", repository_id)
            tally.repositories_purged += 1
            tally.rows("repository", 1)


async def purge_namespaces(conn: asyncpg.Connection, tally: PassTally) -> None:
    """Delete every namespace marked for deletion, its repositories with it."""
    after = 0
    while ids := [row[0] for row in await conn.fetch(_MARKED_NAMESPACES, after)]:
        after = ids[-1]
        for namespace_id in ids:
            async with conn.transaction():
                marked = await conn.fetchval(
                    "SELECT id FROM namespace WHERE id = $1 AND marked_for_deletion FOR UPDATE", namespace_id
                )
                if marked is None:
                    continue
                repositories = [
                    row[0]
                    for row in await conn.fetch(
                        "SELECT id FROM repository WHERE namespace_id = $1", namespace_id
                    )
                ]
                await _forget_content(conn, tally, repositories)
                await conn.execute("DELETE FROM namespace WHERE id = $1", namespace_id)
            tally.namespaces_purged += 1
            tally.repositories_purged += len(repositories)
            tally.rows("namespace", 1)
            tally.rows("repository", len(repositories))


async def _forget_content(conn: asyncpg.Connection, tally: PassTally, repository_ids: list[int]) -> None:
    """Count what the repositories' deletion takes with it and announce their blob digests."""
    names = await repository_names(conn, repository_ids)
    used: dict[int, list[str]] = {}
    for repository_id in repository_ids:
        tags, manifests, links, digests = await conn.fetchrow(_CONTENT, repository_id)
        tally.tags_purged += tags
        tally.rows("tag", tags)
        tally.rows("manifest", manifests)
        tally.rows("repository_blob", links)
        used[repository_id] = digests
    await announce_manifests_removed(conn, names, used)

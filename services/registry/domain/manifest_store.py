"""SQL for a repository's manifests, tags and referrers.

A tag row is live while its lifetime_end is NULL or in the future (an expiration); ended rows are the
tag's history (time machine). Writers take their connection inside the caller's transaction, and
writers of a tag name hold its lock (lock_tag), so that a name has at most one live row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from shared.oci.manifest import ParsedManifest
from shared.quota import lock_namespace, recheck_digests
from shared.tags import lock_tag

Database: TypeAlias = asyncpg.Pool | asyncpg.Connection

_SELECT_BY_TAG = (
    "SELECT m.digest, m.media_type, m.size{content} FROM tag t JOIN manifest m ON m.id = t.manifest_id"
    " WHERE t.repository_id = $1 AND t.name = $2 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())"
)
_SELECT_BY_DIGEST = "SELECT m.digest, m.media_type, m.size{content} FROM manifest m WHERE m.repository_id = $1 AND m.digest = $2"
_QUERIES = {
    (by_digest, with_content): template.format(content=", m.content" if with_content else "")
    for by_digest, template in ((False, _SELECT_BY_TAG), (True, _SELECT_BY_DIGEST))
    for with_content in (False, True)
}


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as served; ``content`` is None when it was not asked for (HEAD)."""

    digest: str
    media_type: str
    size: int
    content: bytes | None


@dataclass(frozen=True, slots=True)
class Referrer:
    """A manifest whose subject is the asked digest, as the referrers API describes it."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


async def find_manifest(
    db: Database, repository_id: int, reference: str, *, by_digest: bool, with_content: bool
) -> StoredManifest | None:
    """The manifest a live tag or a digest names, in one round trip."""
    row = await db.fetchrow(_QUERIES[(by_digest, with_content)], repository_id, reference)
    if row is None:
        return None
    return StoredManifest(row[0], row[1], row[2], row[3] if with_content else None)


async def _present(conn: asyncpg.Connection, query: str, repository_id: int, digests: list[str]) -> set[str]:
    rows = await conn.fetch(query, repository_id, digests)
    return {row[0] for row in rows}


async def missing_blobs(conn: asyncpg.Connection, repository_id: int, digests: list[str]) -> list[str]:
    """The digests not linked to the repository, in the given order.

    The links found stay locked against deletion (garbage collection) until the transaction ends.
    """
    present = await _present(
        conn,
        "SELECT digest FROM repository_blob WHERE repository_id = $1 AND digest = ANY($2::text[])"
        " FOR KEY SHARE",
        repository_id,
        digests,
    )
    return [digest for digest in digests if digest not in present]


async def missing_manifests(conn: asyncpg.Connection, repository_id: int, digests: list[str]) -> list[str]:
    """The digests that are not manifests of the repository; the ones found stay locked likewise."""
    present = await _present(
        conn,
        "SELECT digest FROM manifest WHERE repository_id = $1 AND digest = ANY($2::text[]) FOR KEY SHARE",
        repository_id,
        digests,
    )
    return [digest for digest in digests if digest not in present]


async def save_manifest(
    conn: asyncpg.Connection, repository_id: int, manifest: ParsedManifest, body: bytes
) -> int:
    """Store the manifest (raw bytes as pushed) and its blob and child links; return its id."""
    manifest_id: int = await conn.fetchval(
        "INSERT INTO manifest (repository_id, digest, media_type, artifact_type, subject_digest,"
        " config_digest, annotations, size, content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (repository_id, digest) DO UPDATE SET media_type = EXCLUDED.media_type,"
        " artifact_type = EXCLUDED.artifact_type, pushed_at = now() RETURNING id",
        repository_id,
        manifest.digest,
        manifest.media_type,
        manifest.artifact_type,
        manifest.subject_digest,
        manifest.config_digest,
        manifest.annotations,
        manifest.size,
        body,
    )
    await conn.execute(
        "INSERT INTO manifest_blob (manifest_id, digest) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        manifest_id,
        manifest.blob_digests,
    )
    await conn.execute(
        "INSERT INTO manifest_child (manifest_id, child_digest) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING",
        manifest_id,
        manifest.child_digests,
    )
    return manifest_id


async def point_tag(conn: asyncpg.Connection, repository_id: int, tag: str, manifest_id: int) -> None:
    """Make the live tag point at the manifest, ending the row of its previous target (kept as history).

    Nothing changes when it already points there (an expiration set on it stays). Concurrent
    pushes of one tag are serialized.
    """
    await lock_tag(conn, repository_id, tag)
    await conn.execute(
        "UPDATE tag SET lifetime_end = now(), expiry_pending = false WHERE repository_id = $1 AND name = $2"
        " AND (lifetime_end IS NULL OR lifetime_end > now()) AND manifest_id <> $3",
        repository_id,
        tag,
        manifest_id,
    )
    await conn.execute(
        "INSERT INTO tag (repository_id, name, manifest_id) SELECT $1, $2, $3 WHERE NOT EXISTS ("
        " SELECT 1 FROM tag WHERE repository_id = $1 AND name = $2"
        " AND (lifetime_end IS NULL OR lifetime_end > now()))",
        repository_id,
        tag,
        manifest_id,
    )


async def end_tag(db: Database, repository_id: int, tag: str) -> bool:
    """End the live tag (it stays in history); False when there was none."""
    ended = await db.fetchval(
        "UPDATE tag SET lifetime_end = now(), expiry_pending = false WHERE repository_id = $1 AND name = $2"
        " AND (lifetime_end IS NULL OR lifetime_end > now()) RETURNING id",
        repository_id,
        tag,
    )
    return ended is not None


# The manifest's blob digests, read before its rows (and manifest_blob's, by cascade) are deleted.
_DELETE_MANIFEST = """
WITH target AS (SELECT id FROM manifest WHERE repository_id = $1 AND digest = $2),
blobs AS (SELECT array_agg(mb.digest) AS digests FROM manifest_blob mb JOIN target t ON t.id = mb.manifest_id),
gone AS (DELETE FROM manifest m USING target t WHERE m.id = t.id RETURNING m.id)
SELECT EXISTS (SELECT 1 FROM gone), coalesce((SELECT digests FROM blobs), '{}')
"""


async def delete_manifest(
    conn: asyncpg.Connection,
    *,
    namespace_id: int,
    repository_id: int,
    digest: str,
    default_reject_bytes: int | None,
) -> bool:
    """Delete the manifest and every tag row pointing at it, releasing its blobs from the quota usage
    in the same transaction; False when there was none.

    The namespace's usage lock is taken before the delete, as a quota-enforced push takes it before
    inserting its manifest row: the other order could deadlock with a push of the same manifest."""
    await lock_namespace(conn, namespace_id)
    found, digests = await conn.fetchrow(_DELETE_MANIFEST, repository_id, digest)
    if found:
        await recheck_digests(
            conn,
            namespace_id=namespace_id,
            repository_id=repository_id,
            digests=digests,
            default_reject_bytes=default_reject_bytes,
        )
    return bool(found)


# Live tag names in bytewise order after $2 ('' for the first page), $3 of them: a range of the
# tag_repository_name_bytewise index (migration 0012), whatever the database's collation.
LIVE_TAGS = (
    'SELECT name FROM tag WHERE repository_id = $1 AND name COLLATE "C" > $2'
    ' AND (lifetime_end IS NULL OR lifetime_end > now()) ORDER BY name COLLATE "C" LIMIT $3'
)


async def live_tags(db: Database, repository_id: int, after: str | None, limit: int) -> list[str]:
    """Live tag names in bytewise order, after ``after`` when given."""
    rows = await db.fetch(LIVE_TAGS, repository_id, after or "", limit)
    return [row[0] for row in rows]


async def referrers(
    db: Database, repository_id: int, subject: str, artifact_type: str | None
) -> list[Referrer]:
    """The repository's manifests whose subject is the digest, oldest first, of one artifact type if given."""
    rows = await db.fetch(
        "SELECT media_type, digest, size, artifact_type, annotations FROM manifest"
        " WHERE repository_id = $1 AND subject_digest = $2 AND ($3::text IS NULL OR artifact_type = $3)"
        " ORDER BY id",
        repository_id,
        subject,
        artifact_type,
    )
    return [Referrer(*row) for row in rows]

"""Registry state written at the SQL level for the accounting tests: namespaces, repositories, pushes,
tag deletions and restores, time-machine purges and the deletions of a garbage-collection pass (what
services/gc removes by the usage rule: manifests no tag row reaches, then blobs no manifest uses),
with the events those write."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg

from services.registry.domain import manifest_store
from shared.events.models import (
    BlobsCollected,
    CollectedRepository,
    ManifestPushed,
    RepositoryDeleted,
    TagDeleted,
)


def digest_of(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


async def namespace(conn: asyncpg.Connection, name: str, kind: str = "organization") -> int:
    return await conn.fetchval("INSERT INTO namespace (name, kind) VALUES ($1, $2) RETURNING id", name, kind)


async def repository(conn: asyncpg.Connection, namespace_id: int, name: str) -> int:
    return await conn.fetchval(
        "INSERT INTO repository (namespace_id, name) VALUES ($1, $2) RETURNING id", namespace_id, name
    )


async def names(conn: asyncpg.Connection, repository_id: int) -> tuple[str, str]:
    row = await conn.fetchrow(
        "SELECT n.name, r.name FROM repository r JOIN namespace n ON n.id = r.namespace_id WHERE r.id = $1",
        repository_id,
    )
    return row[0], row[1]


async def push(
    conn: asyncpg.Connection, repository_id: int, blobs: dict[str, int], tag: str | None
) -> tuple[str, ManifestPushed]:
    """Store a manifest of these blobs (digest -> size), tagged (the old live row ended) when a tag is
    given; returns its digest and the ManifestPushed the registry announces."""
    for digest, size in blobs.items():
        await conn.execute(
            "INSERT INTO blob (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING", digest, size
        )
    manifest_digest = digest_of(f"manifest-{uuid.uuid4()}")
    manifest_id = await conn.fetchval(
        "INSERT INTO manifest (repository_id, digest, media_type, size, content)"
        " VALUES ($1, $2, 'application/vnd.oci.image.manifest.v1+json', 2, '{}') RETURNING id",
        repository_id,
        manifest_digest,
    )
    await conn.executemany(
        "INSERT INTO manifest_blob (manifest_id, digest) VALUES ($1, $2)",
        [(manifest_id, digest) for digest in blobs],
    )
    if tag is not None:
        await end_tag(conn, repository_id, tag)
        await conn.execute(
            "INSERT INTO tag (repository_id, name, manifest_id) VALUES ($1, $2, $3)",
            repository_id,
            tag,
            manifest_id,
        )
    namespace_name, repository_name = await names(conn, repository_id)
    event = ManifestPushed(
        namespace=namespace_name,
        repository=repository_name,
        digest=manifest_digest,
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=2,
        tags=[tag] if tag else [],
    )
    return manifest_digest, event


async def end_tag(conn: asyncpg.Connection, repository_id: int, tag: str) -> str | None:
    """End the live tag (into the time machine); the digest it pointed at, None without one."""
    return await conn.fetchval(
        "UPDATE tag t SET lifetime_end = now() FROM manifest m WHERE m.id = t.manifest_id"
        " AND t.repository_id = $1 AND t.name = $2 AND t.lifetime_end IS NULL RETURNING m.digest",
        repository_id,
        tag,
    )


async def delete_tag(conn: asyncpg.Connection, repository_id: int, tag: str) -> TagDeleted | None:
    digest = await end_tag(conn, repository_id, tag)
    if digest is None:
        return None
    namespace_name, repository_name = await names(conn, repository_id)
    return TagDeleted(namespace=namespace_name, repository=repository_name, tag=tag, digest=digest)


async def restore_tag(conn: asyncpg.Connection, repository_id: int, tag: str) -> bool:
    """Point the tag again at the manifest its latest ended row (still in the time machine) named."""
    manifest_id = await conn.fetchval(
        "SELECT manifest_id FROM tag WHERE repository_id = $1 AND name = $2 AND lifetime_end IS NOT NULL"
        " AND NOT time_machine_removed ORDER BY lifetime_end DESC, id DESC LIMIT 1",
        repository_id,
        tag,
    )
    if manifest_id is None:
        return False
    await end_tag(conn, repository_id, tag)
    await conn.execute(
        "INSERT INTO tag (repository_id, name, manifest_id) VALUES ($1, $2, $3)",
        repository_id,
        tag,
        manifest_id,
    )
    return True


async def purge_time_machine(conn: asyncpg.Connection, repository_id: int, tag: str | None = None) -> None:
    """Take the ended rows (of one tag, or all) out of the time machine: nothing can restore them."""
    await conn.execute(
        "UPDATE tag SET time_machine_removed = true WHERE repository_id = $1 AND lifetime_end IS NOT NULL"
        " AND ($2::text IS NULL OR name = $2)",
        repository_id,
        tag,
    )


async def delete_manifest(conn: asyncpg.Connection, repository_id: int, digest: str) -> bool:
    """DELETE /v2/<name>/manifests/<digest>, through the registry's own delete (the manifest, its tag
    rows and, in the same transaction, its bytes in the quota usage)."""
    namespace_id = await conn.fetchval("SELECT namespace_id FROM repository WHERE id = $1", repository_id)
    async with conn.transaction():
        return await manifest_store.delete_manifest(
            conn,
            namespace_id=namespace_id,
            repository_id=repository_id,
            digest=digest,
            default_reject_bytes=None,
        )


async def collect_garbage(conn: asyncpg.Connection, namespace_id: int) -> BlobsCollected:
    """One GC pass over the namespace: purge the tag rows out of the time machine, delete manifests
    no tag row reaches, then blobs no manifest references; the BlobsCollected it announces."""
    await conn.execute(
        "DELETE FROM tag t USING repository r WHERE r.id = t.repository_id AND r.namespace_id = $1"
        " AND t.lifetime_end IS NOT NULL AND t.time_machine_removed",
        namespace_id,
    )
    removed = await conn.fetch(
        "SELECT m.id, m.repository_id, mb.digest FROM manifest m JOIN repository r ON r.id = m.repository_id"
        " LEFT JOIN manifest_blob mb ON mb.manifest_id = m.id"
        " WHERE r.namespace_id = $1 AND NOT EXISTS (SELECT 1 FROM tag t WHERE t.manifest_id = m.id)",
        namespace_id,
    )
    await conn.execute(
        "DELETE FROM manifest WHERE id = ANY($1::bigint[])", sorted({row[0] for row in removed})
    )
    by_repository: dict[int, set[str]] = {}
    for row in removed:
        digests = by_repository.setdefault(row[1], set())
        if row[2] is not None:
            digests.add(row[2])
    deleted = await conn.fetch(
        "DELETE FROM blob b WHERE NOT EXISTS (SELECT 1 FROM manifest_blob mb WHERE mb.digest = b.digest)"
        " RETURNING digest, size"
    )
    namespace_name = await conn.fetchval("SELECT name FROM namespace WHERE id = $1", namespace_id)
    repositories = []
    for repository_id, digests in sorted(by_repository.items()):
        repository_name = await conn.fetchval("SELECT name FROM repository WHERE id = $1", repository_id)
        repositories.append(
            CollectedRepository(
                namespace_id=namespace_id,
                repository_id=repository_id,
                namespace=namespace_name,
                repository=repository_name,
                digests=sorted(digests),
            )
        )
    return BlobsCollected(
        repositories=repositories,
        blobs_deleted=[row[0] for row in deleted],
        bytes_reclaimed=sum(row[1] for row in deleted),
    )


async def delete_repository(conn: asyncpg.Connection, repository_id: int) -> RepositoryDeleted:
    """Mark the repository for deletion (its name freed) as the API does; purge() deletes its rows."""
    namespace_name, repository_name = await names(conn, repository_id)
    await conn.execute(
        "UPDATE repository SET state = 'MARKED_FOR_DELETION', name = 'deleted~' || gen_random_uuid() WHERE id = $1",
        repository_id,
    )
    return RepositoryDeleted(namespace=namespace_name, repository=repository_name)


async def purge_repository(conn: asyncpg.Connection, repository_id: int) -> None:
    await conn.execute(
        "DELETE FROM repository WHERE id = $1 AND state = 'MARKED_FOR_DELETION'", repository_id
    )


async def figures(
    conn: asyncpg.Connection, namespace_id: int, repository_ids: list[int]
) -> tuple[int, list[int]]:
    """The recorded usage of the namespace and of each repository (0 when nothing is recorded)."""
    namespace_bytes = await conn.fetchval(
        "SELECT coalesce((SELECT bytes FROM namespace_usage WHERE namespace_id = $1), 0)", namespace_id
    )
    repository_bytes = [
        await conn.fetchval(
            "SELECT coalesce((SELECT bytes FROM repository_usage WHERE repository_id = $1), 0)", repository_id
        )
        for repository_id in repository_ids
    ]
    return namespace_bytes, repository_bytes

"""Room for a fill in a cache organization at its Reject limit: the organization's least recently
pulled cached images are evicted until the new image fits, instead of refusing it (seed 003 names
Quay's refusal as the limitation to remove). The policy (README, "Proxy pull-through cache"):

- Only a fill that would take the organization's counted usage over its Reject limit evicts. It is
  refused (403 DENIED, nothing evicted) only when the new image by itself, every blob of it counted
  once, is larger than the limit.
- The unit is a top-level cached manifest (an image or an index, with the child manifests no other
  index still lists), with every tag row pointing at it. Candidates go least recently pulled first:
  a manifest's last pull is the latest of its tags' pull statistics, its own (pulls by digest), its
  tags' last check against the upstream and its creation (a fill is a pull). Every pull of a cached
  tag keeps it alive for expiration_s, so the content no live tag reaches (tags expired or deleted,
  waiting in the time machine; untagged manifests) was pulled longest ago and goes first.
- Eviction deletes at once, as a manifest DELETE by digest does: the manifest and its tag rows
  (history included: an evicted tag cannot be restored; its next pull fetches it again), releasing
  from the usage, in the fill's transaction, every blob no remaining manifest of the organization
  references. Content of a different tag is therefore never made missing: a layer or a child
  manifest shared with an image that stays is kept, and counted, for it. The bytes themselves go
  when garbage collection finds the blobs unreferenced, as after any deletion.
- The new image's own manifests are never candidates; fills of one organization evict one after
  another (they hold its usage lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.registry.domain import manifest_store
from services.registry.domain.quota_enforcement import QuotaExceededError
from services.registry.domain.repositories import Repository
from services.registry.proxy import metrics
from shared.quota import usage_with_digests
from shared.usage_logs import record

# Candidates read per statement: eviction usually needs a few; more are read when those are not enough.
_CANDIDATES_PER_READ = 16
# Indexes of indexes are evicted with their children this deep (as deep as a fill follows them).
_MAX_DEPTH = 3

_CANDIDATES = """
SELECT m.repository_id, r.name AS repository, m.digest
FROM manifest m
JOIN repository r ON r.id = m.repository_id
LEFT JOIN tag t ON t.manifest_id = m.id
LEFT JOIN tag_pull_stats tps
    ON tps.repository_id = m.repository_id AND tps.tag_name = t.name AND tps.manifest_digest = m.digest
LEFT JOIN proxy_cache_tag c ON c.repository_id = m.repository_id AND c.tag = t.name AND c.digest = m.digest
LEFT JOIN manifest_pull_stats mps ON mps.repository_id = m.repository_id AND mps.digest = m.digest
WHERE r.namespace_id = $1 AND r.state <> 'MARKED_FOR_DELETION'
  AND NOT (m.repository_id = $2 AND m.digest = ANY($3::text[]))
  AND NOT EXISTS (
      SELECT 1 FROM manifest_child mc JOIN manifest p ON p.id = mc.manifest_id
      WHERE p.repository_id = m.repository_id AND mc.child_digest = m.digest)
GROUP BY m.id, r.name
ORDER BY greatest(max(tps.last_pulled_at), max(c.checked_at), max(mps.last_pulled_at), m.created_at), m.id
LIMIT $4
"""

_LIVE_TAGS_OF = (
    "SELECT t.name FROM tag t JOIN manifest m ON m.id = t.manifest_id"
    " WHERE m.repository_id = $1 AND m.digest = $2 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())"
)
_CHILDREN_OF = (
    "SELECT mc.child_digest FROM manifest_child mc JOIN manifest m ON m.id = mc.manifest_id"
    " WHERE m.repository_id = $1 AND m.digest = $2"
)
# A child manifest stays while another manifest of the repository lists it or a tag points at it.
_STILL_NEEDED = """
SELECT EXISTS (
    SELECT 1 FROM manifest_child mc JOIN manifest p ON p.id = mc.manifest_id
    WHERE p.repository_id = $1 AND mc.child_digest = $2)
OR EXISTS (
    SELECT 1 FROM tag t JOIN manifest m ON m.id = t.manifest_id WHERE m.repository_id = $1 AND m.digest = $2)
"""


@dataclass(frozen=True, slots=True)
class Evicted:
    """A manifest evicted from a cache repository, and the live tags that pointed at it."""

    repository: str
    digest: str
    tags: tuple[str, ...]


async def make_room(
    conn: asyncpg.Connection,
    repository: Repository,
    blob_digests: Sequence[str],
    manifest_digests: Sequence[str],
    default_reject_bytes: int | None,
) -> list[Evicted]:
    """Evict (see the module's policy) until the organization's usage with the new image's blobs
    counted is within its Reject limit; what was evicted. QuotaExceededError when the image alone is
    larger than the limit, or nothing is left to evict. Call under the namespace's usage lock, in
    the transaction that then stores the image (``manifest_digests``: its manifests, never evicted)."""
    usage, limit = await usage_with_digests(conn, repository.namespace_id, blob_digests, default_reject_bytes)
    if limit is None or usage <= limit:
        return []
    image_bytes = await conn.fetchval(
        "SELECT coalesce(sum(size), 0) FROM blob WHERE digest = ANY($1::text[])", sorted(set(blob_digests))
    )
    if image_bytes > limit:
        raise QuotaExceededError(repository.namespace)
    evicted: list[Evicted] = []
    while limit is not None and usage > limit:
        candidates = await conn.fetch(
            _CANDIDATES, repository.namespace_id, repository.id, list(manifest_digests), _CANDIDATES_PER_READ
        )
        if not candidates:
            raise QuotaExceededError(repository.namespace)
        for candidate in candidates:
            evicted.append(
                await _evict(
                    conn,
                    repository.namespace_id,
                    repository.namespace,
                    candidate["repository_id"],
                    candidate["repository"],
                    candidate["digest"],
                    default_reject_bytes,
                )
            )
            usage, limit = await usage_with_digests(
                conn, repository.namespace_id, blob_digests, default_reject_bytes
            )
            if limit is None or usage <= limit:
                break
    return evicted


async def _evict(
    conn: asyncpg.Connection,
    namespace_id: int,
    namespace: str,
    repository_id: int,
    repository: str,
    digest: str,
    default_reject_bytes: int | None,
) -> Evicted:
    tags = tuple(row[0] for row in await conn.fetch(_LIVE_TAGS_OF, repository_id, digest))
    await _delete_with_children(conn, namespace_id, repository_id, digest, default_reject_bytes, 0)
    await conn.execute(
        "DELETE FROM proxy_cache_tag WHERE repository_id = $1 AND digest = $2", repository_id, digest
    )
    metrics.EVICTIONS.inc()
    for tag in tags or (None,):
        metadata = {"manifest_digest": digest, "proxy_cache": "evicted"}
        if tag is not None:
            metadata["tag"] = tag
        await record(
            conn,
            "delete_tag",
            performer=None,
            ip=None,
            namespace=namespace,
            repository=repository,
            metadata=metadata,
        )
    return Evicted(repository, digest, tags)


async def _delete_with_children(
    conn: asyncpg.Connection,
    namespace_id: int,
    repository_id: int,
    digest: str,
    default_reject_bytes: int | None,
    depth: int,
) -> None:
    """Delete the manifest (releasing its blobs), then each child manifest nothing else needs."""
    children = [row[0] for row in await conn.fetch(_CHILDREN_OF, repository_id, digest)]
    await manifest_store.delete_manifest(
        conn,
        namespace_id=namespace_id,
        repository_id=repository_id,
        digest=digest,
        default_reject_bytes=default_reject_bytes,
    )
    if depth >= _MAX_DEPTH:
        return
    for child in children:
        if not await conn.fetchval(_STILL_NEEDED, repository_id, child):
            await _delete_with_children(
                conn, namespace_id, repository_id, child, default_reject_bytes, depth + 1
            )

"""What each consumed event changes in the accounting (shared/quota), one transaction per event.

The registry already re-checks a pushed manifest's blobs in its push transaction when a reject limit
applies; these handlers are the idempotent safety net and the only path for namespaces without
limits. Every handler is state-based, so a redelivered or late event changes nothing more.

- ManifestPushed: re-check the manifest's blobs (the whole repository when the manifest is gone).
- BlobsCollected: re-check each listed repository's digests (GC removed those manifests), and the
  deleted blobs wherever they are still counted.
- RepositoryDeleted: re-check the repositories of the namespace marked for deletion, then every
  digest counted for the namespace (the repository's rows may already be purged).
- TagDeleted is not consumed: a tag ending changes nothing by the rule (its manifest stays until
  GC), and the registry releases a manifest deleted by digest through /v2 in its own transaction.
- TagExpired is not consumed: an expired tag's manifest stays, charged, until GC purges it.

Every handler then re-evaluates the namespace's crossings, so a crossing the push path could not
see (a quota set or changed since) is announced too.
"""

from __future__ import annotations

import asyncpg

from services.quota import metrics
from shared.events.models import BlobsCollected, Event, ManifestPushed, RepositoryDeleted
from shared.quota import (
    UsageChange,
    check_crossings,
    lock_namespace,
    recheck_digests,
    recheck_namespace,
    recheck_repository,
    usage_bytes,
)


class QuotaAccounting:
    """The event handler of the quota consumers; ``default_reject_bytes``: the system default."""

    def __init__(self, default_reject_bytes: int | None) -> None:
        self._default = default_reject_bytes

    async def __call__(self, conn: asyncpg.Connection, event: Event) -> None:
        match event:
            case ManifestPushed():
                await self._manifest_pushed(conn, event)
                metrics.RECHECKS.labels("manifest-pushed").inc()
            case BlobsCollected():
                await self._blobs_collected(conn, event)
                metrics.RECHECKS.labels("blobs-collected").inc()
            case RepositoryDeleted():
                await self._repository_deleted(conn, event)
                metrics.RECHECKS.labels("repository-deleted").inc()

    async def _manifest_pushed(self, conn: asyncpg.Connection, event: ManifestPushed) -> None:
        ids = await _repository_ids(conn, event.namespace, event.repository)
        if ids is None:
            return
        namespace_id, repository_id = ids
        await lock_namespace(conn, namespace_id)
        manifest_id = await conn.fetchval(
            "SELECT id FROM manifest WHERE repository_id = $1 AND digest = $2", repository_id, event.digest
        )
        if manifest_id is None:
            change = await recheck_repository(conn, namespace_id, repository_id, self._default)
        else:
            digests = [
                row[0]
                for row in await conn.fetch(
                    "SELECT digest FROM manifest_blob WHERE manifest_id = $1", manifest_id
                )
            ]
            change = await recheck_digests(
                conn,
                namespace_id=namespace_id,
                repository_id=repository_id,
                digests=digests,
                default_reject_bytes=self._default,
            )
        await self._settle(conn, namespace_id, [change])

    async def _blobs_collected(self, conn: asyncpg.Connection, event: BlobsCollected) -> None:
        by_namespace: dict[int, list[tuple[int | None, list[str]]]] = {}
        for entry in event.repositories:
            by_namespace.setdefault(entry.namespace_id, []).append((entry.repository_id, entry.digests))
        # A deleted blob still counted somewhere (its manifest went without an event naming it, or
        # before its push was counted) is re-checked wherever it is counted.
        if event.blobs_deleted:
            for row in await conn.fetch(
                "SELECT r.namespace_id, q.repository_id, array_agg(q.digest) FROM quota_repository_blob q"
                " JOIN repository r ON r.id = q.repository_id WHERE q.digest = ANY($1::text[])"
                " GROUP BY 1, 2",
                event.blobs_deleted,
            ):
                by_namespace.setdefault(row[0], []).append((row[1], list(row[2])))
            for row in await conn.fetch(
                "SELECT namespace_id, array_agg(digest) FROM quota_namespace_blob WHERE digest = ANY($1::text[])"
                " GROUP BY 1",
                event.blobs_deleted,
            ):
                by_namespace.setdefault(row[0], []).append((None, list(row[1])))
        # Namespaces locked in id order: two handlers never wait on each other's locks.
        for namespace_id in sorted(by_namespace):
            await lock_namespace(conn, namespace_id)
            changes = [
                await recheck_digests(
                    conn,
                    namespace_id=namespace_id,
                    repository_id=repository_id,
                    digests=digests,
                    default_reject_bytes=self._default,
                )
                for repository_id, digests in by_namespace[namespace_id]
            ]
            await self._settle(conn, namespace_id, changes)

    async def _repository_deleted(self, conn: asyncpg.Connection, event: RepositoryDeleted) -> None:
        namespace_id = await _namespace_id(conn, event.namespace)
        if namespace_id is None:
            return
        await lock_namespace(conn, namespace_id)
        marked = await conn.fetch(
            "SELECT u.repository_id FROM repository_usage u JOIN repository r ON r.id = u.repository_id"
            " WHERE u.namespace_id = $1 AND r.state = 'MARKED_FOR_DELETION' ORDER BY u.repository_id",
            namespace_id,
        )
        changes = [await recheck_repository(conn, namespace_id, row[0], self._default) for row in marked]
        changes.append(await recheck_namespace(conn, namespace_id, self._default))
        await self._settle(conn, namespace_id, changes)

    async def _settle(self, conn: asyncpg.Connection, namespace_id: int, changes: list[UsageChange]) -> None:
        announced = [crossing for change in changes for crossing in change.crossings]
        announced += await check_crossings(
            conn, namespace_id, await usage_bytes(conn, namespace_id), self._default
        )
        for change in changes:
            metrics.BYTES_MOVED.labels("added").inc(change.namespace_added)
            metrics.BYTES_MOVED.labels("removed").inc(change.namespace_removed)
        for crossing in announced:
            metrics.CROSSINGS.labels(crossing.partition(":")[0]).inc()


async def _namespace_id(conn: asyncpg.Connection, namespace: str) -> int | None:
    value = await conn.fetchval(
        "SELECT id FROM namespace WHERE name = $1 AND NOT marked_for_deletion", namespace
    )
    return int(value) if value is not None else None


async def _repository_ids(
    conn: asyncpg.Connection, namespace: str, repository: str
) -> tuple[int, int] | None:
    """(namespace id, repository id) of a repository by its names; None when it is gone."""
    row = await conn.fetchrow(
        "SELECT n.id, r.id FROM namespace n JOIN repository r ON r.namespace_id = n.id"
        " WHERE n.name = $1 AND r.name = $2 AND NOT n.marked_for_deletion",
        namespace,
        repository,
    )
    return (int(row[0]), int(row[1])) if row is not None else None

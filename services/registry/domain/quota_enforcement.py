"""Reject limits enforced at push, as Quay does: a push that would take a namespace over its Reject
limit (its quota's smallest, or the system default QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES for
namespaces without a quota) answers 403 DENIED "Quota has been exceeded on namespace".

Two checks: at upload start (and cross-repository mount) when the namespace is already at or over
the limit; and in the manifest-commit transaction, where the namespace's usage lock is held while
usage plus the manifest's blobs not yet counted for the namespace is compared with the limit, and
the manifest's blobs are counted in the same transaction. Pushes to one namespace therefore commit
one after another against exact figures: together they never take counted usage over the limit.
Blobs uploaded but not yet referenced by a manifest are not usage (the usage rule), so they are the
only bytes beyond the limit that storage may hold meanwhile; GC reclaims them if no manifest follows.
Namespaces without a Reject limit take no lock: the quota service counts their pushes.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.registry.domain.repositories import Repository
from shared.quota import lock_namespace, new_bytes, recheck_digests, reject_limit_bytes, usage_bytes

QUOTA_EXCEEDED = "Quota has been exceeded on namespace"


class QuotaExceededError(Exception):
    """The push would take the namespace over its Reject limit (answered 403 DENIED)."""

    def __init__(self, namespace: str) -> None:
        super().__init__(QUOTA_EXCEEDED)
        self.namespace = namespace


async def refuse_upload_when_over(
    pool: asyncpg.Pool, namespace_id: int, namespace: str, default_reject_bytes: int | None
) -> None:
    """QuotaExceededError when the namespace is already at or over its Reject limit (upload start, mount)."""
    async with pool.acquire() as conn:
        limit = await reject_limit_bytes(conn, namespace_id, default_reject_bytes)
        if limit is not None and await usage_bytes(conn, namespace_id) >= limit:
            raise QuotaExceededError(namespace)


class ManifestCharge:
    """A manifest's blobs, checked against the namespace's Reject limit before the manifest is saved
    (``check``) and counted after (``commit``), in one transaction."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        repository: Repository,
        digests: Sequence[str],
        default_reject_bytes: int | None,
    ) -> None:
        self._conn = conn
        self._namespace_id = repository.namespace_id
        self._namespace = repository.namespace
        self._repository_id = repository.id
        self._digests = digests
        self._default_reject_bytes = default_reject_bytes
        self._enforced = False

    async def check(self) -> None:
        """Take the namespace's usage lock and refuse (QuotaExceededError) when the manifest's new blobs would
        take usage over the Reject limit; nothing at all for namespaces without one."""
        limit = await reject_limit_bytes(self._conn, self._namespace_id, self._default_reject_bytes)
        if limit is None:
            return
        await lock_namespace(self._conn, self._namespace_id)
        self._enforced = True
        usage = await usage_bytes(self._conn, self._namespace_id)
        if usage + await new_bytes(self._conn, self._namespace_id, self._digests) > limit:
            raise QuotaExceededError(self._namespace)

    async def commit(self) -> None:
        """Count the saved manifest's blobs under the lock that check took (announcing crossings)."""
        if not self._enforced:
            return
        await recheck_digests(
            self._conn,
            namespace_id=self._namespace_id,
            repository_id=self._repository_id,
            digests=self._digests,
            default_reject_bytes=self._default_reject_bytes,
        )

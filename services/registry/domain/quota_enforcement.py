"""Reject limits enforced at push, as Quay does: a push that would take a namespace over its Reject
limit (its quota's smallest, or the system default QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES for
namespaces without a quota) answers 403 DENIED "Quota has been exceeded on namespace".

Two checks: at upload start (and cross-repository mount) when the namespace is already at or over
the limit (one statement); and in the manifest-commit transaction. There, before the manifest is
saved, one statement looks the limit up and, only when there is one, takes the namespace's usage
lock; after it is saved, the re-check counts its blobs and reads the limits and crossings under the
lock (one statement), and a usage now over the limit refuses the push, rolling the transaction
back. Pushes to one namespace therefore commit one after another against exact figures: together
they never take counted usage over the limit. Blobs uploaded but not yet referenced by a manifest
are not usage (the usage rule), so they are the only bytes beyond the limit that storage may hold
meanwhile; GC reclaims them if no manifest follows. Namespaces without a Reject limit take no lock
and pay that one indexed lookup: the quota service counts their pushes.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.registry.domain.repositories import Repository
from shared.quota import at_reject_limit, count_saved_manifest, lock_namespace_if_limited, usage_with_digests

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
    if await at_reject_limit(pool, namespace_id, default_reject_bytes):
        raise QuotaExceededError(namespace)


class ManifestCharge:
    """A manifest's blobs, checked against the namespace's Reject limit and counted in the
    manifest's transaction: ``lock`` (or ``check``) before the manifest is saved, ``commit`` after."""

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

    @property
    def enforced(self) -> bool:
        """Whether ``lock`` found a Reject limit (and took the namespace's usage lock)."""
        return self._enforced

    async def lock(self) -> None:
        """Take the namespace's usage lock when a Reject limit applies; nothing else otherwise."""
        self._enforced = await lock_namespace_if_limited(
            self._conn, self._namespace_id, self._default_reject_bytes
        )

    async def check(self) -> None:
        """``lock``, then refuse (QuotaExceededError) before anything is saved when the manifest's
        blobs not counted yet would take usage over the Reject limit: one statement more, for
        callers that must refuse before saving (the proxy cache)."""
        await self.lock()
        if not self._enforced:
            return
        usage, limit = await usage_with_digests(
            self._conn, self._namespace_id, self._digests, self._default_reject_bytes
        )
        if limit is not None and usage > limit:
            raise QuotaExceededError(self._namespace)

    async def commit(self) -> None:
        """Count the saved manifest's blobs under the lock (announcing crossings), and refuse
        (QuotaExceededError, the caller's transaction then rolls back) when usage is now over the
        Reject limit: exactly when the manifest's blobs not counted before took it over."""
        if not self._enforced:
            return
        change = await count_saved_manifest(
            self._conn,
            namespace_id=self._namespace_id,
            repository_id=self._repository_id,
            digests=self._digests,
            default_reject_bytes=self._default_reject_bytes,
        )
        if change.reject_limit_bytes is not None and change.usage_bytes > change.reject_limit_bytes:
            raise QuotaExceededError(self._namespace)

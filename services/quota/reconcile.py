"""Reconcile: recount namespaces from scratch (shared.quota.recount_namespace) and report, or repair.

Each namespace is recounted in a transaction of its own: a repeatable-read snapshot when only
reporting, under the namespace's lock when repairing (so no push moves it meanwhile). Reporting on
a busy namespace can show, as drift, pushes whose ManifestPushed the quota service has not consumed
yet (namespaces without a reject limit are counted by the service, after the push).
"""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from services.quota import metrics
from shared.quota import RecountResult, lock_namespace, recount_namespace

# Namespaces listed per keyset page.
_PAGE = 500


class NamespaceRecount(BaseModel):
    namespace: str
    result: RecountResult


class UnknownNamespaceError(LookupError):
    pass


async def reconcile(
    pool: asyncpg.Pool,
    *,
    namespace: str | None = None,
    repair: bool = False,
    default_reject_bytes: int | None = None,
) -> list[NamespaceRecount]:
    """Recount one namespace (by name) or all of them; with ``repair``, make the drifted ones exact.

    Sets the reconcile metrics when every namespace was looked at."""
    if namespace is not None:
        namespace_id = await pool.fetchval(
            "SELECT id FROM namespace WHERE name = $1 AND NOT marked_for_deletion", namespace
        )
        if namespace_id is None:
            raise UnknownNamespaceError(namespace)
        return [await _recount(pool, namespace_id, namespace, repair, default_reject_bytes)]
    results: list[NamespaceRecount] = []
    after = 0
    while True:
        page = await pool.fetch(
            "SELECT id, name FROM namespace WHERE id > $1 AND NOT marked_for_deletion ORDER BY id LIMIT $2",
            after,
            _PAGE,
        )
        if not page:
            break
        for row in page:
            results.append(await _recount(pool, row["id"], row["name"], repair, default_reject_bytes))
        after = page[-1]["id"]
    drifted = [entry.result for entry in results if entry.result.drifted and not entry.result.repaired]
    metrics.RECONCILE_DRIFT.set(sum(abs(result.drift_bytes) for result in drifted))
    metrics.RECONCILE_DRIFTED.set(len(drifted))
    return results


async def _recount(
    pool: asyncpg.Pool, namespace_id: int, name: str, repair: bool, default_reject_bytes: int | None
) -> NamespaceRecount:
    async with pool.acquire() as conn:
        if repair:
            async with conn.transaction():
                await lock_namespace(conn, namespace_id)
                result = await recount_namespace(
                    conn, namespace_id, repair=True, default_reject_bytes=default_reject_bytes
                )
        else:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                result = await recount_namespace(conn, namespace_id)
    return NamespaceRecount(namespace=name, result=result)

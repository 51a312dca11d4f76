"""The incremental path: re-check digests against the usage rule and move the counted sets and figures.

Every change is state-based: a digest is counted for a repository (namespace) exactly when a
manifest row of that repository (of a repository of that namespace not marked for deletion)
references it now. Re-checking any digest any number of times therefore converges on the recount.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from pydantic import BaseModel

from shared.quota.crossings import LIMITS_AND_CROSSINGS, REJECT_LIMIT, LimitsAndCrossings, check_crossings

# Digests re-checked per statement: bounds the arrays sent and the rows locked at once.
BATCH = 1000

# pg_advisory_xact_lock(int, int) key space of the quota ('QUOT'); the namespace id is the second key.
_LOCK_CLASS = 0x51554F54

# A digest counts for the namespace when a manifest of one of its live repositories references it.
_IN_NAMESPACE = (
    "EXISTS (SELECT 1 FROM manifest_blob mb JOIN manifest m ON m.id = mb.manifest_id"
    " JOIN repository r ON r.id = m.repository_id"
    " WHERE mb.digest = i.digest AND r.namespace_id = $1 AND r.state <> 'MARKED_FOR_DELETION')"
)
_IN_REPOSITORY = (
    "EXISTS (SELECT 1 FROM manifest m JOIN manifest_blob mb ON mb.manifest_id = m.id"
    " JOIN repository r ON r.id = m.repository_id"
    " WHERE m.repository_id = $1 AND mb.digest = i.digest AND r.state <> 'MARKED_FOR_DELETION')"
)


def _recheck_sql(with_repository: bool) -> str:
    """One statement per batch: the namespace's set (and the repository's, $3) brought in line with
    the rule, and the usage rows moved by the difference; answers the sums, the new usage and the
    namespace's limits and recorded crossings (for check_crossings, without another round trip).

    Added and removed touch disjoint digests (referenced or not). Nothing is written when nothing
    moved (the repository or namespace may be gone: a late event). A negative difference never
    inserts: the proposed row carries max(delta, 0), the update the delta itself."""
    repository = (
        f"""
ref_repo AS (SELECT i.digest, i.size FROM ref_ns i WHERE {_IN_REPOSITORY.replace("$1", "$3")}),
added_repo AS (
    INSERT INTO quota_repository_blob (repository_id, digest, size) SELECT $3, digest, size FROM ref_repo
    ON CONFLICT DO NOTHING RETURNING size
),
removed_repo AS (
    DELETE FROM quota_repository_blob q USING input i
    WHERE q.repository_id = $3 AND q.digest = i.digest AND NOT EXISTS (SELECT 1 FROM ref_repo r WHERE r.digest = i.digest)
    RETURNING q.size
),"""
        if with_repository
        else ""
    )
    repository_sums = (
        "(SELECT coalesce(sum(size), 0) FROM added_repo)::bigint AS repo_added,"
        " (SELECT coalesce(sum(size), 0) FROM removed_repo)::bigint AS repo_removed"
        if with_repository
        else "0::bigint AS repo_added, 0::bigint AS repo_removed"
    )
    repository_usage = (
        """,
repo_usage AS (
    INSERT INTO repository_usage (repository_id, namespace_id, bytes)
    SELECT $3, $1, greatest(repo_added - repo_removed, 0) FROM sums WHERE repo_added <> repo_removed
    ON CONFLICT (repository_id) DO UPDATE
    SET bytes = repository_usage.bytes + (SELECT repo_added - repo_removed FROM sums), updated_at = now()
    WHERE (SELECT repo_added <> repo_removed FROM sums)
)"""
        if with_repository
        else ""
    )
    return f"""
WITH input AS (SELECT DISTINCT unnest($2::text[]) AS digest),
limits AS ({LIMITS_AND_CROSSINGS}),
ref_ns AS (SELECT i.digest, b.size FROM input i JOIN blob b ON b.digest = i.digest WHERE {_IN_NAMESPACE}),
added_ns AS (
    INSERT INTO quota_namespace_blob (namespace_id, digest, size) SELECT $1, digest, size FROM ref_ns
    ON CONFLICT DO NOTHING RETURNING size
),
removed_ns AS (
    DELETE FROM quota_namespace_blob q USING input i
    WHERE q.namespace_id = $1 AND q.digest = i.digest AND NOT EXISTS (SELECT 1 FROM ref_ns r WHERE r.digest = i.digest)
    RETURNING q.size
),{repository}
sums AS (
    SELECT (SELECT coalesce(sum(size), 0) FROM added_ns)::bigint AS ns_added,
           (SELECT coalesce(sum(size), 0) FROM removed_ns)::bigint AS ns_removed, {repository_sums}
),
ns_usage AS (
    INSERT INTO namespace_usage (namespace_id, bytes)
    SELECT $1, greatest(ns_added - ns_removed, 0) FROM sums WHERE ns_added <> ns_removed
    ON CONFLICT (namespace_id) DO UPDATE
    SET bytes = namespace_usage.bytes + (SELECT ns_added - ns_removed FROM sums), updated_at = now()
    WHERE (SELECT ns_added <> ns_removed FROM sums)
    RETURNING bytes
){repository_usage}
SELECT ns_added, ns_removed, repo_added, repo_removed,
       coalesce((SELECT bytes FROM ns_usage), (SELECT bytes FROM namespace_usage WHERE namespace_id = $1), 0),
       (SELECT array_agg(ROW(kind, limit_type, threshold_percent, limit_bytes, threshold_bytes)) FROM limits)
  FROM sums
"""


_RECHECK_NAMESPACE = _recheck_sql(with_repository=False)
_RECHECK_REPOSITORY = _recheck_sql(with_repository=True)

# The re-check of a manifest just saved in repository $3, in the transaction that saved it: every
# digest is referenced now (by that manifest), so nothing can be released and the rule's EXISTS
# searches reduce to the repository being live; in one marked for deletion meanwhile it counts
# nothing and leaves the release of what the repository held to the RepositoryDeleted handling
# (under the same lock). About a third of _recheck_sql's time (bench/README.md, "Storage quota").
_COUNT_SAVED_MANIFEST = f"""
WITH input AS (SELECT DISTINCT unnest($2::text[]) AS digest),
limits AS ({LIMITS_AND_CROSSINGS}),
ref AS (
    SELECT i.digest, b.size FROM input i JOIN blob b ON b.digest = i.digest
     WHERE EXISTS (SELECT 1 FROM repository r WHERE r.id = $3 AND r.state <> 'MARKED_FOR_DELETION')
),
added_ns AS (
    INSERT INTO quota_namespace_blob (namespace_id, digest, size) SELECT $1, digest, size FROM ref
    ON CONFLICT DO NOTHING RETURNING size
),
added_repo AS (
    INSERT INTO quota_repository_blob (repository_id, digest, size) SELECT $3, digest, size FROM ref
    ON CONFLICT DO NOTHING RETURNING size
),
sums AS (
    SELECT (SELECT coalesce(sum(size), 0) FROM added_ns)::bigint AS ns_added,
           (SELECT coalesce(sum(size), 0) FROM added_repo)::bigint AS repo_added
),
ns_usage AS (
    INSERT INTO namespace_usage (namespace_id, bytes) SELECT $1, ns_added FROM sums WHERE ns_added <> 0
    ON CONFLICT (namespace_id) DO UPDATE
    SET bytes = namespace_usage.bytes + EXCLUDED.bytes, updated_at = now()
    RETURNING bytes
),
repo_usage AS (
    INSERT INTO repository_usage (repository_id, namespace_id, bytes)
    SELECT $3, $1, repo_added FROM sums WHERE repo_added <> 0
    ON CONFLICT (repository_id) DO UPDATE
    SET bytes = repository_usage.bytes + EXCLUDED.bytes, updated_at = now()
)
SELECT ns_added, 0::bigint, repo_added, 0::bigint,
       coalesce((SELECT bytes FROM ns_usage), (SELECT bytes FROM namespace_usage WHERE namespace_id = $1), 0),
       (SELECT array_agg(ROW(kind, limit_type, threshold_percent, limit_bytes, threshold_bytes)) FROM limits)
  FROM sums
"""


class UsageChange(BaseModel):
    """What one re-check moved: bytes counted and released, for the namespace and the repository."""

    namespace_id: int
    namespace_added: int = 0
    namespace_removed: int = 0
    repository_added: int = 0
    repository_removed: int = 0
    usage_bytes: int = 0
    crossings: list[str] = []
    # The namespace's smallest Reject threshold as the last re-check statement read it, under the lock.
    reject_limit_bytes: int | None = None

    @property
    def changed(self) -> bool:
        return any(
            (self.namespace_added, self.namespace_removed, self.repository_added, self.repository_removed)
        )


_LOCK = f"pg_advisory_xact_lock({_LOCK_CLASS}, ($1::bigint & 2147483647)::int)"
# The lock only when a Reject limit applies: one statement, and for namespaces without a limit one
# indexed lookup of quota and no lock. The limit itself is re-read, under the lock, by the re-check.
_LOCK_IF_LIMITED = f"SELECT {_LOCK} FROM ({REJECT_LIMIT}) AS r WHERE r.bytes IS NOT NULL"
_AT_REJECT_LIMIT = (
    "SELECT coalesce((SELECT bytes FROM namespace_usage WHERE namespace_id = $1), 0) >= r.bytes"
    f" FROM ({REJECT_LIMIT}) AS r"
)


async def lock_namespace(conn: asyncpg.Connection, namespace_id: int) -> None:
    """Serialise usage changes of one namespace until the end of the caller's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("lock_namespace needs a transaction")
    await conn.execute(f"SELECT {_LOCK}", namespace_id)


async def lock_namespace_if_limited(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> bool:
    """lock_namespace when a Reject limit applies to the namespace (its quota's, or the system
    default without one); whether it did."""
    if not conn.is_in_transaction():
        raise RuntimeError("lock_namespace_if_limited needs a transaction")
    rows = await conn.fetch(_LOCK_IF_LIMITED, namespace_id, default_reject_bytes)
    return bool(rows)


async def at_reject_limit(
    conn: asyncpg.Pool | asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> bool:
    """Whether the namespace's counted usage is at or over its smallest Reject threshold (False
    without one), in one statement."""
    return bool(await conn.fetchval(_AT_REJECT_LIMIT, namespace_id, default_reject_bytes))


# Usage as if the digests ($3) were counted too (those known and not counted yet, each once), and
# the Reject limit, read together after the lock.
_USAGE_WITH_DIGESTS = f"""
SELECT coalesce((SELECT bytes FROM namespace_usage WHERE namespace_id = $1), 0)
       + (SELECT coalesce(sum(b.size), 0) FROM blob b WHERE b.digest = ANY($3::text[]) AND NOT EXISTS (
            SELECT 1 FROM quota_namespace_blob q WHERE q.namespace_id = $1 AND q.digest = b.digest))::bigint,
       r.bytes
  FROM ({REJECT_LIMIT}) AS r
"""


async def usage_with_digests(
    conn: asyncpg.Connection, namespace_id: int, digests: Iterable[str], default_reject_bytes: int | None
) -> tuple[int, int | None]:
    """The namespace's usage were these (known) blobs counted, and its smallest Reject threshold (or
    None), in one statement: under lock_namespace, what a re-check of them would leave."""
    row = await conn.fetchrow(_USAGE_WITH_DIGESTS, namespace_id, default_reject_bytes, sorted(set(digests)))
    return int(row[0]), (int(row[1]) if row[1] is not None else None)


async def usage_bytes(conn: asyncpg.Connection, namespace_id: int) -> int:
    """The namespace's counted usage (0 before anything was counted)."""
    value = await conn.fetchval("SELECT bytes FROM namespace_usage WHERE namespace_id = $1", namespace_id)
    return int(value or 0)


async def recheck_digests(
    conn: asyncpg.Connection,
    *,
    namespace_id: int,
    repository_id: int | None,
    digests: Iterable[str],
    default_reject_bytes: int | None = None,
) -> UsageChange:
    """Bring the digests' counting in line with the rule, for the repository (when given) and the
    namespace, move the usage rows by the sizes counted or released, then announce threshold
    crossings when usage moved (``default_reject_bytes``: the system default, for namespaces without
    a quota). One statement per batch of digests (at least one, which also reads the limits), and
    more only when a crossing is announced or re-armed. Call inside a transaction holding
    lock_namespace."""
    if repository_id is None:
        return await _apply_batches(conn, _RECHECK_NAMESPACE, namespace_id, digests, (), default_reject_bytes)
    return await _apply_batches(
        conn, _RECHECK_REPOSITORY, namespace_id, digests, (repository_id,), default_reject_bytes
    )


async def count_saved_manifest(
    conn: asyncpg.Connection,
    *,
    namespace_id: int,
    repository_id: int,
    digests: Iterable[str],
    default_reject_bytes: int | None = None,
) -> UsageChange:
    """recheck_digests of the blobs of a manifest saved in the repository by the caller's
    transaction (which holds lock_namespace): the same result, by a statement that only counts."""
    return await _apply_batches(
        conn, _COUNT_SAVED_MANIFEST, namespace_id, digests, (repository_id,), default_reject_bytes
    )


async def _apply_batches(
    conn: asyncpg.Connection,
    statement: str,
    namespace_id: int,
    digests: Iterable[str],
    extra_arguments: tuple[int, ...],
    default_reject_bytes: int | None,
) -> UsageChange:
    if not conn.is_in_transaction():
        raise RuntimeError("usage changes need a transaction holding lock_namespace")
    ordered = sorted(set(digests))
    change = UsageChange(namespace_id=namespace_id)
    known = LimitsAndCrossings(limits=[], recorded=set())
    for start in range(0, max(len(ordered), 1), BATCH):
        batch = ordered[start : start + BATCH]
        row = await conn.fetchrow(statement, namespace_id, batch, *extra_arguments)
        change.namespace_added += row[0]
        change.namespace_removed += row[1]
        change.repository_added += row[2]
        change.repository_removed += row[3]
        change.usage_bytes = row[4]
        known = LimitsAndCrossings.from_rows(row[5] or [], default_reject_bytes)
    change.reject_limit_bytes = known.reject_limit_bytes
    if change.namespace_added != change.namespace_removed:
        change.crossings = await check_crossings(
            conn, namespace_id, change.usage_bytes, default_reject_bytes, known=known
        )
    return change


async def recheck_repository(
    conn: asyncpg.Connection, namespace_id: int, repository_id: int, default_reject_bytes: int | None = None
) -> UsageChange:
    """Re-check every digest counted for the repository (after manifests vanished without a list of
    their blobs, or the repository was marked for deletion), in keyset batches."""
    return await _recheck_counted(
        conn, _COUNTED_IN_REPOSITORY, repository_id, namespace_id, repository_id, default_reject_bytes
    )


async def recheck_namespace(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None = None
) -> UsageChange:
    """Re-check every digest counted for the namespace, in keyset batches: releases the blobs of
    repositories whose rows (and counted sets) are gone."""
    return await _recheck_counted(
        conn, _COUNTED_IN_NAMESPACE, namespace_id, namespace_id, None, default_reject_bytes
    )


# One keyset page of a counted set, by its owner ($1), after digest $2.
_COUNTED_IN_REPOSITORY = (
    "SELECT digest FROM quota_repository_blob WHERE repository_id = $1 AND digest > $2"
    " ORDER BY digest LIMIT $3"
)
_COUNTED_IN_NAMESPACE = (
    "SELECT digest FROM quota_namespace_blob WHERE namespace_id = $1 AND digest > $2 ORDER BY digest LIMIT $3"
)


async def _recheck_counted(
    conn: asyncpg.Connection,
    page_query: str,
    owner_id: int,
    namespace_id: int,
    repository_id: int | None,
    default_reject_bytes: int | None,
) -> UsageChange:
    total = UsageChange(namespace_id=namespace_id)
    after = ""
    while rows := await conn.fetch(page_query, owner_id, after, BATCH):
        digests = [row[0] for row in rows]
        change = await recheck_digests(
            conn,
            namespace_id=namespace_id,
            repository_id=repository_id,
            digests=digests,
            default_reject_bytes=default_reject_bytes,
        )
        _accumulate(total, change)
        after = digests[-1]
    return total


def _accumulate(total: UsageChange, change: UsageChange) -> None:
    total.namespace_added += change.namespace_added
    total.namespace_removed += change.namespace_removed
    total.repository_added += change.repository_added
    total.repository_removed += change.repository_removed
    total.usage_bytes = change.usage_bytes
    total.crossings.extend(change.crossings)

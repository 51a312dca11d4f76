"""The full recount: the usage rule in plain SQL, compared with the incremental sets and figures.

Sets are compared, not only sums (two wrong sets can add up to the right figure). With ``repair``,
the namespace's counted sets and usage rows are replaced by the recounted ones and crossings are
re-evaluated; call it then inside a transaction holding lock_namespace.
"""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from shared.quota.crossings import check_crossings

# The rule, per (repository, digest): what each repository of the namespace references now.
_ACTUAL_REPOSITORY_BLOBS = """
SELECT DISTINCT m.repository_id, mb.digest, b.size
  FROM repository r
  JOIN manifest m ON m.repository_id = r.id
  JOIN manifest_blob mb ON mb.manifest_id = m.id
  JOIN blob b ON b.digest = mb.digest
 WHERE r.namespace_id = $1 AND r.state <> 'MARKED_FOR_DELETION'
"""

_COMPARE_NAMESPACE = f"""
WITH actual AS (SELECT DISTINCT digest, size FROM ({_ACTUAL_REPOSITORY_BLOBS}) a),
counted AS (SELECT digest, size FROM quota_namespace_blob WHERE namespace_id = $1)
SELECT (SELECT coalesce(sum(size), 0) FROM actual)::bigint AS actual_bytes,
       (SELECT bytes FROM namespace_usage WHERE namespace_id = $1) AS recorded_bytes,
       (SELECT coalesce(sum(size), 0) FROM counted)::bigint AS counted_bytes,
       (SELECT count(*) FROM actual a WHERE NOT EXISTS (
            SELECT 1 FROM counted c WHERE c.digest = a.digest AND c.size = a.size)) AS missing,
       (SELECT count(*) FROM counted c WHERE NOT EXISTS (
            SELECT 1 FROM actual a WHERE a.digest = c.digest AND a.size = c.size)) AS extra
"""

# Per repository of the namespace (or recorded for it): recounted bytes, recorded bytes, set mismatches.
_COMPARE_REPOSITORIES = f"""
WITH actual AS ({_ACTUAL_REPOSITORY_BLOBS}),
counted AS (
    SELECT q.repository_id, q.digest, q.size FROM quota_repository_blob q
      JOIN repository r ON r.id = q.repository_id WHERE r.namespace_id = $1
),
diff AS (
    SELECT coalesce(a.repository_id, c.repository_id) AS repository_id,
           coalesce(a.size, 0) AS actual_size, coalesce(c.size, 0) AS counted_size,
           (a.digest IS NULL OR c.digest IS NULL OR a.size <> c.size) AS mismatch
      FROM actual a FULL JOIN counted c ON c.repository_id = a.repository_id AND c.digest = a.digest
),
sums AS (
    SELECT repository_id, sum(actual_size)::bigint AS actual_bytes, sum(counted_size)::bigint AS counted_bytes,
           count(*) FILTER (WHERE mismatch) AS mismatches
      FROM diff GROUP BY repository_id
)
SELECT coalesce(s.repository_id, u.repository_id) AS repository_id, r.name,
       coalesce(s.actual_bytes, 0) AS actual_bytes, coalesce(s.counted_bytes, 0) AS counted_bytes,
       coalesce(u.bytes, 0) AS recorded_bytes, coalesce(s.mismatches, 0) AS mismatches
  FROM sums s
  FULL JOIN (SELECT repository_id, bytes FROM repository_usage WHERE namespace_id = $1) u
       ON u.repository_id = s.repository_id
  LEFT JOIN repository r ON r.id = coalesce(s.repository_id, u.repository_id)
 WHERE coalesce(s.mismatches, 0) > 0 OR coalesce(s.actual_bytes, 0) <> coalesce(u.bytes, 0)
    OR coalesce(s.counted_bytes, 0) <> coalesce(u.bytes, 0)
 ORDER BY 1
"""


class RepositoryDrift(BaseModel):
    """A repository whose recorded usage or counted set differs from the recount."""

    repository_id: int
    repository: str | None
    recorded_bytes: int
    actual_bytes: int
    mismatched_digests: int


class RecountResult(BaseModel):
    """The recount of one namespace: exact figure, recorded figure, and what differed."""

    namespace_id: int
    actual_bytes: int
    recorded_bytes: int
    # The sum of the counted set: a usage figure that disagrees with its own set is drift too.
    counted_bytes: int
    missing_digests: int
    extra_digests: int
    repositories: list[RepositoryDrift]
    repaired: bool = False

    @property
    def drift_bytes(self) -> int:
        """Recorded minus actual (positive: over-counted)."""
        return self.recorded_bytes - self.actual_bytes

    @property
    def drifted(self) -> bool:
        return bool(
            self.drift_bytes
            or self.counted_bytes != self.recorded_bytes
            or self.missing_digests
            or self.extra_digests
            or self.repositories
        )


async def recount_namespace(
    conn: asyncpg.Connection,
    namespace_id: int,
    *,
    repair: bool = False,
    default_reject_bytes: int | None = None,
) -> RecountResult:
    """Recount the namespace from its manifests and compare; with ``repair``, make the records exact."""
    row = await conn.fetchrow(_COMPARE_NAMESPACE, namespace_id)
    recorded = int(row["recorded_bytes"] or 0)
    counted = int(row["counted_bytes"])
    result = RecountResult(
        namespace_id=namespace_id,
        actual_bytes=int(row["actual_bytes"]),
        recorded_bytes=recorded,
        missing_digests=int(row["missing"]),
        extra_digests=int(row["extra"]),
        counted_bytes=counted,
        repositories=[
            RepositoryDrift(
                repository_id=repo["repository_id"],
                repository=repo["name"],
                recorded_bytes=repo["recorded_bytes"],
                actual_bytes=repo["actual_bytes"],
                mismatched_digests=repo["mismatches"],
            )
            for repo in await conn.fetch(_COMPARE_REPOSITORIES, namespace_id)
        ],
    )
    if repair and result.drifted:
        await _repair(conn, namespace_id)
        await check_crossings(conn, namespace_id, result.actual_bytes, default_reject_bytes)
        result.repaired = True
    return result


async def _repair(conn: asyncpg.Connection, namespace_id: int) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError("a repair needs a transaction holding lock_namespace")
    await conn.execute("DELETE FROM quota_namespace_blob WHERE namespace_id = $1", namespace_id)
    await conn.execute(
        "DELETE FROM quota_repository_blob q USING repository r WHERE r.id = q.repository_id AND r.namespace_id = $1",
        namespace_id,
    )
    await conn.execute(
        "INSERT INTO quota_repository_blob (repository_id, digest, size)"
        f" SELECT repository_id, digest, size FROM ({_ACTUAL_REPOSITORY_BLOBS}) a",
        namespace_id,
    )
    await conn.execute(
        "INSERT INTO quota_namespace_blob (namespace_id, digest, size)"
        f" SELECT DISTINCT $1::bigint, digest, size FROM ({_ACTUAL_REPOSITORY_BLOBS}) a",
        namespace_id,
    )
    await conn.execute("DELETE FROM repository_usage WHERE namespace_id = $1", namespace_id)
    await conn.execute(
        "INSERT INTO repository_usage (repository_id, namespace_id, bytes)"
        " SELECT q.repository_id, $1, sum(q.size) FROM quota_repository_blob q JOIN repository r ON r.id = q.repository_id"
        " WHERE r.namespace_id = $1 GROUP BY q.repository_id",
        namespace_id,
    )
    await conn.execute(
        "INSERT INTO namespace_usage (namespace_id, bytes)"
        " SELECT $1, coalesce(sum(size), 0) FROM quota_namespace_blob WHERE namespace_id = $1"
        " ON CONFLICT (namespace_id) DO UPDATE SET bytes = EXCLUDED.bytes, updated_at = now()",
        namespace_id,
    )

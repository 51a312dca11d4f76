"""A namespace's limits in bytes, and the once-per-crossing announcements of QuotaWarning/QuotaExceeded.

The limits are those of the namespace's own quota; a namespace without one has the system default
(QUAYSIDE_DEFAULT_SYSTEM_REJECT_QUOTA_BYTES) as a Reject limit at 100 %, when set. A limit is crossed
while usage is at or over its threshold; quota_crossing remembers the crossed ones, so each crossing
is announced once, and forgets a limit when usage falls back under it (re-arming it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from shared.events.models import QuotaExceeded, QuotaWarning
from shared.events.outbox import enqueue

LimitType = Literal["Warning", "Reject"]


class QuotaThreshold(BaseModel):
    """One limit of a namespace: its kind, percent of the quota, and the bytes that percent is."""

    limit_type: LimitType
    threshold_percent: int
    limit_bytes: int
    threshold_bytes: int


# The quota's limits ('limit' rows; a 'quota' row tells a quota without limits from none) and the
# crossings recorded ('crossed' rows), in one round trip; columns: kind, limit_type,
# threshold_percent, limit_bytes, threshold_bytes. Also embedded in the re-check (accounting.py).
_LIMITS = """
SELECT 'limit' AS kind, l.limit_type, l.threshold_percent, q.limit_bytes,
       floor(q.limit_bytes::numeric * l.threshold_percent / 100)::bigint AS threshold_bytes
  FROM quota q JOIN quota_limit l ON l.quota_id = q.id WHERE q.namespace_id = $1
UNION ALL
SELECT 'quota', NULL, NULL, q.limit_bytes, NULL FROM quota q WHERE q.namespace_id = $1
"""
LIMITS_AND_CROSSINGS = (
    _LIMITS
    + "UNION ALL SELECT 'crossed', c.limit_type, c.threshold_percent, NULL, NULL FROM quota_crossing c"
    " WHERE c.namespace_id = $1"
)

# The smallest Reject threshold in bytes ($1 the namespace, $2 the system default): its quota's
# Reject limits (none: NULL), or the system default without a quota. One indexed lookup of quota.
REJECT_LIMIT = """
SELECT CASE WHEN q.id IS NULL THEN $2::bigint
            ELSE (SELECT min(floor(q.limit_bytes::numeric * l.threshold_percent / 100))::bigint
                    FROM quota_limit l WHERE l.quota_id = q.id AND l.limit_type = 'Reject') END AS bytes
  FROM (SELECT) AS one LEFT JOIN quota q ON q.namespace_id = $1
"""


class LimitsAndCrossings(BaseModel):
    """A namespace's limits (sorted by type and percent) and the crossings recorded for it."""

    limits: list[QuotaThreshold]
    recorded: set[tuple[str, int]]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[Any]], default_reject_bytes: int | None) -> LimitsAndCrossings:
        """From LIMITS_AND_CROSSINGS rows; a namespace without a quota gets the system default."""
        limits = [
            QuotaThreshold(
                limit_type=row[1], threshold_percent=row[2], limit_bytes=row[3], threshold_bytes=row[4]
            )
            for row in rows
            if row[0] == "limit"
        ]
        if not any(row[0] == "quota" for row in rows) and default_reject_bytes is not None:
            limits = [
                QuotaThreshold(
                    limit_type="Reject",
                    threshold_percent=100,
                    limit_bytes=default_reject_bytes,
                    threshold_bytes=default_reject_bytes,
                )
            ]
        return cls(
            limits=sorted(limits, key=lambda limit: (limit.limit_type, limit.threshold_percent)),
            recorded={(row[1], row[2]) for row in rows if row[0] == "crossed"},
        )

    @property
    def reject_limit_bytes(self) -> int | None:
        """The smallest Reject threshold in bytes, or None."""
        return min(
            (limit.threshold_bytes for limit in self.limits if limit.limit_type == "Reject"), default=None
        )


async def _limits_and_crossings(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None, *, crossings: bool
) -> LimitsAndCrossings:
    rows = await conn.fetch(LIMITS_AND_CROSSINGS if crossings else _LIMITS, namespace_id)
    return LimitsAndCrossings.from_rows(rows, default_reject_bytes)


async def thresholds(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> list[QuotaThreshold]:
    """The namespace's limits: its quota's, or the system default's Reject at 100 %, or none."""
    return (await _limits_and_crossings(conn, namespace_id, default_reject_bytes, crossings=False)).limits


async def reject_limit_bytes(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> int | None:
    """The smallest Reject threshold in bytes (the system default without a quota of its own), or None."""
    value = await conn.fetchval(REJECT_LIMIT, namespace_id, default_reject_bytes)
    return int(value) if value is not None else None


async def check_crossings(
    conn: asyncpg.Connection,
    namespace_id: int,
    usage: int,
    default_reject_bytes: int | None = None,
    known: LimitsAndCrossings | None = None,
) -> list[str]:
    """Announce (through the outbox) each limit newly crossed at this usage, re-arm those usage is
    back under, and forget the crossings of limits that no longer exist. Returns the announcements
    made ("Warning:80", "Reject:100"). ``known``: the limits and crossings already read under the
    lock (the re-check reads them with its own statement). Call inside the transaction holding
    lock_namespace."""
    if known is None:
        known = await _limits_and_crossings(conn, namespace_id, default_reject_bytes, crossings=True)
    limits, recorded = known.limits, known.recorded
    crossed = {
        (limit.limit_type, limit.threshold_percent): limit
        for limit in limits
        if usage >= limit.threshold_bytes
    }
    stale = recorded - crossed.keys()
    if stale:
        await conn.execute(
            "DELETE FROM quota_crossing WHERE namespace_id = $1"
            " AND (limit_type, threshold_percent) IN (SELECT * FROM unnest($2::text[], $3::int[]))",
            namespace_id,
            [kind for kind, _ in stale],
            [percent for _, percent in stale],
        )
    announced: list[str] = []
    fresh = [crossed[key] for key in sorted(crossed.keys() - recorded)]
    if not fresh:
        return announced
    namespace = await conn.fetchval("SELECT name FROM namespace WHERE id = $1", namespace_id)
    for limit in fresh:
        inserted = await conn.fetchval(
            "INSERT INTO quota_crossing (namespace_id, limit_type, threshold_percent, threshold_bytes)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            namespace_id,
            limit.limit_type,
            limit.threshold_percent,
            limit.threshold_bytes,
        )
        if not inserted:
            continue
        event_type = QuotaWarning if limit.limit_type == "Warning" else QuotaExceeded
        await enqueue(
            conn,
            event_type(
                namespace=namespace,
                usage_bytes=usage,
                limit_bytes=limit.limit_bytes,
                threshold_percent=limit.threshold_percent,
            ),
        )
        announced.append(f"{limit.limit_type}:{limit.threshold_percent}")
    return announced

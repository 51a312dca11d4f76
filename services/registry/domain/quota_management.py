"""Storage quotas as superusers set them: one quota per namespace (a byte limit) with Warning and
Reject limits (percentages of it), sizes written as Quay accepts them ("10 Gi", "500 MiB"), and the
superuser's report of every namespace's usage against its limits.

The usage figures themselves are kept by shared.quota (the usage rule is in docs/architecture.md,
"Storage quota"); this module only reads them.
"""

from __future__ import annotations

import re
from typing import Literal

import asyncpg
from pydantic import BaseModel, Field

LimitType = Literal["Warning", "Reject"]
# Quay's clients handle limits as JavaScript numbers: beyond 2^53 bytes they are no longer exact.
MAX_LIMIT_BYTES = 2**53
_UNIT_FACTORS: dict[str, int] = {
    "": 1,
    "b": 1,
    "byte": 1,
    "bytes": 1,
    **{f"{prefix}{suffix}": 1000**power for power, prefix in enumerate("kmgtpe", 1) for suffix in ("", "b")},
    **{f"{prefix}i{suffix}": 1024**power for power, prefix in enumerate("kmgtpe", 1) for suffix in ("", "b")},
}
# "10 Gi", "500MiB", "1.5 TB": a decimal number (at most 20 digits) and an optional unit.
_SIZE = re.compile(r"\s*([0-9]{1,20}(?:\.[0-9]{1,20})?)\s*([A-Za-z]{0,5})\s*")
_FORMAT_UNITS = ("Byte", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class QuotaError(Exception):
    """A refused quota change (answered 400)."""


class QuotaNotFoundError(Exception):
    """No such quota or limit in the namespace (answered 404)."""


class QuotaLimit(BaseModel):
    id: int
    limit_type: LimitType
    threshold_percent: int


class Quota(BaseModel):
    id: int
    namespace_id: int
    limit_bytes: int
    limits: list[QuotaLimit]


def parse_size(text: str) -> int:
    """Bytes of a size as Quay's ``limits`` field takes it: decimal (k, M, G, ... = 1000^n) or binary
    (Ki, Mi, Gi, ... = 1024^n) units, an optional 'B'; QuotaError unless 1 .. 2^53 bytes."""
    match = _SIZE.fullmatch(text)
    factor = _UNIT_FACTORS.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        raise QuotaError(
            f"invalid quota size {text[:64]!r}: a number and a unit such as '10 Gi' or '500 MiB'"
        )
    whole, _, fraction = match.group(1).partition(".")
    size = int(whole) * factor
    if fraction:
        size += int(fraction) * factor // 10 ** len(fraction)
    return checked_limit_bytes(size)


def checked_limit_bytes(size: int) -> int:
    if not 1 <= size <= MAX_LIMIT_BYTES:
        raise QuotaError(f"quota limit must be between 1 and {MAX_LIMIT_BYTES} bytes")
    return size


def format_size(size: int) -> str:
    """Quay's human form of a limit (bitmath best_prefix): '10.0 GiB', '512.0 Byte'."""
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(_FORMAT_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {_FORMAT_UNITS[unit]}"


def checked_threshold(percent: int) -> int:
    if not 1 <= percent <= 100:
        raise QuotaError("quota limit threshold_percent must be between 1 and 100")
    return percent


async def _limits(conn: asyncpg.Connection, quota_ids: list[int]) -> dict[int, list[QuotaLimit]]:
    rows = await conn.fetch(
        "SELECT id, quota_id, limit_type, threshold_percent FROM quota_limit"
        " WHERE quota_id = ANY($1::bigint[]) ORDER BY quota_id, id",
        quota_ids,
    )
    found: dict[int, list[QuotaLimit]] = {quota_id: [] for quota_id in quota_ids}
    for row in rows:
        found[row["quota_id"]].append(
            QuotaLimit(id=row["id"], limit_type=row["limit_type"], threshold_percent=row["threshold_percent"])
        )
    return found


async def list_quotas(conn: asyncpg.Connection, namespace_id: int) -> list[Quota]:
    """The namespace's quota, as a list (Quay's shape: at most one)."""
    rows = await conn.fetch("SELECT id, limit_bytes FROM quota WHERE namespace_id = $1", namespace_id)
    limits = await _limits(conn, [row["id"] for row in rows])
    return [
        Quota(
            id=row["id"], namespace_id=namespace_id, limit_bytes=row["limit_bytes"], limits=limits[row["id"]]
        )
        for row in rows
    ]


async def get_quota(conn: asyncpg.Connection, namespace_id: int, quota_id: int) -> Quota:
    for quota in await list_quotas(conn, namespace_id):
        if quota.id == quota_id:
            return quota
    raise QuotaNotFoundError(f"no quota {quota_id} in this namespace")


async def create_quota(
    conn: asyncpg.Connection, namespace_id: int, namespace: str, limit_bytes: int
) -> Quota:
    """The namespace's quota; QuotaError when it has one already (as Quay)."""
    quota_id = await conn.fetchval(
        "INSERT INTO quota (namespace_id, limit_bytes) VALUES ($1, $2)"
        " ON CONFLICT (namespace_id) DO NOTHING RETURNING id",
        namespace_id,
        checked_limit_bytes(limit_bytes),
    )
    if quota_id is None:
        raise QuotaError(f"Quota for '{namespace}' already exists")
    return Quota(id=quota_id, namespace_id=namespace_id, limit_bytes=limit_bytes, limits=[])


async def change_quota(conn: asyncpg.Connection, namespace_id: int, quota_id: int, limit_bytes: int) -> Quota:
    updated = await conn.fetchval(
        "UPDATE quota SET limit_bytes = $3 WHERE id = $2 AND namespace_id = $1 RETURNING id",
        namespace_id,
        quota_id,
        checked_limit_bytes(limit_bytes),
    )
    if updated is None:
        raise QuotaNotFoundError(f"no quota {quota_id} in this namespace")
    return await get_quota(conn, namespace_id, quota_id)


async def delete_quota(conn: asyncpg.Connection, namespace_id: int, quota_id: int) -> Quota:
    """Delete the quota with its limits (the namespace falls back to the system default, if any)."""
    quota = await get_quota(conn, namespace_id, quota_id)
    await conn.execute("DELETE FROM quota WHERE id = $1", quota_id)
    return quota


def find_limit(quota: Quota, limit_id: int) -> QuotaLimit:
    for limit in quota.limits:
        if limit.id == limit_id:
            return limit
    raise QuotaNotFoundError(f"no limit {limit_id} in quota {quota.id}")


async def create_limit(
    conn: asyncpg.Connection, quota: Quota, limit_type: LimitType, threshold_percent: int
) -> QuotaLimit:
    """A Warning or Reject limit of the quota; QuotaError for a duplicate (same type and threshold)."""
    limit_id = await conn.fetchval(
        "INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) VALUES ($1, $2, $3)"
        " ON CONFLICT (quota_id, limit_type, threshold_percent) DO NOTHING RETURNING id",
        quota.id,
        limit_type,
        checked_threshold(threshold_percent),
    )
    if limit_id is None:
        raise QuotaError(f"a {limit_type} limit at {threshold_percent}% already exists")
    return QuotaLimit(id=limit_id, limit_type=limit_type, threshold_percent=threshold_percent)


async def change_limit(
    conn: asyncpg.Connection,
    quota: Quota,
    limit_id: int,
    limit_type: LimitType | None,
    threshold_percent: int | None,
) -> QuotaLimit:
    """Change a limit's type and/or threshold (fields left out stay); QuotaError for a duplicate."""
    current = find_limit(quota, limit_id)
    changed = QuotaLimit(
        id=limit_id,
        limit_type=limit_type or current.limit_type,
        threshold_percent=checked_threshold(threshold_percent)
        if threshold_percent is not None
        else current.threshold_percent,
    )
    try:
        await conn.execute(
            "UPDATE quota_limit SET limit_type = $2, threshold_percent = $3 WHERE id = $1",
            limit_id,
            changed.limit_type,
            changed.threshold_percent,
        )
    except asyncpg.UniqueViolationError as error:
        raise QuotaError(
            f"a {changed.limit_type} limit at {changed.threshold_percent}% already exists"
        ) from error
    return changed


async def delete_limit(conn: asyncpg.Connection, quota: Quota, limit_id: int) -> QuotaLimit:
    limit = find_limit(quota, limit_id)
    await conn.execute("DELETE FROM quota_limit WHERE id = $1", limit_id)
    return limit


class QuotaReport(BaseModel):
    """Quay's ``quota_report`` of an organization or repository."""

    quota_bytes: int
    configured_quota: int | None


async def namespace_quota_report(
    conn: asyncpg.Connection, namespace_id: int, default_reject_bytes: int | None
) -> QuotaReport:
    row = await conn.fetchrow(
        "SELECT (SELECT bytes FROM namespace_usage WHERE namespace_id = $1) AS usage,"
        " (SELECT limit_bytes FROM quota WHERE namespace_id = $1) AS limit_bytes",
        namespace_id,
    )
    configured = row["limit_bytes"] if row["limit_bytes"] is not None else default_reject_bytes
    return QuotaReport(quota_bytes=row["usage"] or 0, configured_quota=configured)


async def repository_quota_report(
    conn: asyncpg.Connection, repository_id: int, namespace_id: int, default_reject_bytes: int | None
) -> QuotaReport:
    row = await conn.fetchrow(
        "SELECT (SELECT bytes FROM repository_usage WHERE repository_id = $1) AS usage,"
        " (SELECT limit_bytes FROM quota WHERE namespace_id = $2) AS limit_bytes",
        repository_id,
        namespace_id,
    )
    configured = row["limit_bytes"] if row["limit_bytes"] is not None else default_reject_bytes
    return QuotaReport(quota_bytes=row["usage"] or 0, configured_quota=configured)


# The superuser's report

ReportSort = Literal["usage", "name"]
ReportFilter = Literal["all", "with_quota", "over_quota", "over_without_reject"]
QuotaState = Literal["no_quota", "ok", "warning", "over_without_reject", "rejecting"]


class ReportPosition(BaseModel):
    """Where a page of the report ends: the last row's sort key."""

    sort: ReportSort
    usage_bytes: int = Field(ge=0, le=2**63 - 1)
    namespace_id: int = Field(ge=0, le=2**63 - 1)
    name: str = Field(max_length=255)


class ReportEntry(BaseModel):
    namespace: str
    kind: str
    usage_bytes: int
    limit_bytes: int | None
    default_config: bool
    reject_limit_bytes: int | None
    state: QuotaState


# Each filter is a fixed condition on the joined row (r); the queries are built from fixed text only.
_REPORT_FILTERS: dict[ReportFilter, str] = {
    "all": "TRUE",
    "with_quota": "r.quota_id IS NOT NULL",
    "over_quota": "r.limit_bytes IS NOT NULL AND r.usage_bytes >= r.limit_bytes",
    "over_without_reject": (
        "r.quota_id IS NOT NULL AND r.reject_percent IS NULL AND r.usage_bytes >= r.limit_bytes"
    ),
}
# Per sort: the rows read, the namespace id and usage columns, the rows after the position ($3, $4 =
# usage, namespace id; or $3 = name) and their order. By usage, the rows come from namespace_usage
# in (bytes, namespace_id) order, a backward range of its index (migration 0019) that starts at the
# position, so namespaces that never stored anything (no usage row) are listed by name only.
_REPORT_SORTS: dict[ReportSort, tuple[str, str, str, str, str]] = {
    "usage": (
        "namespace_usage u JOIN namespace n ON n.id = u.namespace_id",
        "u.namespace_id",
        "u.bytes",
        "(r.usage_bytes, r.namespace_id) < ($3::bigint, $4::bigint)",
        "r.usage_bytes DESC, r.namespace_id DESC",
    ),
    "name": (
        "namespace n LEFT JOIN namespace_usage u ON u.namespace_id = n.id",
        "n.id",
        "COALESCE(u.bytes, 0)",
        "r.name > $3::text",
        "r.name",
    ),
}
_REPORT_ROWS = """
WITH r AS (
    SELECT {id} AS namespace_id, n.name, n.kind, {usage} AS usage_bytes, q.id AS quota_id,
           COALESCE(q.limit_bytes, $1::bigint) AS limit_bytes,
           CASE WHEN q.id IS NULL THEN 100
                ELSE (SELECT min(l.threshold_percent) FROM quota_limit l
                      WHERE l.quota_id = q.id AND l.limit_type = 'Reject') END AS reject_percent,
           (SELECT max(l.threshold_percent) FROM quota_limit l
            WHERE l.quota_id = q.id AND l.limit_type = 'Warning'
              AND {usage} * 100 >= l.threshold_percent::bigint * q.limit_bytes) AS warning_percent
    FROM {rows}
    LEFT JOIN quota q ON q.namespace_id = n.id
    WHERE NOT n.marked_for_deletion
)
SELECT * FROM r WHERE {keyset} AND {filter} ORDER BY {order} LIMIT $2
"""

REPORT_QUERIES: dict[tuple[ReportSort, ReportFilter], str] = {
    (sort, only): _REPORT_ROWS.format(
        rows=rows_read, id=id_column, usage=usage, keyset=keyset, filter=_REPORT_FILTERS[only], order=order
    )
    for sort, (rows_read, id_column, usage, keyset, order) in _REPORT_SORTS.items()
    for only in _REPORT_FILTERS
}


def _state(row: asyncpg.Record, reject_bytes: int | None) -> QuotaState:
    limit_bytes: int | None = row["limit_bytes"]
    if limit_bytes is None:
        return "no_quota"
    if reject_bytes is not None and row["usage_bytes"] >= reject_bytes:
        return "rejecting"
    if row["usage_bytes"] >= limit_bytes and row["reject_percent"] is None:
        return "over_without_reject"
    return "warning" if row["warning_percent"] is not None else "ok"


async def quota_report(
    conn: asyncpg.Connection,
    *,
    sort: ReportSort,
    only: ReportFilter,
    default_reject_bytes: int | None,
    after: ReportPosition | None,
    limit: int,
) -> tuple[list[ReportEntry], ReportPosition | None]:
    """One page of the live namespaces' usage against their limits, biggest first (those that store
    or stored something) or every namespace by name, and the position of the next page (None on
    the last)."""
    query = REPORT_QUERIES[sort, only]
    # The first page starts before every row: no namespace uses 2^63 - 1 bytes or has an empty name.
    start = after or ReportPosition(sort=sort, usage_bytes=2**63 - 1, namespace_id=0, name="")
    keys = (start.usage_bytes, start.namespace_id) if sort == "usage" else (start.name,)
    rows = await conn.fetch(query, default_reject_bytes, limit + 1, *keys)
    entries = []
    last_id = 0
    for row in rows[:limit]:
        last_id = row["namespace_id"]
        limit_bytes = row["limit_bytes"]
        reject_percent = row["reject_percent"] if limit_bytes is not None else None
        reject_bytes = limit_bytes * reject_percent // 100 if reject_percent is not None else None
        entries.append(
            ReportEntry(
                namespace=row["name"],
                kind=row["kind"],
                usage_bytes=row["usage_bytes"],
                limit_bytes=limit_bytes,
                default_config=row["quota_id"] is None and limit_bytes is not None,
                reject_limit_bytes=reject_bytes,
                state=_state(row, reject_bytes),
            )
        )
    if len(rows) <= limit:
        return entries, None
    last = entries[-1]
    return entries, ReportPosition(
        sort=sort, usage_bytes=last.usage_bytes, namespace_id=last_id, name=last.namespace
    )

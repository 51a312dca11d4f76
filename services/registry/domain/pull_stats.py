"""Pull statistics: how often, and when last, each tag and manifest was pulled.

Pulls are the registry's hot path, so a pull only adds to counters in process memory; every few
seconds (QUAYSIDE_PULL_STATS_FLUSH_INTERVAL_S) and at shutdown the process writes what it gathered
as one batched upsert per table. A flush that fails keeps its counts for the next one. Counts are
kept by tag name and by manifest digest within a repository, as Quay does: a pull by tag counts
for the tag and its manifest, a pull by digest for the manifest only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

log = logging.getLogger(__name__)

# Distinct counters one process holds between flushes; pulls of further tags or manifests are not
# counted until the next flush (only reached while the database is unreachable for long).
_MAX_PENDING = 100_000

# What an unreachable or failing database raises (TimeoutError is an OSError).
_DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_UPSERT_MANIFESTS = """
INSERT INTO manifest_pull_stats (repository_id, digest, pull_count, last_pulled_at)
SELECT u.repository_id, u.digest, u.pulls, to_timestamp(u.last_pulled)
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::float8[])
    AS u (repository_id, digest, pulls, last_pulled)
WHERE EXISTS (SELECT 1 FROM repository r WHERE r.id = u.repository_id)
ON CONFLICT (repository_id, digest) DO UPDATE SET
    pull_count = manifest_pull_stats.pull_count + EXCLUDED.pull_count,
    last_pulled_at = GREATEST(manifest_pull_stats.last_pulled_at, EXCLUDED.last_pulled_at)
"""
_UPSERT_TAGS = """
INSERT INTO tag_pull_stats (repository_id, tag_name, pull_count, last_pulled_at, manifest_digest)
SELECT u.repository_id, u.tag_name, u.pulls, to_timestamp(u.last_pulled), u.digest
FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::float8[], $5::text[])
    AS u (repository_id, tag_name, pulls, last_pulled, digest)
WHERE EXISTS (SELECT 1 FROM repository r WHERE r.id = u.repository_id)
ON CONFLICT (repository_id, tag_name) DO UPDATE SET
    pull_count = tag_pull_stats.pull_count + EXCLUDED.pull_count,
    manifest_digest = CASE WHEN EXCLUDED.last_pulled_at >= tag_pull_stats.last_pulled_at
        THEN EXCLUDED.manifest_digest ELSE tag_pull_stats.manifest_digest END,
    last_pulled_at = GREATEST(tag_pull_stats.last_pulled_at, EXCLUDED.last_pulled_at)
"""


@dataclass(slots=True)
class _Counter:
    pulls: int
    last_pulled: float
    digest: str


@dataclass(frozen=True)
class PullCount:
    pull_count: int
    last_pulled_at: datetime | None


NEVER_PULLED = PullCount(0, None)


class PullStats:
    """The pulls one process counted since its last flush."""

    def __init__(self) -> None:
        self._manifests: dict[tuple[int, str], _Counter] = {}
        self._tags: dict[tuple[int, str], _Counter] = {}

    def record(self, repository_id: int, reference: str, digest: str) -> None:
        """Count one pull of the manifest ``digest``, asked for by ``reference`` (a tag or the digest)."""
        now = time.time()
        _count(self._manifests, (repository_id, digest), digest, now)
        if ":" not in reference:  # tags cannot contain ':', digests always do
            _count(self._tags, (repository_id, reference), digest, now)

    async def flush(self, pool: asyncpg.Pool) -> None:
        """Write the pending counts; on failure they stay pending (merged with newer ones)."""
        manifests, tags = self._manifests, self._tags
        if not manifests and not tags:
            return
        self._manifests, self._tags = {}, {}
        try:
            async with pool.acquire() as conn, conn.transaction():
                await _upsert(conn, _UPSERT_MANIFESTS, manifests, with_digest=False)
                await _upsert(conn, _UPSERT_TAGS, tags, with_digest=True)
        except BaseException:
            _merge(self._manifests, manifests)
            _merge(self._tags, tags)
            raise

    async def run(self, pool: asyncpg.Pool, interval_s: float) -> None:
        """Flush every ``interval_s`` until cancelled; the caller flushes once more after that."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush(pool)
            except _DATABASE_ERRORS as error:
                log.warning("pull statistics not written, kept for the next flush: %s", error)


async def stop_and_flush(flusher: asyncio.Task[None], stats: PullStats, pool: asyncpg.Pool) -> None:
    """At shutdown: stop the periodic flusher, then write what is still pending."""
    flusher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flusher
    try:
        await stats.flush(pool)
    except _DATABASE_ERRORS as error:
        log.warning("pull statistics lost at shutdown: %s", error)


def _count(counters: dict[tuple[int, str], _Counter], key: tuple[int, str], digest: str, now: float) -> None:
    counter = counters.get(key)
    if counter is not None:
        counter.pulls += 1
        counter.last_pulled = now
        counter.digest = digest
    elif len(counters) < _MAX_PENDING:
        counters[key] = _Counter(1, now, digest)


def _merge(into: dict[tuple[int, str], _Counter], earlier: dict[tuple[int, str], _Counter]) -> None:
    for key, old in earlier.items():
        newer = into.get(key)
        if newer is None:
            into[key] = old
        else:
            newer.pulls += old.pulls


async def _upsert(
    conn: asyncpg.Connection, sql: str, counters: dict[tuple[int, str], _Counter], *, with_digest: bool
) -> None:
    if not counters:
        return
    # Sorted, so that concurrent flushes of several processes lock rows in the same order.
    keys = sorted(counters)
    columns: list[Iterable[object]] = [
        [repository_id for repository_id, _ in keys],
        [name for _, name in keys],
        [counters[key].pulls for key in keys],
        [counters[key].last_pulled for key in keys],
    ]
    if with_digest:
        columns.append([counters[key].digest for key in keys])
    await conn.execute(sql, *columns)


async def manifest_pull_count(conn: asyncpg.Connection, repository_id: int, digest: str) -> PullCount:
    row = await conn.fetchrow(
        "SELECT pull_count, last_pulled_at FROM manifest_pull_stats WHERE repository_id = $1 AND digest = $2",
        repository_id,
        digest,
    )
    return PullCount(row["pull_count"], row["last_pulled_at"]) if row else NEVER_PULLED


async def tag_pull_counts(
    conn: asyncpg.Connection, repository_id: int, tag_names: Iterable[str]
) -> dict[str, PullCount]:
    """The counts of these tags that were ever pulled (others are absent)."""
    rows = await conn.fetch(
        "SELECT tag_name, pull_count, last_pulled_at FROM tag_pull_stats"
        " WHERE repository_id = $1 AND tag_name = ANY($2::text[])",
        repository_id,
        sorted(set(tag_names)),
    )
    return {row["tag_name"]: PullCount(row["pull_count"], row["last_pulled_at"]) for row in rows}

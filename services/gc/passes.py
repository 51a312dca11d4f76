"""One garbage-collection pass, and the record of every pass (table gc_pass, migration 0016).

A pass runs, in order: namespace purge, repository purge (FEATURE_NAMESPACE_/REPOSITORY_GARBAGE_
COLLECTION), then tag purge, manifest collection and blob collection (FEATURE_GARBAGE_COLLECTION).
One pass at a time across every process: a pass holds a session advisory lock on its own
connection, and a pass that finds it taken does nothing. Nothing is written while the registry is
read-only. A dry run does everything but delete bytes inside one transaction that it rolls back,
so it reports exactly what a pass would delete now (events included, never sent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import asyncpg
from pydantic import BaseModel

from services.gc import metrics
from services.gc.blob_collection import collect_blobs
from services.gc.manifest_collection import collect_manifests
from services.gc.pacing import Pacer
from services.gc.repository_purge import purge_namespaces, purge_repositories
from services.gc.tag_purge import purge_tags
from services.gc.tally import PassTally
from shared.config import Settings
from shared.readonly_state import registry_read_only
from shared.storage import Locations

log = logging.getLogger(__name__)

_PASS_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('quayside:gc-pass', 0))"

PassStatus = Literal["running", "finished", "failed"]


class GcPass(BaseModel):
    """A pass as recorded: when, dry or not, and what it deleted (or would have)."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    dry_run: bool
    status: PassStatus
    tags_purged: int
    manifests_deleted: int
    blobs_deleted: int
    repositories_purged: int
    namespaces_purged: int
    bytes_reclaimed: int
    bytes_by_location: dict[str, int]
    rows_by_table: dict[str, int]
    error: str | None


@dataclass
class PassOutcome:
    """What run_pass did: ``record`` is None when it did not run (``reason`` says why)."""

    tally: PassTally = field(default_factory=PassTally)
    record: GcPass | None = None
    reason: str | None = None


@dataclass(frozen=True)
class PassOptions:
    """``now`` replaces the database clock (tests, what-if runs); ``grace_s`` replaces
    PUSH_TEMP_TAG_EXPIRATION_SEC."""

    dry_run: bool = False
    now: datetime | None = None
    grace_s: int | None = None


_COLUMNS = (
    "id, started_at, finished_at, dry_run, status, tags_purged, manifests_deleted, blobs_deleted,"
    " repositories_purged, namespaces_purged, bytes_reclaimed, bytes_by_location, rows_by_table, error"
)


async def run_pass(
    pool: asyncpg.Pool, locations: Locations, settings: Settings, options: PassOptions | None = None
) -> PassOutcome:
    """Run one pass now, unless another is running or the registry is read-only."""
    options = options or PassOptions()
    if not options.dry_run and await registry_read_only(pool, settings):
        return PassOutcome(reason="the registry is read-only")
    async with pool.acquire() as conn:
        if not await conn.fetchval(_PASS_LOCK):
            return PassOutcome(reason="another garbage-collection pass is running")
        try:
            return await _run_locked(conn, locations, settings, options)
        finally:
            await _release_session_locks(conn)


async def _release_session_locks(conn: asyncpg.Connection) -> None:
    """Pooled connections must not keep session locks: unlock, or drop the connection."""
    try:
        await conn.execute("SELECT pg_advisory_unlock_all()")
    except BaseException:
        conn.terminate()
        raise


async def _run_locked(
    conn: asyncpg.Connection, locations: Locations, settings: Settings, options: PassOptions
) -> PassOutcome:
    now: datetime = options.now or await conn.fetchval("SELECT now()")
    grace = settings.push_temp_tag_expiration_sec if options.grace_s is None else options.grace_s
    cutoff = now - timedelta(seconds=grace)
    pass_id: int = await conn.fetchval(
        "INSERT INTO gc_pass (dry_run) VALUES ($1) RETURNING id", options.dry_run
    )
    tally = PassTally()
    try:
        if options.dry_run:
            transaction = conn.transaction()
            await transaction.start()
            try:
                await _steps(conn, locations, settings, tally, now, cutoff, dry_run=True)
            finally:
                await transaction.rollback()
        else:
            await _steps(conn, locations, settings, tally, now, cutoff, dry_run=False)
    except Exception as error:
        log.exception("garbage-collection pass %d failed", pass_id)
        await _finish(conn, pass_id, tally, "failed", repr(error)[:1000])
        raise
    record = await _finish(conn, pass_id, tally, "finished", None)
    if not options.dry_run:
        metrics.record(tally)
    return PassOutcome(tally=tally, record=record)


async def _steps(
    conn: asyncpg.Connection,
    locations: Locations,
    settings: Settings,
    tally: PassTally,
    now: datetime,
    cutoff: datetime,
    *,
    dry_run: bool,
) -> None:
    if settings.feature_namespace_garbage_collection:
        await purge_namespaces(conn, tally)
    if settings.feature_repository_garbage_collection:
        await purge_repositories(conn, tally)
    if settings.feature_garbage_collection:
        pacer = Pacer(settings.garbage_collection_duty)
        await purge_tags(conn, tally, now)
        await collect_manifests(conn, tally, cutoff, pacer)
        await collect_blobs(conn, locations, tally, cutoff, pacer, dry_run=dry_run)


async def _finish(
    conn: asyncpg.Connection, pass_id: int, tally: PassTally, status: PassStatus, error: str | None
) -> GcPass:
    row = await conn.fetchrow(
        "UPDATE gc_pass SET finished_at = clock_timestamp(), status = $2, tags_purged = $3,"
        " manifests_deleted = $4, blobs_deleted = $5, repositories_purged = $6, namespaces_purged = $7,"
        f" bytes_reclaimed = $8, bytes_by_location = $9, rows_by_table = $10, error = $11 WHERE id = $1"
        f" RETURNING {_COLUMNS}",
        pass_id,
        status,
        tally.tags_purged,
        len(tally.manifests),
        len(tally.blobs),
        tally.repositories_purged,
        tally.namespaces_purged,
        tally.bytes_reclaimed,
        dict(tally.bytes_by_location),
        dict(tally.rows_by_table),
        error,
    )
    return GcPass(**dict(row))


async def recent_passes(db: asyncpg.Pool | asyncpg.Connection, limit: int) -> list[GcPass]:
    """The last ``limit`` passes, newest first."""
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM gc_pass ORDER BY id DESC LIMIT $1", limit)
    return [GcPass(**dict(row)) for row in rows]

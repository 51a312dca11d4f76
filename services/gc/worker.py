"""The garbage-collection worker: every GARBAGE_COLLECTION_FREQUENCY seconds, the housekeeping steps
(auto-prune policies, janitors) and then one collection pass (services/gc/passes.py).

Every process of the suite may run this worker: passes take turns through their advisory lock,
so at most one collects at a time. A step that fails is logged and retried at the next tick.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.gc.autoprune import run_autoprune
from services.gc.janitors import run_janitors
from services.gc.passes import run_pass
from shared.config import Settings
from shared.db import create_pool
from shared.storage import Locations, StorageError

log = logging.getLogger(__name__)

_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    StorageError,
    TimeoutError,
)


async def housekeeping(pool: asyncpg.Pool, locations: Locations, settings: Settings) -> None:
    """The steps of each tick before collection: auto-prune ends the tags its policies select (into
    the time machine, where tag purge finds them later), the janitors remove abandoned uploads
    and old event records."""
    await run_autoprune(pool)
    await run_janitors(pool, locations, settings)


async def tick(pool: asyncpg.Pool, locations: Locations, settings: Settings) -> None:
    """One tick: housekeeping, then a pass; failures are logged, not raised."""
    try:
        await housekeeping(pool, locations, settings)
    except _FAILURES:
        log.exception("garbage-collection housekeeping failed, retried next time")
    try:
        outcome = await run_pass(pool, locations, settings)
    except _FAILURES:
        log.exception("garbage-collection pass failed, retried next time")
        return
    if outcome.record is None:
        log.debug("garbage-collection pass not run: %s", outcome.reason)
    elif outcome.record.blobs_deleted or outcome.record.manifests_deleted or outcome.record.tags_purged:
        record = outcome.record
        log.info(
            "gc pass %d: %d tags, %d manifests, %d blobs (%d bytes), %d repositories, %d namespaces",
            record.id,
            record.tags_purged,
            record.manifests_deleted,
            record.blobs_deleted,
            record.bytes_reclaimed,
            record.repositories_purged,
            record.namespaces_purged,
        )


async def run_gc_worker(settings: Settings, locations: Locations | None = None) -> None:
    """Tick every garbage_collection_frequency seconds until cancelled."""
    pool = await create_pool(settings.database_url, max_size=4)
    opened = locations is None
    storage = locations or await Locations.open(settings)
    try:
        while True:
            await tick(pool, storage, settings)
            await asyncio.sleep(settings.garbage_collection_frequency)
    finally:
        if opened:
            await storage.close()
        await pool.close()

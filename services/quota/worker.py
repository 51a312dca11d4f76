"""The quota worker: durable consumers, one queue per purpose, and a periodic reconcile report.

Queues (QUAYSIDE_QUOTA_QUEUE_PREFIX, default ``quota``): ``quota.manifest-pushed``,
``quota.blobs-collected`` and ``quota.repository-deleted``; each event is handled once per queue (processed_event) and acknowledged after its transaction commits. Without
QUAYSIDE_AMQP_URL they subscribe to the in-process bus instead (embedded mode). While the registry
is read-only (shared/readonly_state.py) no event is handled: they wait, unacknowledged, until it is
writable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from services.quota.accounting import QuotaAccounting
from services.quota.reconcile import reconcile
from shared.config import Settings
from shared.db import create_pool
from shared.events.bus import InProcessBus
from shared.events.consumer import WritableConsumer, consuming_from_amqp, subscribe_in_process
from shared.events.models import BlobsCollected, ManifestPushed, RepositoryDeleted

log = logging.getLogger(__name__)

# Queue suffix -> the routing keys bound to it.
QUEUES: dict[str, tuple[str, ...]] = {
    "manifest-pushed": (ManifestPushed.routing_key,),
    "blobs-collected": (BlobsCollected.routing_key,),
    "repository-deleted": (RepositoryDeleted.routing_key,),
}
# Each handler holds one connection for its transaction; the reconcile report one more.
_POOL_SIZE = len(QUEUES) + 1
_DATABASE_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def queue_name(settings: Settings, purpose: str) -> str:
    return f"{settings.quota_queue_prefix}.{purpose}"


@contextlib.asynccontextmanager
async def quota_consumers(
    settings: Settings, pool: asyncpg.Pool, bus: InProcessBus | None = None
) -> AsyncIterator[None]:
    """Consume the quota events for the block's duration: from RabbitMQ when QUAYSIDE_AMQP_URL is
    set (queues declared on entry), else from ``bus``."""
    handler = QuotaAccounting(settings.default_system_reject_quota_bytes)
    async with contextlib.AsyncExitStack() as stack:
        for purpose, keys in QUEUES.items():
            name = queue_name(settings, purpose)
            consumer = WritableConsumer(name, pool, handler, settings)
            if settings.amqp_url:
                await stack.enter_async_context(
                    consuming_from_amqp(
                        consumer,
                        amqp_url=settings.amqp_url,
                        exchange=settings.events_exchange,
                        queue=name,
                        binding_keys=keys,
                    )
                )
            elif bus is not None:
                subscribe_in_process(bus, consumer, keys)
            else:
                raise TypeError("without QUAYSIDE_AMQP_URL, the quota consumers need the in-process bus")
        yield


@contextlib.asynccontextmanager
async def consuming_quota_events(
    settings: Settings, bus: InProcessBus | None = None
) -> AsyncIterator[asyncpg.Pool]:
    """The consumers on a pool of their own, for the block's duration; yields the pool."""
    pool = await create_pool(settings.database_url, max_size=_POOL_SIZE)
    try:
        async with quota_consumers(settings, pool, bus):
            yield pool
    finally:
        await pool.close()


async def run_quota_worker(settings: Settings, bus: InProcessBus | None = None) -> None:
    """Consume until cancelled, reporting the reconcile figures every QUAYSIDE_QUOTA_RECONCILE_INTERVAL_S."""
    async with consuming_quota_events(settings, bus) as pool:
        await report_drift(settings, pool)


async def report_drift(settings: Settings, pool: asyncpg.Pool) -> None:
    """Recount every namespace every QUAYSIDE_QUOTA_RECONCILE_INTERVAL_S, logging drift (never repairing)."""
    if settings.quota_reconcile_interval_s == 0:
        await asyncio.Event().wait()
    while True:
        await asyncio.sleep(settings.quota_reconcile_interval_s)
        try:
            results = await reconcile(pool)
        except _DATABASE_ERRORS as error:
            log.warning("quota reconcile report failed: %r", error)
            continue
        for entry in results:
            if entry.result.drifted:
                log.warning(
                    "quota drift in %s: recorded %d bytes, recounted %d",
                    entry.namespace,
                    entry.result.recorded_bytes,
                    entry.result.actual_bytes,
                )

"""The registry's worker: relays the events its requests write to the outbox onto the event bus,
delivers the notifications those events raise, and announces tags whose expiration has passed."""

from __future__ import annotations

import contextlib

import asyncpg

from services.registry.domain.notification_delivery import delivering_notifications
from services.registry.domain.tag_lifecycle import announcing_expired_tags
from shared.config import Settings
from shared.db import create_pool
from shared.events.bus import AmqpPublisher, InProcessBus, Publisher
from shared.events.relay import OutboxRelay

# The relay drains one batch at a time, on one connection (it listens on a connection of its own).
_RELAY_POOL_SIZE = 1
# Notification deliveries hold a connection (their transaction) while they wait on receivers.
_NOTIFICATIONS_POOL_SIZE = 4
# Expired tags are announced in batches, one transaction at a time.
_EXPIRY_POOL_SIZE = 1


def publisher_for(settings: Settings) -> Publisher:
    """RabbitMQ when QUAYSIDE_AMQP_URL is set, else the in-process bus (embedded, single process)."""
    if settings.amqp_url:
        return AmqpPublisher(settings.amqp_url, settings.events_exchange)
    return InProcessBus()


async def run_worker(settings: Settings, publisher: Publisher) -> None:
    """Publish outbox events to publisher until cancelled; closes the publisher on the way out.

    Whatever was opened is closed however far start-up got when the worker is cancelled.
    """
    async with contextlib.AsyncExitStack() as opened:
        opened.push_async_callback(publisher.close)
        pool = await _open_pool(opened, settings.database_url, _RELAY_POOL_SIZE)
        notifications_pool = await _open_pool(opened, settings.database_url, _NOTIFICATIONS_POOL_SIZE)
        # Consumers first: in embedded mode the bus drops events published before they subscribe.
        await opened.enter_async_context(delivering_notifications(settings, notifications_pool, publisher))
        expiry_pool = await _open_pool(opened, settings.database_url, _EXPIRY_POOL_SIZE)
        await opened.enter_async_context(announcing_expired_tags(expiry_pool))
        await OutboxRelay(pool, publisher, listen_dsn=settings.database_url).run()


async def _open_pool(opened: contextlib.AsyncExitStack, dsn: str, size: int) -> asyncpg.Pool:
    pool = await create_pool(dsn, max_size=size)
    opened.push_async_callback(pool.close)
    return pool

"""The quota consumers over real RabbitMQ: killed mid-stream (task cancelled with messages in flight)
and started again, they handle every event once, and the figures equal the recount."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from services.quota.worker import QUEUES, queue_name, quota_consumers
from shared.config import Settings
from shared.events.bus import AmqpPublisher
from shared.events.consumer import dead_letter_queue_name
from shared.events.models import Event
from shared.quota import recount_namespace, usage_bytes
from tests.quota import store
from tests.quota.store import digest_of
from tests.support.waiting import wait_until

PUSHES = 120


@pytest.fixture
async def quota_settings(database_url: str, amqp_url: str, events_exchange: str) -> AsyncIterator[Settings]:
    settings = Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        events_exchange=events_exchange,
        quota_queue_prefix=f"quota-test-{uuid.uuid4().hex[:8]}",
        quota_reconcile_interval_s=0,
    )
    yield settings
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for purpose in QUEUES:
            name = queue_name(settings, purpose)
            await channel.queue_delete(name)
            await channel.queue_delete(dead_letter_queue_name(name))


async def consume_until_cancelled(settings: Settings, pool: asyncpg.Pool, ready: asyncio.Event) -> None:
    async with quota_consumers(settings, pool):
        ready.set()
        await asyncio.Event().wait()


async def handled(pool: asyncpg.Pool, settings: Settings, purpose: str) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM processed_event WHERE consumer = $1", queue_name(settings, purpose)
    )


async def test_a_consumer_killed_mid_stream_and_restarted_leaves_no_drift(
    db_pool: asyncpg.Pool, quota_settings: Settings
) -> None:
    async with db_pool.acquire() as conn:
        org = await store.namespace(conn, "restarted")
        repos = [await store.repository(conn, org, f"r{n}") for n in range(3)]
        events: list[Event] = []
        for n in range(PUSHES):
            layers = {digest_of(f"base-{n % 7}"): 5000 + n % 7, digest_of(f"top-{n}"): 100 + n}
            _, pushed = await store.push(conn, repos[n % 3], layers, f"t{n % 10}")
            events.append(pushed)
        for repository_id in repos:
            await store.purge_time_machine(conn, repository_id)
        collected = await store.collect_garbage(conn, org)
    events.append(collected)

    ready = asyncio.Event()
    first = asyncio.create_task(consume_until_cancelled(quota_settings, db_pool, ready))
    await asyncio.wait_for(ready.wait(), 15)
    publisher = AmqpPublisher(quota_settings.amqp_url or "", quota_settings.events_exchange)
    try:
        for event in events:
            await publisher.publish(event.routing_key, event.model_dump_json().encode(), str(event.event_id))
    finally:
        await publisher.close()

    await wait_until(lambda: _at_least(db_pool, quota_settings, PUSHES // 4))
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert await handled(db_pool, quota_settings, "manifest-pushed") < PUSHES, "killed after the stream ended"

    ready = asyncio.Event()
    second = asyncio.create_task(consume_until_cancelled(quota_settings, db_pool, ready))
    try:
        await wait_until(lambda: _all_handled(db_pool, quota_settings), timeout_s=30)
    finally:
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second

    async with db_pool.acquire() as conn:
        result = await recount_namespace(conn, org)
        assert not result.drifted, result
        # 3 repositories x 10 tag names: the last 30 manifests stay, with their top layers and the bases.
        kept = sum(100 + n for n in range(PUSHES - 30, PUSHES)) + sum(5000 + n for n in range(7))
        assert await usage_bytes(conn, org) == kept


async def _at_least(pool: asyncpg.Pool, settings: Settings, count: int) -> bool:
    return await handled(pool, settings, "manifest-pushed") >= count


async def _all_handled(pool: asyncpg.Pool, settings: Settings) -> bool:
    return (
        await handled(pool, settings, "manifest-pushed") == PUSHES
        and await handled(pool, settings, "blobs-collected") == 1
    )

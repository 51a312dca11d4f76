from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from shared.events.bus import AmqpPublisher, BusMessage, InProcessBus, PublishError
from shared.events.models import Event, ManifestPushed, parse_event
from shared.events.outbox import enqueue
from shared.events.relay import LISTEN_APPLICATION_NAME, OutboxRelay, outbox_backlog
from tests.events.helpers import (
    FailureCountingPublisher,
    blob_pushed,
    enqueue_committed,
    running,
)
from tests.fixtures.rabbitmq import MessageCollector
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until

# Longer than any wait in these tests: an event arriving in time was announced by NOTIFY.
NO_POLLING_S = 600.0


async def outbox_is_empty(pool: asyncpg.Pool) -> bool:
    return await outbox_backlog(pool) == 0


async def test_committed_events_are_published_as_soon_as_they_commit(
    db_pool: asyncpg.Pool,
    database_url: str,
    amqp_publisher: AmqpPublisher,
    events_collector: MessageCollector,
) -> None:
    relay = OutboxRelay(db_pool, amqp_publisher, listen_dsn=database_url, poll_interval_s=NO_POLLING_S)
    manifest = ManifestPushed(
        namespace="acme",
        repository="app",
        digest="sha256:" + "ab" * 32,
        media_type="application/vnd.oci.image.manifest.v1+json",
        size=512,
        tags=["latest", "1.0"],
        pusher="alice",
    )
    events = [blob_pushed(1), manifest]

    async with running(relay.run()):
        await enqueue_committed(db_pool, *events)
        messages = await events_collector.wait_for(2)
        await wait_until(lambda: outbox_is_empty(db_pool))

    assert [(m.routing_key, m.message_id) for m in messages] == [
        (event.routing_key, str(event.event_id)) for event in events
    ]
    assert [parse_event(m.routing_key, m.body) for m in messages] == events


async def test_a_rolled_back_transaction_publishes_nothing(
    db_pool: asyncpg.Pool,
    database_url: str,
    amqp_publisher: AmqpPublisher,
    events_collector: MessageCollector,
) -> None:
    relay = OutboxRelay(db_pool, amqp_publisher, listen_dsn=database_url)
    rolled_back, committed = blob_pushed(1), blob_pushed(2)

    with pytest.raises(RuntimeError):
        async with db_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, rolled_back)
            raise RuntimeError("the change fails after the event was written")
    await enqueue_committed(db_pool, committed)

    assert await relay.drain_once() == 1
    # One channel delivers in order: had the rolled-back event been published, it would come first.
    messages = await events_collector.wait_for(1)
    assert [m.message_id for m in messages] == [str(committed.event_id)]


async def test_broker_outage_delays_events_without_losing_or_reordering_them(
    caplog: pytest.LogCaptureFixture,
    db_pool: asyncpg.Pool,
    database_url: str,
    proxied_amqp_url: str,
    broker_proxy: TcpProxy,
    events_exchange: str,
    events_collector: MessageCollector,
) -> None:
    publisher = FailureCountingPublisher(AmqpPublisher(proxied_amqp_url, events_exchange, timeout_s=5))
    relay = OutboxRelay(db_pool, publisher, batch_size=7, listen_dsn=database_url)
    before = blob_pushed(0)
    await enqueue_committed(db_pool, before)
    assert await relay.drain_once() == 1
    await events_collector.wait_for(1)

    await broker_proxy.stop()
    during = [blob_pushed(number) for number in range(1, 21)]
    for event in during:
        await enqueue_committed(db_pool, event)
    with pytest.raises(PublishError):
        await relay.drain_once()
    assert await outbox_backlog(db_pool) == len(during)

    caplog.set_level(logging.INFO, logger="shared.events.relay")
    try:
        async with running(relay.run()):
            await wait_until(lambda: publisher.failures >= 3)
            assert await outbox_backlog(db_pool) == len(during)

            await broker_proxy.start()
            messages = await events_collector.wait_for(1 + len(during))
            await wait_until(lambda: outbox_is_empty(db_pool))
    finally:
        await publisher.close()

    assert [m.message_id for m in messages] == [str(event.event_id) for event in [before, *during]]
    relay_reports = [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "shared.events.relay"
    ]
    assert [level for level, _ in relay_reports] == [logging.WARNING, logging.INFO]
    assert relay_reports[0][1].startswith("cannot publish outbox events")
    assert relay_reports[1][1].startswith("able to publish outbox events again")


async def test_two_relays_publish_each_event_once_and_in_order(
    db_pool: asyncpg.Pool,
    database_url: str,
    amqp_url: str,
    events_exchange: str,
    events_collector: MessageCollector,
) -> None:
    events = [blob_pushed(number) for number in range(120)]
    for event in events:
        await enqueue_committed(db_pool, event)
    publishers = [AmqpPublisher(amqp_url, events_exchange) for _ in range(2)]
    relays = [
        OutboxRelay(db_pool, publisher, batch_size=10, listen_dsn=database_url) for publisher in publishers
    ]

    try:
        counts = await asyncio.gather(*(relay.drain_once() for relay in relays))
        assert sum(counts) == len(events)

        more = [blob_pushed(number) for number in range(120, 240)]
        async with running(relays[0].run()), running(relays[1].run()):
            for event in more:
                await enqueue_committed(db_pool, event)
            messages = await events_collector.wait_for(len(events) + len(more))
            await wait_until(lambda: outbox_is_empty(db_pool))
    finally:
        for publisher in publishers:
            await publisher.close()

    assert [m.message_id for m in messages] == [str(event.event_id) for event in [*events, *more]]


async def test_the_relay_listens_again_after_its_connection_drops(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    bus = InProcessBus()
    delivered: list[str] = []

    async def deliver(message: BusMessage) -> None:
        delivered.append(message.message_id)

    bus.subscribe("#", deliver)
    relay = OutboxRelay(db_pool, bus, listen_dsn=database_url, poll_interval_s=NO_POLLING_S)
    first, second = blob_pushed(1), blob_pushed(2)

    async def listener_pids() -> list[int]:
        rows = await db_pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            LISTEN_APPLICATION_NAME,
        )
        return [row["pid"] for row in rows]

    async def one_listener() -> bool:
        return len(await listener_pids()) == 1

    async with running(relay.run()):
        await wait_until(one_listener)
        [old_pid] = await listener_pids()
        await enqueue_committed(db_pool, first)
        await wait_until(lambda: len(delivered) == 1)

        await db_pool.execute("SELECT pg_terminate_backend($1)", old_pid)

        async def listening_again() -> bool:
            pids = await listener_pids()
            return len(pids) == 1 and pids[0] != old_pid

        await wait_until(listening_again)
        await enqueue_committed(db_pool, second)
        await wait_until(lambda: len(delivered) == 2)

    assert delivered == [str(first.event_id), str(second.event_id)]


async def test_embedded_mode_delivers_outbox_events_to_in_process_handlers(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    bus = InProcessBus()
    received: list[Event] = []

    async def on_blob_pushed(message: BusMessage) -> None:
        received.append(parse_event(message.routing_key, message.body))

    bus.subscribe("blob.*", on_blob_pushed)
    relay = OutboxRelay(db_pool, bus, listen_dsn=database_url)
    events = [blob_pushed(1), blob_pushed(2)]
    await enqueue_committed(db_pool, *events)

    assert await outbox_backlog(db_pool) == 2
    assert await relay.drain_once() == 2
    assert received == events
    assert await outbox_backlog(db_pool) == 0


async def test_stopping_the_relay_mid_batch_keeps_the_confirmed_events_marked(
    db_pool: asyncpg.Pool, database_url: str
) -> None:
    bus = InProcessBus()
    delivered: list[str] = []
    third_event_in_flight = asyncio.Event()

    async def slow_on_the_third(message: BusMessage) -> None:
        if len(delivered) == 2:
            third_event_in_flight.set()
            await asyncio.Event().wait()
        delivered.append(message.message_id)

    bus.subscribe("#", slow_on_the_third)
    relay = OutboxRelay(db_pool, bus, listen_dsn=database_url)
    await enqueue_committed(db_pool, *(blob_pushed(number) for number in range(5)))

    async with running(relay.run()):
        await asyncio.wait_for(third_event_in_flight.wait(), timeout=15)

    assert len(delivered) == 2
    assert await outbox_backlog(db_pool) == 3

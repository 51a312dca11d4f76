"""The shared event consumer on real RabbitMQ and the in-process bus: once per event, retries,
dead letters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from shared.events.bus import AmqpPublisher, InProcessBus
from shared.events.consumer import (
    IdempotentConsumer,
    Outcome,
    consuming_from_amqp,
    dead_letter_queue_name,
    subscribe_in_process,
)
from shared.events.models import BlobPushed, Event, TagDeleted
from tests.events.helpers import blob_pushed
from tests.support.waiting import wait_until


class RecordingHandler:
    """Records the events it handles; fails its first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.handled: list[Event] = []
        self.calls = 0
        self._failures = failures

    async def __call__(self, conn: asyncpg.Connection, event: Event) -> None:
        self.calls += 1
        if self.calls <= self._failures:
            raise RuntimeError(f"failure {self.calls}")
        await conn.execute("SELECT 1")
        self.handled.append(event)


def consumer_of(pool: asyncpg.Pool, handler: RecordingHandler, max_attempts: int = 3) -> IdempotentConsumer:
    return IdempotentConsumer(
        f"test.{uuid.uuid4().hex[:8]}", pool, handler, max_attempts=max_attempts, first_retry_delay_s=0.01
    )


def body(event: Event) -> bytes:
    return event.model_dump_json().encode()


@pytest.fixture
async def queue_name(amqp_url: str) -> AsyncIterator[str]:
    """A queue name of the test's own; the queue and its dead-letter queue are deleted afterwards."""
    name = f"quayside.test.consumer.{uuid.uuid4().hex[:12]}"
    yield name
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for queue in (name, dead_letter_queue_name(name)):
            await channel.queue_delete(queue)


async def dead_letters(amqp_url: str, queue: str, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take `count` messages from the queue's dead-letter queue (waiting for them)."""
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        dead = await channel.get_queue(dead_letter_queue_name(queue))

        async def take() -> bool:
            message = await dead.get(fail=False)
            if message is not None:
                await message.ack()
                taken.append(message)
            return len(taken) >= count

        await wait_until(take)
    return taken


async def test_an_event_published_twice_is_handled_once(
    db_pool: asyncpg.Pool, amqp_url: str, events_exchange: str, queue_name: str
) -> None:
    handler = RecordingHandler()
    consumer = consumer_of(db_pool, handler)
    event = blob_pushed(1)
    publisher = AmqpPublisher(amqp_url, events_exchange)
    try:
        async with consuming_from_amqp(
            consumer, amqp_url=amqp_url, exchange=events_exchange, queue=queue_name, binding_keys=["blob.*"]
        ):
            for _ in range(2):
                await publisher.publish(event.routing_key, body(event), str(event.event_id))
            follower = blob_pushed(2)
            await publisher.publish(follower.routing_key, body(follower), str(follower.event_id))
            await wait_until(lambda: len(handler.handled) == 2)
    finally:
        await publisher.close()

    assert [handled.event_id for handled in handler.handled] == [event.event_id, follower.event_id]
    processed = await db_pool.fetchval(
        "SELECT count(*) FROM processed_event WHERE consumer = $1", consumer.name
    )
    assert processed == 2


async def test_events_published_before_consuming_starts_are_kept_by_the_declared_queue(
    db_pool: asyncpg.Pool, amqp_url: str, events_exchange: str, queue_name: str
) -> None:
    handler = RecordingHandler()
    consumer = consumer_of(db_pool, handler)
    publisher = AmqpPublisher(amqp_url, events_exchange)
    event = blob_pushed(3)
    try:
        async with consuming_from_amqp(
            consumer, amqp_url=amqp_url, exchange=events_exchange, queue=queue_name, binding_keys=["blob.*"]
        ):
            pass
        await publisher.publish(event.routing_key, body(event), str(event.event_id))
        async with consuming_from_amqp(
            consumer, amqp_url=amqp_url, exchange=events_exchange, queue=queue_name, binding_keys=["blob.*"]
        ):
            await wait_until(lambda: len(handler.handled) == 1)
    finally:
        await publisher.close()

    assert [handled.event_id for handled in handler.handled] == [event.event_id]


async def test_poison_messages_go_to_the_dead_letter_queue(
    db_pool: asyncpg.Pool, amqp_url: str, events_exchange: str, queue_name: str
) -> None:
    handler = RecordingHandler()
    consumer = consumer_of(db_pool, handler)
    publisher = AmqpPublisher(amqp_url, events_exchange)
    healthy = blob_pushed(4)
    try:
        async with consuming_from_amqp(
            consumer, amqp_url=amqp_url, exchange=events_exchange, queue=queue_name, binding_keys=["blob.*"]
        ):
            await publisher.publish("blob.pushed", b'{"not": "an event"}', "poison-1")
            await publisher.publish("blob.unknown", body(healthy), "poison-2")
            await publisher.publish(healthy.routing_key, body(healthy), str(healthy.event_id))
            dead = await dead_letters(amqp_url, queue_name, 2)
            await wait_until(lambda: len(handler.handled) == 1)
    finally:
        await publisher.close()

    assert sorted(message.message_id or "" for message in dead) == ["poison-1", "poison-2"]
    assert all(message.headers.get("x-death") for message in dead)
    assert [event.event_id for event in handler.handled] == [healthy.event_id]


async def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(
    db_pool: asyncpg.Pool, amqp_url: str, events_exchange: str, queue_name: str
) -> None:
    handler = RecordingHandler(failures=100)
    consumer = consumer_of(db_pool, handler, max_attempts=3)
    publisher = AmqpPublisher(amqp_url, events_exchange)
    event = blob_pushed(5)
    try:
        async with consuming_from_amqp(
            consumer, amqp_url=amqp_url, exchange=events_exchange, queue=queue_name, binding_keys=["blob.*"]
        ):
            await publisher.publish(event.routing_key, body(event), str(event.event_id))
            [dead] = await dead_letters(amqp_url, queue_name, 1)
    finally:
        await publisher.close()

    assert dead.message_id == str(event.event_id)
    assert handler.calls == 3
    # The failed attempts rolled back: the event is not marked processed and may be replayed.
    assert (
        await db_pool.fetchval("SELECT count(*) FROM processed_event WHERE consumer = $1", consumer.name) == 0
    )


async def test_a_handler_failing_once_succeeds_on_retry(db_pool: asyncpg.Pool) -> None:
    handler = RecordingHandler(failures=1)
    consumer = consumer_of(db_pool, handler)
    event = blob_pushed(6)

    verdict = await consumer.process(event.routing_key, body(event))

    assert verdict.outcome is Outcome.HANDLED
    assert (handler.calls, len(handler.handled)) == (2, 1)


async def test_in_process_bus_delivers_once_and_parks_poison_messages(db_pool: asyncpg.Pool) -> None:
    handler = RecordingHandler()
    consumer = consumer_of(db_pool, handler)
    bus = InProcessBus()
    subscribe_in_process(bus, consumer, ["blob.*", "tag.deleted"])
    event: BlobPushed = blob_pushed(7)
    deleted = TagDeleted(namespace="acme", repository="app", tag="v1", digest="sha256:" + "b" * 64)

    for _ in range(2):
        await bus.publish(event.routing_key, body(event), str(event.event_id))
    await bus.publish(deleted.routing_key, body(deleted), str(deleted.event_id))
    await bus.publish("blob.pushed", b"not json", "poison")

    assert [handled.event_id for handled in handler.handled] == [event.event_id, deleted.event_id]
    parked = await db_pool.fetch("SELECT message_id, routing_key, body, reason FROM dead_letter_event")
    assert [(row["message_id"], row["routing_key"], bytes(row["body"])) for row in parked] == [
        ("poison", "blob.pushed", b"not json")
    ]
    assert "unreadable event" in parked[0]["reason"]

"""Consuming events: each event id handled once, acknowledged after commit, retried, dead-lettered.

An IdempotentConsumer owns the rules; consuming_from_amqp feeds it from a durable RabbitMQ queue and
subscribe_in_process from the in-process bus (embedded mode). The handler runs in a transaction
that also records the event id in processed_event: the work and the "done" mark commit together,
and a concurrent duplicate waits on that row, then skips.

- An unreadable message (unknown routing key, invalid body) is dead at once.
- A handler that raises is retried with exponential back-off, `max_attempts` times in all, then
  the message is dead. Lost database connections are retried without limit (nothing is wrong
  with the message).
- Dead messages go to the queue's dead-letter queue `<queue>.dead` (AMQP) or the
  dead_letter_event table (in-process bus), and are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from shared.config import Settings
from shared.events.bus import BusMessage, InProcessBus
from shared.events.models import Event, parse_event
from shared.readonly_state import wait_until_writable

log = logging.getLogger(__name__)

EventHandler = Callable[[asyncpg.Connection, Event], Awaitable[None]]

_DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
_CONNECT_BACKOFF = wait_exponential(multiplier=0.2, max=10.0) + wait_random(0, 0.2)


class Outcome(enum.StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    DEAD = "dead"


class Verdict(BaseModel):
    """What became of one message; `reason` says why a dead one died."""

    outcome: Outcome
    reason: str | None = None


class IdempotentConsumer:
    """Runs `handler` at most once per event id for the consumer `name` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        handler: EventHandler,
        *,
        max_attempts: int = 5,
        first_retry_delay_s: float = 0.2,
        max_retry_delay_s: float = 10.0,
    ) -> None:
        self.name = name
        self._pool = pool
        self._handler = handler
        self._max_attempts = max_attempts
        self._first_retry_delay_s = first_retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s

    async def process(self, routing_key: str, body: bytes) -> Verdict:
        """Handle one message; never raises (except on cancellation)."""
        try:
            event = parse_event(routing_key, body)
        except (KeyError, ValidationError, ValueError) as error:
            return Verdict(outcome=Outcome.DEAD, reason=f"unreadable event: {error!r}"[:2000])
        failures = 0
        attempt = 0
        while True:
            attempt += 1
            try:
                handled = await self._handle_once(event)
                return Verdict(outcome=Outcome.HANDLED if handled else Outcome.DUPLICATE)
            except _DATABASE_UNAVAILABLE as error:
                log.warning("%s: database unavailable for %s, retrying: %r", self.name, event.event_id, error)
            except Exception as error:
                failures += 1
                if failures >= self._max_attempts:
                    log.exception("%s: giving up on %s %s", self.name, routing_key, event.event_id)
                    return Verdict(outcome=Outcome.DEAD, reason=f"handler failed: {error!r}"[:2000])
                log.warning("%s: handler failed on %s, retrying: %r", self.name, event.event_id, error)
            await asyncio.sleep(self._retry_delay(attempt))

    def _retry_delay(self, attempt: int) -> float:
        delay = min(self._first_retry_delay_s * 2 ** (attempt - 1), self._max_retry_delay_s)
        return delay * random.uniform(1.0, 1.2)

    async def _handle_once(self, event: Event) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "INSERT INTO processed_event (consumer, event_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING true",
                self.name,
                event.event_id,
            )
            if not claimed:
                return False
            await self._handler(conn, event)
        return True

    async def park(self, routing_key: str, body: bytes, message_id: str, reason: str) -> None:
        """Keep a dead message in the dead_letter_event table (for buses without dead-letter queues)."""
        await self._pool.execute(
            "INSERT INTO dead_letter_event (consumer, message_id, routing_key, body, reason)"
            " VALUES ($1, $2, $3, $4, $5)",
            self.name,
            message_id,
            routing_key,
            body,
            reason,
        )


class WritableConsumer(IdempotentConsumer):
    """An IdempotentConsumer that handles a message only once the registry is writable: while it is
    read-only (shared/readonly_state.py) messages wait, unacknowledged."""

    def __init__(self, name: str, pool: asyncpg.Pool, handler: EventHandler, settings: Settings) -> None:
        super().__init__(name, pool, handler)
        self._writable_pool = pool
        self._settings = settings

    async def process(self, routing_key: str, body: bytes) -> Verdict:
        await wait_until_writable(self._writable_pool, self._settings)
        return await super().process(routing_key, body)


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dead"


@contextlib.asynccontextmanager
async def consuming_from_amqp(
    consumer: IdempotentConsumer,
    *,
    amqp_url: str,
    exchange: str,
    queue: str,
    binding_keys: Iterable[str],
    prefetch: int = 8,
) -> AsyncIterator[None]:
    """Feed the consumer from a durable queue bound to a topic exchange, for the block's duration.

    On entry (retrying the connection with back-off until the broker answers) it declares the
    exchange as the publisher does, the queue with its binding keys and the queue's dead-letter
    queue, so that events published once the block runs are kept even before they are consumed.
    Dead messages are rejected into `<queue>.dead` by the broker, with their x-death history. The
    connection is robust: after an outage it reconnects and resumes, and unacknowledged messages
    come again (the consumer skips those already handled).
    """

    async def declare_and_consume(connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        dead_letters = await channel.declare_queue(dead_letter_queue_name(queue), durable=True)
        source = await channel.declare_queue(
            queue,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead_letters.name},
        )
        for key in binding_keys:
            await source.bind(topic, key)
        await source.consume(functools.partial(_settle, consumer))

    connection = await _connected_and_set_up(amqp_url, declare_and_consume)
    try:
        yield
    finally:
        await connection.close()


async def _connected_and_set_up(
    amqp_url: str, set_up: Callable[[AbstractRobustConnection], Awaitable[None]]
) -> AbstractRobustConnection:
    """A robust connection on which ``set_up`` completed. An outage before that point (the robust
    connection only restores what was set up) starts over with back-off instead of failing."""
    retrying = AsyncRetrying(retry=retry_if_exception_type(CONNECTION_EXCEPTIONS), wait=_CONNECT_BACKOFF)
    async for attempt in retrying:
        with attempt:
            connection = await aio_pika.connect_robust(amqp_url)
            try:
                await set_up(connection)
            except BaseException:
                with contextlib.suppress(*CONNECTION_EXCEPTIONS, RuntimeError):
                    await connection.close()
                raise
    return connection


async def _settle(consumer: IdempotentConsumer, message: AbstractIncomingMessage) -> None:
    """Process the message, then acknowledge it, or reject it into the dead-letter queue."""
    verdict = await consumer.process(message.routing_key or "", message.body)
    if verdict.outcome is Outcome.DEAD:
        log.error(
            "%s: dead-lettering %s %s: %s",
            consumer.name,
            message.routing_key,
            message.message_id,
            verdict.reason,
        )
        await message.reject(requeue=False)
    else:
        await message.ack()


def subscribe_in_process(
    bus: InProcessBus, consumer: IdempotentConsumer, binding_keys: Iterable[str]
) -> None:
    """Feed the consumer from the in-process bus; dead messages go to the dead_letter_event table."""

    async def on_message(message: BusMessage) -> None:
        verdict = await consumer.process(message.routing_key, message.body)
        if verdict.outcome is Outcome.DEAD:
            log.error(
                "%s: parking %s %s: %s",
                consumer.name,
                message.routing_key,
                message.message_id,
                verdict.reason,
            )
            await consumer.park(message.routing_key, message.body, message.message_id, verdict.reason or "")

    for key in binding_keys:
        bus.subscribe(key, on_message)

"""Publishing events: the Publisher contract, RabbitMQ with publisher confirms, an in-process bus."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class PublishError(Exception):
    """The message was not confirmed by the bus: it may or may not have been delivered."""


class Publisher(ABC):
    """Where the outbox relay sends events."""

    @abstractmethod
    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        """Return once the bus has accepted the message; raise PublishError otherwise."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the publisher is not used afterwards."""


class AmqpPublisher(Publisher):
    """Publishes persistent JSON messages to a durable topic exchange, waiting for broker confirms.

    Connects lazily on the first publish. Any failure drops the connection, so the next publish
    starts from a fresh one: a broken connection never wedges the publisher.

    Messages are not `mandatory`: an event no queue is bound to yet is dropped by the broker, not
    returned. Returning it would hold every later event in the outbox behind it.
    """

    def __init__(self, amqp_url: str, exchange_name: str, *, timeout_s: float = 10.0) -> None:
        self._amqp_url = amqp_url
        self._exchange_name = exchange_name
        self._timeout_s = timeout_s
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._connect_lock = asyncio.Lock()

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        try:
            exchange = await self._connected_exchange()
            await exchange.publish(message, routing_key, mandatory=False, timeout=self._timeout_s)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            await self._disconnect()
            raise PublishError(f"{routing_key} {message_id} not confirmed: {exc!r}") from exc

    async def close(self) -> None:
        await self._disconnect()

    async def _connected_exchange(self) -> AbstractExchange:
        async with self._connect_lock:
            if self._exchange is None or not self._is_open():
                await self._disconnect()
                self._exchange = await self._connect()
            return self._exchange

    def _is_open(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def _connect(self) -> AbstractExchange:
        self._connection = await aio_pika.connect(self._amqp_url, timeout=self._timeout_s)
        self._channel = await self._connection.channel(publisher_confirms=True)
        return await self._channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True, timeout=self._timeout_s
        )

    async def _disconnect(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is None or connection.is_closed:
            return
        try:
            await asyncio.wait_for(connection.close(), self._timeout_s)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            # The connection is being abandoned either way; a failed close changes nothing.
            log.debug("closing AMQP connection failed: %r", exc)


class BusMessage(BaseModel):
    """A message as the in-process bus hands it to subscribers."""

    model_config = ConfigDict(frozen=True)

    routing_key: str
    body: bytes
    message_id: str


BusHandler = Callable[[BusMessage], Awaitable[None]]


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching on dot-separated words: `*` is exactly one word, `#` zero or more."""
    return _words_match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _words_match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_words_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return head in ("*", words[0]) and _words_match(rest, words[1:])


class InProcessBus(Publisher):
    """Delivers events to handlers in the same process (embedded single-process mode).

    publish awaits every matching handler in subscription order; when any of them raises, the
    others still run and publish raises PublishError, so the relay delivers the event again
    (handlers de-duplicate by message_id, as AMQP consumers do).
    """

    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, BusHandler]] = []
        self._closed = False

    def subscribe(self, pattern: str, handler: BusHandler) -> None:
        """Call handler for every message whose routing key matches the topic pattern."""
        self._subscriptions.append((pattern, handler))

    async def publish(self, routing_key: str, body: bytes, message_id: str) -> None:
        if self._closed:
            raise PublishError("the in-process bus is closed")
        message = BusMessage(routing_key=routing_key, body=body, message_id=message_id)
        failures = 0
        for pattern, handler in list(self._subscriptions):
            if not topic_matches(pattern, routing_key):
                continue
            try:
                await handler(message)
            except Exception:
                failures += 1
                log.exception("handler for %r failed on %s %s", pattern, routing_key, message_id)
        if failures:
            raise PublishError(f"{failures} handler(s) failed on {routing_key} {message_id}")

    async def close(self) -> None:
        self._closed = True
        self._subscriptions.clear()

"""The outbox relay: publishes committed outbox rows in id order, at least once.

Delivery is at least once: a crash between the broker's confirm and the commit that marks the row
sends the event again, so consumers de-duplicate by event_id (the message_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from shared.events.bus import Publisher, PublishError
from shared.events.outbox import OUTBOX_CHANNEL
from shared.observability import EVENTS_PUBLISH_FAILED, EVENTS_PUBLISHED

log = logging.getLogger(__name__)

LISTEN_APPLICATION_NAME = "quayside-outbox-relay"
# Held for the length of a batch transaction: one relay drains at a time, so events leave in id
# order even when several relays share the outbox.
_DRAIN_LOCK_KEY = 0x5155_4F42
# 0.2 s doubling up to 10 s, with jitter so that relays retrying together spread out.
_BACKOFF = wait_exponential(multiplier=0.2, max=10.0) + wait_random(0, 0.2)

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (PublishError, *_DATABASE_ERRORS)

_CLAIM_PENDING = """
SELECT id, event_id, routing_key, payload::text AS body
FROM event_outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

T = TypeVar("T")


async def outbox_backlog(pool: asyncpg.Pool) -> int:
    """How many events wait in the outbox to be published."""
    count: int = await pool.fetchval("SELECT count(*) FROM event_outbox WHERE published_at IS NULL")
    return count


class OutboxRelay:
    """Moves events from the outbox table to a Publisher.

    `listen_dsn` opens the relay's own LISTEN connection, kept apart from the pool and reopened
    when it drops; a poll every `poll_interval_s` catches anything a notification missed.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        batch_size: int = 100,
        *,
        listen_dsn: str,
        poll_interval_s: float = 5.0,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch_size = batch_size
        self._listen_dsn = listen_dsn
        self._poll_interval_s = poll_interval_s
        self._wakeup = asyncio.Event()

    async def run(self) -> None:
        """Publish pending events as they are committed, until cancelled.

        Broker or database outages are logged once, then retried with exponential back-off;
        events wait in the outbox meanwhile.
        """
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._keep_listening())
            while True:
                self._wakeup.clear()
                await _retry_transient(self.drain_once, "publish outbox events")
                await self._sleep_until_woken()

    async def drain_once(self) -> int:
        """Publish the events pending now, in id order; return how many this call published.

        Returns 0 at once when another relay is draining (it publishes them). Raises PublishError
        when the publisher refuses an event: the events published before it stay published, that
        event and the later ones stay pending.
        """
        total = 0
        while True:
            published, outbox_may_hold_more = await self._publish_batch()
            total += published
            if not outbox_may_hold_more:
                return total

    async def _publish_batch(self) -> tuple[int, bool]:
        published = 0
        interruption: PublishError | asyncio.CancelledError | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _DRAIN_LOCK_KEY):
                return 0, False
            rows = await conn.fetch(_CLAIM_PENDING, self._batch_size)
            for row in rows:
                try:
                    await self._publisher.publish(
                        row["routing_key"], row["body"].encode(), str(row["event_id"])
                    )
                except PublishError as exc:
                    EVENTS_PUBLISH_FAILED.labels(row["routing_key"]).inc()
                    interruption = exc
                    break
                except asyncio.CancelledError as exc:
                    interruption = exc
                    break
                EVENTS_PUBLISHED.labels(row["routing_key"]).inc()
                await conn.execute("UPDATE event_outbox SET published_at = now() WHERE id = $1", row["id"])
                published += 1
        # Raised after the commit, so the events confirmed before a broker failure or a shutdown
        # stay marked and are not sent again.
        if interruption is not None:
            raise interruption
        return published, len(rows) == self._batch_size

    async def _sleep_until_woken(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._poll_interval_s):
                await self._wakeup.wait()

    async def _keep_listening(self) -> None:
        while True:
            dropped = asyncio.Event()
            connection = await _retry_transient(
                functools.partial(self._open_listen_connection, dropped), "listen for outbox notifications"
            )
            # Events committed while nobody listened are pending now.
            self._wakeup.set()
            try:
                await dropped.wait()
                log.warning("outbox LISTEN connection lost; reconnecting")
            finally:
                await connection.close(timeout=5)

    async def _open_listen_connection(self, dropped: asyncio.Event) -> asyncpg.Connection:
        connection = await asyncpg.connect(
            self._listen_dsn, server_settings={"application_name": LISTEN_APPLICATION_NAME}
        )
        connection.add_termination_listener(lambda _connection: dropped.set())
        try:
            await connection.add_listener(OUTBOX_CHANNEL, self._on_notification)
        except BaseException:
            connection.terminate()
            raise
        return connection

    def _on_notification(self, _connection: object, _pid: int, _channel: str, _payload: object) -> None:
        self._wakeup.set()


async def _retry_transient(operation: Callable[[], Awaitable[T]], what: str) -> T:
    """Run operation until it succeeds, backing off on outages; log an outage once, not per retry."""

    def log_outage_start(state: RetryCallState) -> None:
        if state.attempt_number == 1 and state.outcome is not None:
            log.warning("cannot %s, retrying with back-off: %r", what, state.outcome.exception())

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_TRANSIENT_ERRORS),
        wait=_BACKOFF,
        before_sleep=log_outage_start,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            result = await operation()
    if attempt.retry_state.attempt_number > 1:
        log.info("able to %s again after %d attempts", what, attempt.retry_state.attempt_number)
    return result

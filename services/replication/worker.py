"""The replication worker: the BlobPushed consumer that queues copies, and the copier that makes them.

- Consumer: durable queue ``<QUAYSIDE_REPLICATION_QUEUE_PREFIX>.blob-pushed`` (dead letters in
  ``….dead``), each event handled once (processed_event) and acknowledged after the transaction that
  queued its copies commits. Without QUAYSIDE_AMQP_URL it subscribes to the in-process bus instead
  (embedded mode).
- Copier: claims due tasks (``FOR UPDATE SKIP LOCKED``, soonest first), at most
  QUAYSIDE_REPLICATION_CONCURRENCY at once, each under a lease of QUAYSIDE_REPLICATION_LEASE_S renewed
  while it copies (a killed worker's copies are taken over when the lease runs out). A failed copy
  is retried after QUAYSIDE_REPLICATION_RETRY_BASE_S, doubled per failure up to …_RETRY_MAX_S. It
  wakes on the REPLICATION_CHANNEL notification that every enqueue sends, else when the next task
  falls due, else every POLL_S.

While the registry is read-only (shared/readonly_state.py) neither copies nor consumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg

from services.replication import metrics
from services.replication.copier import ClaimedCopy, CopyFailedError, Drivers, copy_blob
from shared import blob_guard
from shared.config import Settings
from shared.db import create_pool
from shared.events.bus import InProcessBus
from shared.events.consumer import WritableConsumer, consuming_from_amqp, subscribe_in_process
from shared.events.models import BlobPushed, Event
from shared.readonly_state import registry_read_only
from shared.replication import REPLICATION_CHANNEL, enqueue_missing, required_locations
from shared.storage import StorageError

log = logging.getLogger(__name__)

QUEUE_PURPOSE = "blob-pushed"
# The longest the copier sleeps without a notification (a missed one, a task falling due).
POLL_S = 5.0
# The shortest wait between two looks at the registry's state while it is read-only.
READ_ONLY_RECHECK_S = 0.5
_ERROR_TEXT_LIMIT = 2000
_DATABASE_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_CLAIM = """
UPDATE replication_task t
   SET state = 'in_flight', claimed_by = $1,
       claimed_until = now() + make_interval(secs => $2), next_attempt_at = now() + make_interval(secs => $2)
  FROM (SELECT digest, location FROM replication_task
         WHERE next_attempt_at <= now()
         ORDER BY next_attempt_at
         LIMIT $3
           FOR UPDATE SKIP LOCKED) AS due
 WHERE t.digest = due.digest AND t.location = due.location
RETURNING t.digest, t.location
"""
_RENEW = """
UPDATE replication_task
   SET claimed_until = now() + make_interval(secs => $4), next_attempt_at = now() + make_interval(secs => $4)
 WHERE digest = $1 AND location = $2 AND claimed_by = $3
"""
_FAIL = """
UPDATE replication_task
   SET state = 'failed', attempts = attempts + 1, last_error = $3, claimed_by = NULL, claimed_until = NULL,
       next_attempt_at = now() + make_interval(secs => least($4 * power(2, attempts), $5))
 WHERE digest = $1 AND location = $2
"""
_NEXT_DUE = "SELECT extract(epoch FROM min(next_attempt_at) - now())::float8 FROM replication_task"


def queue_name(settings: Settings) -> str:
    return f"{settings.replication_queue_prefix}.{QUEUE_PURPOSE}"


def worker_id() -> str:
    """Names this process's claims (host, pid and a random part, unique across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class QueueCopies:
    """The BlobPushed handler: queue the copies the blob's namespace requires and it lacks."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def __call__(self, conn: asyncpg.Connection, event: Event) -> None:
        if not isinstance(event, BlobPushed) or not self._settings.feature_storage_replication:
            return
        namespace_id = await conn.fetchval("SELECT id FROM namespace WHERE name = $1", event.namespace)
        if namespace_id is None:
            return
        locations = await required_locations(conn, self._settings, namespace_id)
        await blob_guard.hold_for_push(conn, [event.digest])
        await enqueue_missing(conn, [event.digest], locations)


@contextlib.asynccontextmanager
async def replication_consumer(
    settings: Settings, pool: asyncpg.Pool, bus: InProcessBus | None = None
) -> AsyncIterator[None]:
    """Consume BlobPushed for the block's duration: from RabbitMQ when QUAYSIDE_AMQP_URL is set
    (queue declared on entry), else from ``bus``."""
    name = queue_name(settings)
    consumer = WritableConsumer(name, pool, QueueCopies(settings), settings)
    if settings.amqp_url:
        async with consuming_from_amqp(
            consumer,
            amqp_url=settings.amqp_url,
            exchange=settings.events_exchange,
            queue=name,
            binding_keys=(BlobPushed.routing_key,),
        ):
            yield
    elif bus is not None:
        subscribe_in_process(bus, consumer, (BlobPushed.routing_key,))
        yield
    else:
        raise TypeError("without QUAYSIDE_AMQP_URL, the replication consumer needs the in-process bus")


class Copier:
    """Claims and makes due copies until cancelled (see the module docstring)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self._settings = settings
        self._pool = pool
        self._drivers = Drivers(settings)
        self._me = worker_id()
        self._wakeup = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._read_only = False

    @property
    def paused_for_read_only(self) -> bool:
        """Whether its last look found the registry read-only (so it claimed nothing)."""
        return self._read_only

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keep_listening())
                while True:
                    self._wakeup.clear()
                    try:
                        claimed = await self._claim_and_start()
                    except _DATABASE_ERRORS as error:
                        log.warning("replication: cannot claim copies, retrying: %r", error)
                        claimed = 0
                    if not claimed:
                        await self._sleep_until_due()
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            await self._drivers.close()

    async def _claim_and_start(self) -> int:
        free = self._settings.replication_concurrency - len(self._running)
        self._read_only = await registry_read_only(self._pool, self._settings)
        if free <= 0 or self._read_only:
            return 0
        rows = await self._pool.fetch(_CLAIM, self._me, self._settings.replication_lease_s, free)
        for row in rows:
            task = asyncio.create_task(
                self._copy(ClaimedCopy(digest=row["digest"], location=row["location"]))
            )
            self._running.add(task)
            task.add_done_callback(self._finished)
        return len(rows)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wakeup.set()

    async def _sleep_until_due(self) -> None:
        delay = POLL_S
        if self._read_only:
            # Due copies wait until the registry is writable: look again when the state may change.
            delay = max(self._settings.registry_state_refresh_s, READ_ONLY_RECHECK_S)
        elif len(self._running) < self._settings.replication_concurrency:
            with contextlib.suppress(*_DATABASE_ERRORS):
                due_in = await self._pool.fetchval(_NEXT_DUE)
                if due_in is not None:
                    delay = min(max(due_in, 0.05), POLL_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wakeup.wait()

    async def _copy(self, copy: ClaimedCopy) -> None:
        renewing = asyncio.create_task(self._renew_lease(copy))
        try:
            await copy_blob(self._pool, self._drivers, copy)
        except (CopyFailedError, StorageError) as error:
            await self._failed(copy, str(error))
        except _DATABASE_ERRORS as error:
            # The claim stays; its lease runs out and the copy is taken up again.
            log.warning(
                "replication of %s to %s interrupted by the database: %r", copy.digest, copy.location, error
            )
        except Exception as error:
            log.exception("replication of %s to %s failed", copy.digest, copy.location)
            await self._failed(copy, f"{type(error).__name__}: {error}")
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _failed(self, copy: ClaimedCopy, error: str) -> None:
        metrics.COPIES.labels(copy.location, "failed").inc()
        log.warning("replication of %s to %s failed: %s", copy.digest, copy.location, error)
        try:
            await self._pool.execute(
                _FAIL,
                copy.digest,
                copy.location,
                error[:_ERROR_TEXT_LIMIT],
                self._settings.replication_retry_base_s,
                self._settings.replication_retry_max_s,
            )
        except _DATABASE_ERRORS as db_error:
            log.warning("could not record the failure of %s to %s: %r", copy.digest, copy.location, db_error)

    async def _renew_lease(self, copy: ClaimedCopy) -> None:
        lease = self._settings.replication_lease_s
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await self._pool.execute(_RENEW, copy.digest, copy.location, self._me, lease)
            except _DATABASE_ERRORS as error:
                log.warning("could not renew the lease on %s to %s: %r", copy.digest, copy.location, error)

    async def _keep_listening(self) -> None:
        """Wake on every REPLICATION_CHANNEL notification, on a connection of its own (reopened
        when it drops; tasks queued meanwhile are found by the poll)."""
        while True:
            dropped = asyncio.Event()
            try:
                connection = await asyncpg.connect(self._settings.database_url)
            except _DATABASE_ERRORS as error:
                log.warning("replication: cannot listen for notifications, retrying: %r", error)
                await asyncio.sleep(POLL_S)
                continue
            connection.add_termination_listener(functools.partial(_on_termination, dropped))
            try:
                await connection.add_listener(REPLICATION_CHANNEL, lambda *_args: self._wakeup.set())
                self._wakeup.set()
                await dropped.wait()
            except _DATABASE_ERRORS as error:
                log.warning("replication: notification connection lost: %r", error)
            finally:
                connection.terminate()


def _on_termination(dropped: asyncio.Event, _connection: object) -> None:
    dropped.set()


def _pool_size(settings: Settings) -> int:
    # Each copy holds a connection for its transaction; claims, lease renewals, failures and the
    # consumer share the rest.
    return settings.replication_concurrency + 3


@contextlib.asynccontextmanager
async def replicating(settings: Settings, bus: InProcessBus | None = None) -> AsyncIterator[Copier]:
    """The consumer subscribed and a copier ready, on a pool of their own, for the block's duration;
    run the copier with ``await copier.run()``."""
    pool = await create_pool(settings.database_url, max_size=_pool_size(settings))
    try:
        async with replication_consumer(settings, pool, bus):
            yield Copier(settings, pool)
    finally:
        await pool.close()


async def run_replication_worker(settings: Settings, bus: InProcessBus | None = None) -> None:
    """Consume and copy until cancelled."""
    async with replicating(settings, bus) as copier:
        await copier.run()

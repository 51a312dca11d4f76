"""The replication worker as its own process (`python -m services.replication`) on RabbitMQ: killed
with SIGKILL in the middle of a copy, it leaves no half-written object, and after a restart the
copy completes. And a broker outage during pushes delays replication without losing any copy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from yarl import URL

from services.replication.worker import replicating
from shared.config import S3Location, Settings
from shared.events.bus import AmqpPublisher
from shared.events.consumer import dead_letter_queue_name
from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry
from tests.fixtures.seaweed import SeaweedServer
from tests.replication.support import (
    REPOSITORY_ROOT,
    environment,
    relaying,
    replication_settings,
    s3_client,
    s3_object_bytes,
    s3_object_size,
)
from tests.support.oci import push_blob
from tests.support.process import ServerProcess, free_port
from tests.support.registry_app import running_registry
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until

BIG_BLOB_BYTES = 96 * 1024 * 1024
COPY_TIMEOUT_S = 120.0


@pytest.fixture
async def queue_prefix(amqp_url: str) -> AsyncIterator[str]:
    """A replication queue prefix of the test's own; its queues are deleted after it."""
    prefix = f"replication-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    queue = f"{prefix}.blob-pushed"
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for name in (queue, dead_letter_queue_name(queue)):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(name)


def _settings(
    database_url: str, us: S3Location, eu: S3Location, amqp_url: str, exchange: str, prefix: str
) -> Settings:
    return replication_settings(
        database_url,
        {"us": us, "eu": eu},
        preference=["us"],
        defaults=["us", "eu"],
        amqp_url=amqp_url,
        events_exchange=exchange,
        replication_queue_prefix=prefix,
        replication_concurrency=1,
    )


async def _start_worker(settings: Settings) -> ServerProcess:
    port = free_port()
    env = environment(
        settings,
        QUAYSIDE_AMQP_URL=settings.amqp_url or "",
        QUAYSIDE_EVENTS_EXCHANGE=settings.events_exchange,
        QUAYSIDE_REPLICATION_QUEUE_PREFIX=settings.replication_queue_prefix,
        QUAYSIDE_LISTEN=f"127.0.0.1:{port}",
    )
    worker = await ServerProcess.start([sys.executable, "-m", "services.replication"], env, REPOSITORY_ROOT)
    try:
        await worker.wait_until_serving(f"http://127.0.0.1:{port}/health/instance", timeout_s=60.0)
    except BaseException:
        await worker.stop()
        raise
    return worker


async def _queue_declared(amqp_url: str, queue: str) -> bool:
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


def _multipart_upload_started(location: S3Location, digest: str) -> bool:
    client = s3_client(location)
    try:
        uploads = client.list_multipart_uploads(Bucket=location.bucket, Prefix=blob_path(digest))
        return bool(uploads.get("Uploads"))
    except client.exceptions.NoSuchBucket:
        return False
    finally:
        client.close()


async def _push(registry: Registry, owner: Account, data: bytes, repository: str = "app") -> str:
    async with registry.client(owner) as client:
        client.timeout = httpx.Timeout(120.0)
        return await push_blob(client, f"{owner.username}/{repository}", data)


async def _placements(registry: Registry, digest: str) -> set[str]:
    rows = await registry.context.pool.fetch("SELECT location FROM blob_placement WHERE digest = $1", digest)
    return {row[0] for row in rows}


async def test_a_worker_killed_mid_copy_leaves_nothing_half_written_and_the_copy_completes_after_restart(
    database_url: str,
    us_location: S3Location,
    eu_seaweed: SeaweedServer,
    amqp_url: str,
    events_exchange: str,
    queue_prefix: str,
) -> None:
    eu = eu_seaweed.location()
    settings = _settings(database_url, us_location, eu, amqp_url, events_exchange, queue_prefix)
    registry_only = settings.model_copy(update={"storage_locations": {"us": us_location}})
    data = os.urandom(BIG_BLOB_BYTES)
    worker = await _start_worker(settings)
    try:
        await wait_until(lambda: _queue_declared(amqp_url, f"{queue_prefix}.blob-pushed"), timeout_s=30.0)
        publisher = AmqpPublisher(amqp_url, events_exchange)
        async with (
            running_registry(registry_only) as registry,
            relaying(registry.context.pool, publisher, database_url),
        ):
            owner = await registry.user()
            digest = await _push(registry, owner, data)

            await wait_until(
                lambda: asyncio.to_thread(_multipart_upload_started, eu, digest), timeout_s=COPY_TIMEOUT_S
            )
            os.kill(worker.pid, signal.SIGKILL)
            await worker.stop()

            # Killed mid-write: the target shows no object, the placement is not recorded.
            assert await asyncio.to_thread(s3_object_size, eu, digest) is None
            assert await _placements(registry, digest) == {"us"}
            claim = await registry.context.pool.fetchrow(
                "SELECT state, claimed_by FROM replication_task WHERE digest = $1 AND location = 'eu'", digest
            )
            assert claim is not None and claim["state"] == "in_flight"

            worker = await _start_worker(settings)

            async def placed() -> bool:
                return "eu" in await _placements(registry, digest)

            await wait_until(placed, COPY_TIMEOUT_S)
            copied = await registry.context.pool.fetchrow(
                "SELECT blobs_copied, bytes_copied FROM replication_counter WHERE location = 'eu'"
            )
        await publisher.close()
    finally:
        await worker.stop()

    assert await asyncio.to_thread(s3_object_size, eu, digest) == BIG_BLOB_BYTES
    stored = await asyncio.to_thread(s3_object_bytes, eu, digest)
    assert f"sha256:{hashlib.sha256(stored).hexdigest()}" == digest
    assert (copied["blobs_copied"], copied["bytes_copied"]) == (1, BIG_BLOB_BYTES)


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    broker = URL(amqp_url)
    async with TcpProxy(broker.host or "127.0.0.1", broker.port or 5672) as proxy:
        yield proxy


async def test_replication_catches_up_after_a_broker_outage_during_pushes(
    database_url: str,
    us_location: S3Location,
    eu_seaweed: SeaweedServer,
    amqp_url: str,
    events_exchange: str,
    queue_prefix: str,
    broker_proxy: TcpProxy,
) -> None:
    """The registry and the worker both reach RabbitMQ through a proxy that goes away meanwhile."""
    proxied = str(URL(amqp_url).with_host("127.0.0.1").with_port(broker_proxy.port))
    eu = eu_seaweed.location()
    settings = _settings(database_url, us_location, eu, proxied, events_exchange, queue_prefix)
    registry_only = settings.model_copy(update={"storage_locations": {"us": us_location}})
    publisher = AmqpPublisher(proxied, events_exchange)
    async with (
        running_registry(registry_only) as registry,
        replicating(settings) as copier,
        relaying(registry.context.pool, publisher, database_url),
    ):
        copying = asyncio.create_task(copier.run())
        try:
            owner = await registry.user()
            await broker_proxy.stop()
            digests = [await _push(registry, owner, os.urandom(100_000), f"app{n}") for n in range(3)]
            unpublished = await registry.context.pool.fetchval(
                "SELECT count(*) FROM event_outbox WHERE published_at IS NULL AND routing_key = 'blob.pushed'"
            )
            assert unpublished == len(digests)
            for digest in digests:
                assert await _placements(registry, digest) == {"us"}

            await broker_proxy.start()

            async def all_placed() -> bool:
                return all(["eu" in await _placements(registry, digest) for digest in digests])

            await wait_until(all_placed, COPY_TIMEOUT_S)
        finally:
            copying.cancel()
            await asyncio.gather(copying, return_exceptions=True)
    await publisher.close()

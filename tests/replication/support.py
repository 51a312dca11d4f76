"""The replication tests' harness: a registry and the replication worker in this process, on the
test's database and real storage locations; pushes through /v2 and looks at what landed where."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
from botocore.exceptions import ClientError

from services.replication.worker import Copier, replicating
from shared.config import S3Location, Settings, StorageLocation
from shared.events.bus import BusMessage, InProcessBus, Publisher
from shared.events.models import BlobReplicated, parse_event
from shared.events.relay import OutboxRelay
from shared.replication import ReplicationStatus, replication_status
from shared.storage.paths import blob_path
from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_blob
from tests.support.registry_app import running_registry
from tests.support.waiting import wait_until

TOKEN_SECRET = "test-secret-0123456789abcdef0123456789"
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def push_only_settings(settings: Settings, location: str) -> Settings:
    """The settings of a registry that knows only the location pushes land in (so that another
    location being down or refusing its credentials cannot stop the registry starting)."""
    return replication_settings(
        settings.database_url,
        {location: settings.storage_locations[location]},
        preference=[location],
        defaults=[],
        feature_storage_replication=False,
    )


def replication_settings(
    database_url: str,
    locations: Mapping[str, StorageLocation],
    *,
    preference: list[str],
    defaults: list[str],
    **overrides: object,
) -> Settings:
    """Replication on, quick retries and leases (a test waits for them)."""
    fields: dict[str, object] = {
        "database_url": database_url,
        "storage_locations": dict(locations),
        "storage_preference": preference,
        "feature_storage_replication": True,
        "distributed_storage_default_locations": defaults,
        "token_secret": TOKEN_SECRET,
        "replication_retry_base_s": 0.2,
        "replication_retry_max_s": 1.0,
        "replication_lease_s": 3.0,
    }
    fields.update(overrides)
    return Settings.model_validate(fields)


@dataclass
class Replicated:
    """BlobReplicated events as they arrive on the in-process bus."""

    events: list[BlobReplicated] = field(default_factory=list)

    async def receive(self, message: BusMessage) -> None:
        event = parse_event(message.routing_key, message.body)
        assert isinstance(event, BlobReplicated)
        self.events.append(event)


@dataclass
class Harness:
    registry: Registry
    settings: Settings
    replicated: Replicated
    copier: Copier

    @property
    def pool(self) -> asyncpg.Pool:
        return self.registry.context.pool

    async def push(self, owner: Account, data: bytes, repository: str = "app") -> str:
        async with self.registry.client(owner) as client:
            return await push_blob(client, f"{owner.username}/{repository}", data)

    async def placements(self, digest: str) -> set[str]:
        rows = await self.pool.fetch("SELECT location FROM blob_placement WHERE digest = $1", digest)
        return {row[0] for row in rows}

    async def wait_placed(self, digest: str, location: str, timeout_s: float = 30.0) -> None:
        async def placed() -> bool:
            return location in await self.placements(digest)

        await wait_until(placed, timeout_s)

    async def wait_consumed(self, timeout_s: float = 30.0) -> None:
        """Until the replication consumer has handled every BlobPushed written so far."""

        async def consumed() -> bool:
            return bool(
                await self.pool.fetchval(
                    "SELECT (SELECT count(*) FROM event_outbox WHERE routing_key = 'blob.pushed')"
                    " = (SELECT count(*) FROM processed_event WHERE consumer = $1)",
                    f"{self.settings.replication_queue_prefix}.blob-pushed",
                )
            )

        await wait_until(consumed, timeout_s)

    async def status(self) -> ReplicationStatus:
        async with self.pool.acquire() as conn:
            return await replication_status(conn, self.settings)


@contextlib.asynccontextmanager
async def relaying(pool: asyncpg.Pool, bus: Publisher, database_url: str) -> AsyncIterator[None]:
    """The outbox relayed onto the bus for the block's duration (the registry worker's job)."""
    relay = asyncio.create_task(OutboxRelay(pool, bus, listen_dsn=database_url, poll_interval_s=0.5).run())
    try:
        yield
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)


@contextlib.asynccontextmanager
async def replication_harness(
    settings: Settings, *, copying: bool = True, registry_settings: Settings | None = None
) -> AsyncIterator[Harness]:
    """A registry app (on ``registry_settings`` when given, else ``settings``), the outbox relayed to
    an in-process bus, the replication consumer on it and (``copying``) the copier running."""
    bus = InProcessBus()
    replicated = Replicated()
    bus.subscribe(BlobReplicated.routing_key, replicated.receive)
    async with (
        running_registry(registry_settings or settings) as registry,
        replicating(settings, bus) as copier,
    ):
        runner = asyncio.create_task(copier.run()) if copying else None
        try:
            async with relaying(registry.context.pool, bus, settings.database_url):
                yield Harness(registry=registry, settings=settings, replicated=replicated, copier=copier)
        finally:
            if runner is not None:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)


@contextlib.asynccontextmanager
async def copying(copier: Copier) -> AsyncIterator[None]:
    """The copier running for the block's duration (for a harness made with ``copying=False``)."""
    runner = asyncio.create_task(copier.run())
    try:
        yield
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def s3_client(location: S3Location) -> Any:
    """A plain boto3 client on the location's server, to look at what it stores."""
    return boto3.client(
        "s3",
        endpoint_url=location.endpoint_url,
        aws_access_key_id=location.access_key,
        aws_secret_access_key=location.secret_key,
        region_name=location.region,
    )


def s3_object_size(location: S3Location, digest: str) -> int | None:
    """The size of the blob's object in the location's bucket, None when there is none."""
    client = s3_client(location)
    try:
        return int(client.head_object(Bucket=location.bucket, Key=blob_path(digest))["ContentLength"])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    finally:
        client.close()


def s3_object_bytes(location: S3Location, digest: str) -> bytes:
    client = s3_client(location)
    try:
        body: bytes = client.get_object(Bucket=location.bucket, Key=blob_path(digest))["Body"].read()
        return body
    finally:
        client.close()


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """A process environment carrying the settings the replication tests change, as QUAYSIDE_*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    locations = {name: config.model_dump(mode="json") for name, config in settings.storage_locations.items()}
    env.update(
        QUAYSIDE_DATABASE_URL=settings.database_url,
        QUAYSIDE_STORAGE_LOCATIONS=json.dumps(locations),
        QUAYSIDE_STORAGE_PREFERENCE=",".join(settings.storage_preference),
        QUAYSIDE_FEATURE_STORAGE_REPLICATION="true" if settings.feature_storage_replication else "false",
        QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS=",".join(
            settings.distributed_storage_default_locations
        ),
        QUAYSIDE_TOKEN_SECRET=settings.token_secret,
        QUAYSIDE_REPLICATION_RETRY_BASE_S=str(settings.replication_retry_base_s),
        QUAYSIDE_REPLICATION_RETRY_MAX_S=str(settings.replication_retry_max_s),
        QUAYSIDE_REPLICATION_LEASE_S=str(settings.replication_lease_s),
        QUAYSIDE_REPLICATION_CONCURRENCY=str(settings.replication_concurrency),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env

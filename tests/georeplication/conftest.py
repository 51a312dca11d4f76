"""The whole geo-replicated suite as real processes, once per test module: two regions "us" and
"eu", each with its own SeaweedFS S3 server and its own registry (`python -m services.registry`,
QUAYSIDE_STORAGE_PREFERENCE us,eu and eu,us), one PostgreSQL database, RabbitMQ, the replication
worker (`python -m services.replication`) and the gateway (`python -m services.gateway`) in front,
routing 127.0.0.2 to "us" and 127.0.0.3 to "eu" (everyone else to "us"). A third location,
"archive", is a filesystem folder no blob must reach by default.

Each region's S3 is reached through a TCP proxy of the test process: stopping it makes the S3 server
unreachable for every process at once (connections dropped, new ones refused), and starting it
brings the same server back at once (a killed SeaweedFS takes ~20 s to restart).

Tests share the suite, never its data: each works in an organization of its own, and a test that
stops a piece starts it again before it ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from shared.auth.accounts import create_organization, create_user
from shared.config import FilesystemLocation, S3Location
from shared.db import create_pool
from shared.storage.paths import blob_path
from tests.fixtures.live_registry import REPOSITORY_ROOT
from tests.fixtures.postgres import ADMIN_DSN, TemplateCopies
from tests.fixtures.registry import Account
from tests.fixtures.seaweed import SeaweedServer
from tests.georeplication.oci_client import RegionClient
from tests.support.process import ServerProcess, free_port
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import eventually

REGIONS = ("us", "eu")
CLIENT_ADDRESS = {"us": "127.0.0.2", "eu": "127.0.0.3"}
TOKEN_SECRET = "geo-test-secret-0123456789abcdef0123456789"
# Generous: on a loaded machine (the suite shares 2 cores) a registry process can take long to start.
START_TIMEOUT_S = 120.0
# Waits on conditions: generous, for a CI machine running other tests beside these processes.
RECOVERY_TIMEOUT_S = 60.0


@dataclass
class Region:
    """One region: its S3 server, the proxy every process reaches it through, and its registry."""

    name: str
    s3: SeaweedServer
    s3_proxy: TcpProxy
    bucket: str
    registry_port: int
    registry_env: dict[str, str]
    registry: ServerProcess | None = None

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def location(self) -> S3Location:
        """The location as the suite's processes see it (through the proxy)."""
        return self.s3.location(self.bucket, endpoint_url=f"http://127.0.0.1:{self.s3_proxy.port}")

    def stored_bytes(self, digest: str) -> bytes | None:
        """The blob's object in this region's bucket, read from the S3 server itself; None when absent."""
        client = boto3.client(
            "s3",
            endpoint_url=self.s3.s3.endpoint_url,
            aws_access_key_id=self.s3.s3.access_key,
            aws_secret_access_key=self.s3.s3.secret_key,
            region_name="us-east-1",
        )
        try:
            body: bytes = client.get_object(Bucket=self.bucket, Key=blob_path(digest))["Body"].read()
            return body
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        finally:
            client.close()

    async def start_registry(self) -> None:
        self.registry = await ServerProcess.start(
            [sys.executable, "-m", "services.registry"], self.registry_env, REPOSITORY_ROOT
        )
        await self.registry.wait_until_serving(
            f"{self.registry_url}/v2/", accepted=frozenset({200, 401}), timeout_s=START_TIMEOUT_S
        )

    async def stop_registry(self) -> None:
        if self.registry is not None:
            await self.registry.stop()
            self.registry = None


@dataclass
class Geo:
    database_url: str
    pool: asyncpg.Pool
    regions: dict[str, Region]
    archive_root: Path
    gateway_url: str
    gateway: ServerProcess
    replication: ServerProcess
    workdir: Path

    @property
    def us(self) -> Region:
        return self.regions["us"]

    @property
    def eu(self) -> Region:
        return self.regions["eu"]

    async def organization(self) -> tuple[Account, str]:
        """A new user and an organization it owns."""
        suffix = uuid.uuid4().hex[:8]
        owner = Account(f"user{suffix}", uuid.uuid4().hex)
        async with self.pool.acquire() as conn:
            await create_user(conn, owner.username, owner.password)
            await create_organization(conn, f"org{suffix}", owner.username)
        return owner, f"org{suffix}"

    def client(self, region: str, account: Account) -> RegionClient:
        """An OCI client of the gateway whose connections leave from the region's client address."""
        return RegionClient(self.gateway_url, CLIENT_ADDRESS[region], account.username, account.password)

    async def placements(self, digest: str) -> set[str]:
        rows = await self.pool.fetch("SELECT location FROM blob_placement WHERE digest = $1", digest)
        return {row["location"] for row in rows}

    async def wait_placed(self, digests: list[str], location: str, timeout_s: float = 90.0) -> None:
        async def all_placed() -> bool:
            return all([location in await self.placements(digest) for digest in digests])

        try:
            await eventually(all_placed, timeout_s, step_s=0.1)
        except TimeoutError:
            found = {digest: await self.placements(digest) for digest in digests}
            raise AssertionError(f"not all placed in {location} within {timeout_s} s: {found}") from None

    async def registry_health(self, region: str) -> httpx.Response:
        """The region's registry's own /health/endtoend (not through the gateway)."""
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.get(f"{self.regions[region].registry_url}/health/endtoend")

    async def gateway_status(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{self.gateway_url}/gateway/status")
        response.raise_for_status()
        status: dict[str, Any] = response.json()
        return status

    @contextlib.asynccontextmanager
    async def replication_paused(self) -> AsyncIterator[None]:
        """The replication worker stopped (SIGSTOP) for the block, resumed (SIGCONT) however it ends."""
        os.kill(self.replication.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.replication.pid, signal.SIGCONT)

    @contextlib.asynccontextmanager
    async def s3_down(self, region: str) -> AsyncIterator[None]:
        """The region's S3 unreachable for the block; back when it ends, however it ends."""
        proxy = self.regions[region].s3_proxy
        await proxy.stop()
        try:
            yield
        finally:
            await proxy.start()
            await self._wait_until_every_location_is_healthy()

    @contextlib.asynccontextmanager
    async def registry_down(self, region: str) -> AsyncIterator[None]:
        """The region's registry process stopped for the block; started again when it ends."""
        await self.regions[region].stop_registry()
        try:
            yield
        finally:
            await self.regions[region].start_registry()
            await eventually(
                functools.partial(self.gateway_routes_to, region), RECOVERY_TIMEOUT_S, step_s=0.1
            )

    async def gateway_routes_to(self, region: str) -> bool:
        """Whether the gateway holds the region's registry healthy."""
        regions = (await self.gateway_status())["regions"]
        return any(state["name"] == region and state["healthy"] for state in regions)

    async def _wait_until_every_location_is_healthy(self) -> None:
        async def healthy() -> bool:
            for name in self.regions:
                answer = (await self.registry_health(name)).json()["data"]
                if not all(answer["services"].values()):
                    return False
                if not all(state["healthy"] for state in answer["locations"].values()):
                    return False
            return True

        await eventually(healthy, RECOVERY_TIMEOUT_S, step_s=0.1)


def _locations(regions: dict[str, Region], archive_root: Path) -> str:
    locations: dict[str, Any] = {
        name: region.location.model_dump(mode="json") for name, region in regions.items()
    }
    locations["archive"] = FilesystemLocation(root=str(archive_root)).model_dump(mode="json")
    return json.dumps(locations)


def _suite_env(database_url: str, locations: str, amqp_url: str, suffix: str) -> dict[str, str]:
    """What every process of the suite shares."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    env.update(
        QUAYSIDE_DATABASE_URL=database_url,
        QUAYSIDE_STORAGE_LOCATIONS=locations,
        QUAYSIDE_TOKEN_SECRET=TOKEN_SECRET,
        QUAYSIDE_AMQP_URL=amqp_url,
        QUAYSIDE_EVENTS_EXCHANGE=f"geo-{suffix}",
        QUAYSIDE_FEATURE_STORAGE_REPLICATION="true",
        QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS="us,eu",
        QUAYSIDE_REPLICATION_QUEUE_PREFIX=f"geo-{suffix}",
        QUAYSIDE_REPLICATION_RETRY_BASE_S="0.2",
        QUAYSIDE_REPLICATION_RETRY_MAX_S="1.0",
        QUAYSIDE_REPLICATION_LEASE_S="5",
        QUAYSIDE_STORAGE_HEALTH_FAILURE_THRESHOLD="2",
        QUAYSIDE_STORAGE_HEALTH_PROBE_INTERVAL_S="0.5",
        QUAYSIDE_HEALTH_CHECK_TIMEOUT_S="3",
        QUAYSIDE_HTTP_TRUSTED_PROXIES="127.0.0.1/32",
        PYTHONUNBUFFERED="1",
    )
    return env


def _gateway_env(regions: dict[str, Region], port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
    networks = [{"cidr": f"{CLIENT_ADDRESS[name]}/32", "region": name} for name in REGIONS]
    env.update(
        QUAYSIDE_GATEWAY_REGIONS=json.dumps({name: region.registry_url for name, region in regions.items()}),
        QUAYSIDE_GATEWAY_CLIENT_NETWORKS=json.dumps(networks),
        QUAYSIDE_GATEWAY_DEFAULT_REGION="us",
        QUAYSIDE_GATEWAY_FAILOVER_ORDER="us,eu",
        QUAYSIDE_GATEWAY_HEALTH_INTERVAL_S="0.2",
        QUAYSIDE_GATEWAY_HEALTH_TIMEOUT_S="6",
        QUAYSIDE_GATEWAY_LISTEN=f"127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    return env


async def _started(args: list[str], env: dict[str, str], url: str, accepted: frozenset[int]) -> ServerProcess:
    server = await ServerProcess.start(args, env, REPOSITORY_ROOT)
    try:
        await server.wait_until_serving(url, accepted=accepted, timeout_s=START_TIMEOUT_S)
    except BaseException:
        await server.stop()
        raise
    return server


async def _delete_broker_objects(amqp_url: str, suffix: str) -> None:
    """The suite's queues and exchange, so that nothing of it stays on the broker."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for queue in (f"geo-{suffix}.blob-pushed", f"geo-{suffix}.blob-pushed.dead"):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await channel.queue_delete(queue)
            channel = await connection.channel()
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            await channel.exchange_delete(f"geo-{suffix}")


@pytest.fixture(scope="module")
def seaweed_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SeaweedServer]]:
    servers = {name: SeaweedServer(tmp_path_factory.mktemp(f"seaweed-{name}")) for name in REGIONS}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
async def geo(
    template_copies: TemplateCopies,
    amqp_url: str,
    seaweed_pair: dict[str, SeaweedServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Geo]:
    """The suite, started once for the module (a few seconds) and stopped after its last test."""
    workdir = tmp_path_factory.mktemp("geo")
    suffix = uuid.uuid4().hex[:10]
    database = await template_copies.take()
    try:
        async with _suite(
            f"{ADMIN_DSN.rpartition('/')[0]}/{database}", amqp_url, seaweed_pair, workdir, suffix
        ) as suite:
            yield suite
    finally:
        template_copies.release(database)


@contextlib.asynccontextmanager
async def _suite(
    database_url: str, amqp_url: str, seaweed_pair: dict[str, SeaweedServer], workdir: Path, suffix: str
) -> AsyncIterator[Geo]:
    await asyncio.gather(*(asyncio.to_thread(server.start) for server in seaweed_pair.values()))
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_delete_broker_objects, amqp_url, suffix)
        regions: dict[str, Region] = {}
        for name, server in seaweed_pair.items():
            endpoint = urlsplit(server.s3.endpoint_url)
            assert endpoint.hostname is not None and endpoint.port is not None
            proxy = await stack.enter_async_context(TcpProxy(endpoint.hostname, endpoint.port))
            regions[name] = Region(name, server, proxy, f"geo-{name}-{suffix}", free_port(), {})
        archive_root = workdir / "archive"
        env = _suite_env(database_url, _locations(regions, archive_root), amqp_url, suffix)
        for name, region in regions.items():
            preference = ",".join([name, *(other for other in REGIONS if other != name)])
            region.registry_env = env | {
                "QUAYSIDE_STORAGE_PREFERENCE": preference,
                "QUAYSIDE_REGION": name,
                "QUAYSIDE_LISTEN": f"127.0.0.1:{region.registry_port}",
            }
            stack.push_async_callback(region.stop_registry)
        replication_port, gateway_port = free_port(), free_port()
        replication_env = env | {
            "QUAYSIDE_STORAGE_PREFERENCE": "us,eu",
            "QUAYSIDE_LISTEN": f"127.0.0.1:{replication_port}",
        }
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        # The first registry creates the buckets; the other processes then start side by side.
        await regions["us"].start_registry()
        started = await asyncio.gather(
            _started(
                [sys.executable, "-m", "services.replication"],
                replication_env,
                f"http://127.0.0.1:{replication_port}/health/instance",
                frozenset({200}),
            ),
            _started(
                [sys.executable, "-m", "services.gateway"],
                _gateway_env(regions, gateway_port),
                f"{gateway_url}/health/instance",
                frozenset({200, 503}),
            ),
            regions["eu"].start_registry(),
            return_exceptions=True,
        )
        for process in started:
            if isinstance(process, ServerProcess):
                stack.push_async_callback(process.stop)
        replication, gateway, _ = started
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(replication, ServerProcess) and isinstance(gateway, ServerProcess)
        pool = await create_pool(database_url, max_size=4)
        stack.push_async_callback(pool.close)
        geo = Geo(
            database_url=database_url,
            pool=pool,
            regions=regions,
            archive_root=archive_root,
            gateway_url=gateway_url,
            gateway=gateway,
            replication=replication,
            workdir=workdir,
        )
        # The gateway started beside eu's registry: its first look may have found eu not up yet.
        for name in regions:
            await eventually(functools.partial(geo.gateway_routes_to, name), RECOVERY_TIMEOUT_S, step_s=0.1)
        yield geo

"""Fixtures of the proxy cache tests: a live registry whose organization caches a real upstream
(Debian's docker-registry, tests.fixtures.upstream) reached through a TCP proxy the test can stop
(tests.support.tcpproxy) and a proxy counting every request the upstream gets.

Starting a registry process and an upstream takes seconds on a busy machine, so the package's
tests share one of each; every test gets its own cache organization, upstream repositories named for it,
and its own proxies, so no test depends on another's leftovers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.fixtures.postgres import ADMIN_DSN, copy_of_template, drop_database
from tests.fixtures.registry import Account
from tests.fixtures.upstream import ImageFactory, Upstream, UpstreamProxy, running_upstream
from tests.support.process import ServerProcess, free_port
from tests.support.skopeo import manifest_digest, run_skopeo
from tests.support.tcpproxy import TcpProxy


class CountingProxy(UpstreamProxy):
    """The upstream's proxy, also counting every request by method and path."""

    def __init__(self, target_url: str) -> None:
        super().__init__(target_url)
        self.requests: collections.Counter[str] = collections.Counter()
        # pause_blobs(): a blob response stops after its first piece until resume_blobs().
        self._pausing = False
        self.paused = asyncio.Event()
        self._resumed = asyncio.Event()

    def pause_blobs(self) -> None:
        self._pausing = True
        self._resumed.clear()

    def resume_blobs(self) -> None:
        self._pausing = False
        self._resumed.set()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def reset_counts(self) -> None:
        super().reset_counts()
        self.requests.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.requests[f"{scope['method']} {scope['path']}"] += 1
        if not self._pausing or "/blobs/" not in scope["path"]:
            await super().__call__(scope, receive, send)
            return
        first_piece_sent = False

        async def pausing_send(message: Message) -> None:
            nonlocal first_piece_sent
            await send(message)
            if message["type"] == "http.response.body" and message.get("body") and not first_piece_sent:
                first_piece_sent = True
                self.paused.set()
                await self._resumed.wait()

        await super().__call__(scope, receive, pausing_send)


@dataclass
class Cache:
    """An organization of the live registry caching the upstream."""

    registry: LiveRegistry
    upstream: Upstream
    counter: CountingProxy
    tcp: TcpProxy
    owner: Account
    org: str
    factory: ImageFactory
    # Upstream repositories of this test are below this path (the upstream is shared).
    prefix: str

    def upstream_name(self, repository: str) -> str:
        return f"{self.prefix}/{repository}"

    @property
    def upstream_host(self) -> str:
        """What the cache's configuration names: the upstream through the TCP and counting proxies."""
        return f"127.0.0.1:{self.tcp.port}"

    @property
    def creds(self) -> str:
        return f"{self.owner.username}:{self.owner.password}"

    def reference(self, repository: str, tag: str) -> str:
        """The cache's name of the test's upstream repository."""
        return self.registry.reference(f"{self.org}/{self.upstream_name(repository)}", tag)

    def path(self, repository: str) -> str:
        """The /v2 name of the cache's copy of the test's upstream repository."""
        return f"{self.org}/{self.upstream_name(repository)}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.registry.url, auth=self.owner.auth, timeout=60)

    async def configure(self, **fields: object) -> httpx.Response:
        body = {"upstream_registry": self.upstream_host, "insecure": True, **fields}
        async with self.client() as client:
            return await client.post(f"/api/v1/organization/{self.org}/proxycache", json=body)

    async def push_image(self, repository: str, tag: str, own_layer_size: int = 8 * 1024) -> str:
        """A fresh image pushed to the upstream as repository:tag; its manifest digest."""
        await asyncio.to_thread(self.factory.tagged_image, tag, own_layer_size)
        return await self.upstream.push(self.factory.layout, tag, self.upstream_name(repository))

    async def push_index(self, repository: str, tag: str) -> str:
        await asyncio.to_thread(self.factory.tagged_index, tag)
        return await self.upstream.push(self.factory.layout, tag, self.upstream_name(repository))

    async def pull(self, repository: str, tag: str, destination: Path, *extra: str) -> str:
        """skopeo copy of the cache's repository:tag into an OCI layout; the manifest digest read."""
        (
            await run_skopeo(
                "copy",
                "--src-tls-verify=false",
                f"--src-creds={self.creds}",
                *extra,
                self.reference(repository, tag),
                f"oci:{destination}:{tag}",
            )
        ).check()
        return await manifest_digest(self.reference(repository, tag), f"--creds={self.creds}")


@pytest.fixture(scope="package")
async def shared_database_url(template_database: str) -> AsyncIterator[str]:
    name = await copy_of_template(template_database, "qs_proxy")
    yield f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    await drop_database(name)


@pytest.fixture(scope="package")
async def shared_registry(
    shared_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveRegistry]:
    """The registry of every proxy test, with two HTTP processes (coalescing works across them)."""
    root = tmp_path_factory.mktemp("proxy-registry")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = server_environment(shared_database_url, root / "storage", port, {"QUAYSIDE_HTTP_PROCESSES": "2"})
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    async with serving_registry(server, url, port, shared_database_url, root / "storage") as registry:
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
        yield registry


@pytest.fixture(scope="package")
async def shared_upstream(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Upstream]:
    async with running_upstream(tmp_path_factory.mktemp("proxy-upstream")) as upstream:
        yield upstream


@contextlib.asynccontextmanager
async def cache_of(
    registry: LiveRegistry, upstream: Upstream, images: Path, **config: object
) -> AsyncIterator[Cache]:
    """A fresh cache organization of the upstream, configured (insecure, default expiration, and the
    configuration fields given)."""
    counter = CountingProxy(f"http://{upstream.host}")
    await counter.start()
    tcp = TcpProxy("127.0.0.1", counter.port)
    await tcp.start()
    try:
        owner = await registry.user()
        org = await registry.organization(owner, f"cache{uuid.uuid4().hex[:8]}")
        factory = await asyncio.to_thread(ImageFactory, images)
        cache = Cache(registry, upstream, counter, tcp, owner, org, factory, f"t{uuid.uuid4().hex[:8]}")
        assert (await cache.configure(**config)).status_code == 201
        yield cache
    finally:
        await tcp.stop()
        await counter.stop()


@pytest.fixture
async def cache(
    shared_registry: LiveRegistry, shared_upstream: Upstream, tmp_path: Path
) -> AsyncIterator[Cache]:
    async with cache_of(shared_registry, shared_upstream, tmp_path / "images") as running:
        yield running

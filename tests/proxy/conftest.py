"""Fixtures of the proxy cache tests: a live registry whose organization caches a real upstream
(Debian's docker-registry, tests.fixtures.upstream) reached through a TCP proxy the test can stop
(tests.support.tcpproxy) and a proxy counting every request the upstream gets."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account
from tests.fixtures.upstream import ImageFactory, Upstream, UpstreamProxy, running_upstream
from tests.support.skopeo import manifest_digest, run_skopeo
from tests.support.tcpproxy import TcpProxy


class CountingProxy(UpstreamProxy):
    """The upstream's proxy, also counting every request by method and path."""

    def __init__(self, target_url: str) -> None:
        super().__init__(target_url)
        self.requests: collections.Counter[str] = collections.Counter()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def reset_counts(self) -> None:
        super().reset_counts()
        self.requests.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.requests[f"{scope['method']} {scope['path']}"] += 1
        await super().__call__(scope, receive, send)


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

    @property
    def upstream_host(self) -> str:
        """What the cache's configuration names: the upstream through the TCP and counting proxies."""
        return f"127.0.0.1:{self.tcp.port}"

    @property
    def creds(self) -> str:
        return f"{self.owner.username}:{self.owner.password}"

    def reference(self, repository: str, tag: str) -> str:
        return self.registry.reference(f"{self.org}/{repository}", tag)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.registry.url, auth=self.owner.auth, timeout=60)

    async def configure(self, **fields: object) -> httpx.Response:
        body = {"upstream_registry": self.upstream_host, "insecure": True, **fields}
        async with self.client() as client:
            return await client.post(f"/api/v1/organization/{self.org}/proxycache", json=body)

    async def push_image(self, repository: str, tag: str) -> str:
        """A fresh image pushed to the upstream as repository:tag; its manifest digest."""
        await asyncio.to_thread(self.factory.tagged_image, tag)
        return await self.upstream.push(self.factory.layout, tag, repository)

    async def push_index(self, repository: str, tag: str) -> str:
        await asyncio.to_thread(self.factory.tagged_index, tag)
        return await self.upstream.push(self.factory.layout, tag, repository)

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


@pytest.fixture
async def cache(live_registry: LiveRegistry, tmp_path: Path) -> AsyncIterator[Cache]:
    """A cache organization (configured: insecure, default expiration) of a fresh upstream."""
    async with running_upstream(tmp_path / "upstream") as upstream:
        counter = CountingProxy(f"http://{upstream.host}")
        await counter.start()
        tcp = TcpProxy("127.0.0.1", counter.port)
        await tcp.start()
        try:
            owner = await live_registry.user()
            org = await live_registry.organization(owner, f"cache{uuid.uuid4().hex[:8]}")
            factory = await asyncio.to_thread(ImageFactory, tmp_path / "images")
            cache = Cache(live_registry, upstream, counter, tcp, owner, org, factory)
            assert (await cache.configure()).status_code == 201
            yield cache
        finally:
            await tcp.stop()
            await counter.stop()
